package entrasim

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A simulated managed identity and the federated credential that lets an app
// present its token instead of a client secret: the way a Container App
// without ENTRA_CLIENT_SECRET authenticates. The stand-in serves the identity's
// tokens as the App Service / Container Apps identity endpoint does
// (IDENTITY_ENDPOINT with the X-IDENTITY-HEADER secret, api-version
// 2019-08-01), so azidentity's ManagedIdentityCredential fetches them unchanged.
const (
	ManagedIdentityClientID = "6d2f3a1e-0c8b-4f57-9a3e-51f1a0000001"
	ManagedIdentityObjectID = "6d2f3a1e-0c8b-4f57-9a3e-51f1a0000002"
	// ManagedIdentityPath is the identity endpoint under the stand-in
	// (IDENTITY_ENDPOINT = <authority> + ManagedIdentityPath).
	ManagedIdentityPath = "/managed-identity/token"
	// IdentityHeader is the platform's shared secret (IDENTITY_HEADER); public,
	// for embedded mode and tests only.
	IdentityHeader = "flowstudio-sim-identity-header"
	// FederatedAudience is the audience a federated credential expects.
	FederatedAudience = "api://AzureADTokenExchange"
)

// FederatedCredential is a federated identity credential of an app
// registration: an assertion is accepted when its iss, sub and aud match.
// An empty Issuer means this stand-in's own issuer for the managed identity's
// tenant (<authority>/<tenant>/v2.0, as the request reached it).
type FederatedCredential struct {
	Issuer, Subject, Audience string
}

// DevFederatedCredential trusts the simulated managed identity; the
// development app has it beside its secret.
var DevFederatedCredential = FederatedCredential{Subject: ManagedIdentityObjectID, Audience: FederatedAudience}

// ManagedIdentityClaims are the claims of a managed identity's v2.0 token.
type ManagedIdentityClaims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid"`
	ObjectID string `json:"oid"`
	AppID    string `json:"azp"`
	Version  string `json:"ver"`
}

// ManagedIdentityToken signs the simulated managed identity's token for
// audience, as issued by the stand-in reached at authority (ttl < 0: already
// expired). Tests use it to forge assertions; apps fetch it from the identity
// endpoint.
func (s *Entra) ManagedIdentityToken(authority, audience string, ttl time.Duration) string {
	now := s.now()
	return s.signer.Sign(ManagedIdentityClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    strings.TrimRight(authority, "/") + "/" + s.hostTenant + "/v2.0",
			Subject:   ManagedIdentityObjectID,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		TenantID: s.hostTenant, ObjectID: ManagedIdentityObjectID, AppID: ManagedIdentityClientID, Version: "2.0",
	})
}

// managedIdentityToken is the identity endpoint: the platform's header
// secret, api-version 2019-08-01, and (for a user-assigned identity) its
// client id.
func (s *Entra) managedIdentityToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fail := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"statusCode": status, "message": msg})
	}
	switch {
	case subtle.ConstantTimeCompare([]byte(r.Header.Get("X-IDENTITY-HEADER")), []byte(IdentityHeader)) != 1:
		fail(http.StatusUnauthorized, "The X-IDENTITY-HEADER is missing or wrong.")
		return
	case q.Get("api-version") != "2019-08-01":
		fail(http.StatusBadRequest, "Unsupported api-version.")
		return
	case q.Get("resource") == "":
		fail(http.StatusBadRequest, "The resource parameter is required.")
		return
	case q.Has("client_id") && q.Get("client_id") != ManagedIdentityClientID,
		q.Has("principal_id") && q.Get("principal_id") != ManagedIdentityObjectID,
		q.Has("object_id") && q.Get("object_id") != ManagedIdentityObjectID:
		fail(http.StatusBadRequest, "No managed identity with this id is assigned to the app.")
		return
	}
	resource := q.Get("resource")
	expires := s.now().Add(time.Hour)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{
		"access_token": s.ManagedIdentityToken(authority(r), resource, time.Hour),
		"expires_on":   strconv.FormatInt(expires.Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    ManagedIdentityClientID,
	})
}

// errAssertion carries the AADSTS code of a refused client assertion.
type errAssertion struct {
	aadsts int
	msg    string
}

func (e *errAssertion) Error() string { return e.msg }

// federatedClientOK checks a client_assertion against the client's federated
// credentials, answering invalid_client as Entra does when it does not match.
func (s *Entra) federatedClientOK(w http.ResponseWriter, r *http.Request, client Client) bool {
	err := s.checkAssertion(r, client)
	if err == nil {
		return true
	}
	var ea *errAssertion
	errors.As(err, &ea)
	entraError(w, http.StatusUnauthorized, "invalid_client", ea.aadsts, ea.msg)
	return false
}

func (s *Entra) checkAssertion(r *http.Request, client Client) error {
	f := r.PostForm
	if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		return &errAssertion{700023, "Invalid client_assertion_type: only urn:ietf:params:oauth:client-assertion-type:jwt-bearer is supported."}
	}
	var c ManagedIdentityClaims
	_, err := jwt.ParseWithClaims(f.Get("client_assertion"), &c, func(t *jwt.Token) (any, error) { return s.signer.PublicKey(), nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(s.now), jwt.WithExpirationRequired())
	switch {
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet):
		return &errAssertion{700024, "Client assertion is not within its valid time range."}
	case err != nil:
		return &errAssertion{50027, "JWT token is invalid or malformed: the client assertion's signature or format does not verify."}
	}
	if len(client.Federated) == 0 {
		return &errAssertion{70021, "No matching federated identity record found for presented assertion: the application has no federated credential."}
	}
	ownIssuer := authority(r) + "/" + s.hostTenant + "/v2.0"
	var issuerSeen, subjectSeen bool
	for _, fc := range client.Federated {
		issuer := fc.Issuer
		if issuer == "" {
			issuer = ownIssuer
		}
		if c.Issuer != issuer {
			continue
		}
		issuerSeen = true
		if c.Subject != fc.Subject {
			continue
		}
		subjectSeen = true
		for _, aud := range c.Audience {
			if aud == fc.Audience {
				return nil
			}
		}
	}
	switch {
	case !issuerSeen:
		return &errAssertion{700211, "No matching federated identity record found for presented assertion issuer."}
	case !subjectSeen:
		return &errAssertion{700213, "No matching federated identity record found for presented assertion subject."}
	}
	return &errAssertion{700212, "No matching federated identity record found for presented assertion audience."}
}
