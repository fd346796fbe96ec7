package entrasim_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// The claims the tests read from the stand-in's tokens, as a relying party sees them.
type accessClaims struct {
	TenantID string `json:"tid"`
	ObjectID string `json:"oid"`
	Scope    string `json:"scp,omitempty"`
	jwt.RegisteredClaims
}

type idClaims struct {
	jwt.RegisteredClaims
	Nonce             string `json:"nonce,omitempty"`
	TenantID          string `json:"tid"`
	ObjectID          string `json:"oid,omitempty"`
	Email             string `json:"email,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Name              string `json:"name,omitempty"`
	Version           string `json:"ver"`
}

type managedIdentityClaims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid"`
	ObjectID string `json:"oid"`
	AppID    string `json:"azp"`
	Version  string `json:"ver"`
}

// rawCall sends one request with a bearer token and returns status and body.
func rawCall(t *testing.T, method, url, token string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
