// Package sealingtest is a wire-level fake of the Key Vault secrets REST API
// for tests: HTTPS on 127.0.0.1, the 401 bearer challenge, and GET/PUT of
// /secrets/{name}[/{version}] with versions.
package sealingtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// Vault is a running fake vault.
type Vault struct {
	Server *httptest.Server

	mu       sync.Mutex
	secrets  map[string][]version // name → versions, oldest first
	requests []string             // "METHOD path" of every authorised request
	unauth   int                  // requests answered with the challenge
}

type version struct {
	id, value, contentType string
	created                time.Time
}

// NewVault starts a fake vault; it stops when the test ends.
func NewVault(t testing.TB) *Vault {
	v := &Vault{secrets: map[string][]version{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /secrets/{name}", v.get)
	mux.HandleFunc("GET /secrets/{name}/{version...}", v.get)
	mux.HandleFunc("PUT /secrets/{name}", v.put)
	v.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			v.mu.Lock()
			v.unauth++
			v.mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net"`)
			writeError(w, http.StatusUnauthorized, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
			return
		}
		if r.URL.Query().Get("api-version") == "" {
			writeError(w, http.StatusBadRequest, "BadParameter", "api-version is required")
			return
		}
		v.mu.Lock()
		v.requests = append(v.requests, r.Method+" "+r.URL.Path)
		v.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(v.Server.Close)
	return v
}

// Client returns an azsecrets client for the fake: it trusts the fake's
// certificate and takes any token.
func (v *Vault) Client(t testing.TB) *azsecrets.Client {
	c, err := azsecrets.NewClient(v.Server.URL, &azfake.TokenCredential{}, v.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ClientOptions are the options a client of the fake needs.
func (v *Vault) ClientOptions() *azsecrets.ClientOptions {
	return &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: v.Server.Client()},
		DisableChallengeResourceVerification: true, // the challenge names vault.azure.net, not 127.0.0.1
	}
}

// Seed stores a version directly, as the Bicep bootstrap would.
func (v *Vault) Seed(name, value string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	id := newVersionID()
	v.secrets[name] = append(v.secrets[name], version{id: id, value: value, created: time.Now()})
	return id
}

// Versions returns the version ids of a secret, oldest first.
func (v *Vault) Versions(name string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var ids []string
	for _, ver := range v.secrets[name] {
		ids = append(ids, ver.id)
	}
	return ids
}

// Requests returns "METHOD path" of the authorised requests so far.
func (v *Vault) Requests() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.requests...)
}

// Challenges is how many requests got the 401 challenge.
func (v *Vault) Challenges() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.unauth
}

func newVersionID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (v *Vault) bundle(r *http.Request, name string, ver version) map[string]any {
	return map[string]any{
		"value":       ver.value,
		"id":          "https://" + r.Host + "/secrets/" + name + "/" + ver.id,
		"contentType": ver.contentType,
		"attributes": map[string]any{"enabled": true, "created": ver.created.Unix(), "updated": ver.created.Unix(),
			"recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
	}
}

func (v *Vault) get(w http.ResponseWriter, r *http.Request) {
	name, want := r.PathValue("name"), strings.Trim(r.PathValue("version"), "/")
	v.mu.Lock()
	versions := v.secrets[name]
	v.mu.Unlock()
	for i := len(versions) - 1; i >= 0; i-- {
		if want == "" || versions[i].id == want {
			writeJSON(w, http.StatusOK, v.bundle(r, name, versions[i]))
			return
		}
	}
	writeError(w, http.StatusNotFound, "SecretNotFound", "A secret with (name/id) "+name+"/"+want+" was not found in this key vault.")
}

func (v *Vault) put(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Value       *string `json:"value"`
		ContentType string  `json:"contentType"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Value == nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "value is required")
		return
	}
	name := r.PathValue("name")
	ver := version{id: newVersionID(), value: *body.Value, contentType: body.ContentType, created: time.Now()}
	v.mu.Lock()
	v.secrets[name] = append(v.secrets[name], ver)
	v.mu.Unlock()
	writeJSON(w, http.StatusOK, v.bundle(r, name, ver))
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
