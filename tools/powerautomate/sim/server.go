// Package sim is an in-process Power Automate / Power Apps / connector
// runtime simulator: one http.Handler that serves every upstream host under
// a path prefix, with seeded multi-tenant data, RS256 access tokens it mints
// and checks, SAS-signed content links, a run engine driven by flow
// definitions, fault injection and request recording. It powers embedded
// mode and the tests.
//
// Layout under the mount point (PathPrefix):
//
//	/flow/...       api.flow.microsoft.com
//	/powerapps/...  api.powerapps.com
//	/bap/...        api.bap.microsoft.com
//	/ppapi/{envhost}/...  {envhost}.environment.api.powerplatform.com
//	/apihub/apim/{api}/{connection}/...  connector runtimes
//	/dataverse/{org}/api/data/v9.2/...  Dataverse Web API of each environment with a database
//	/content/...    run inputs/outputs and trigger callbacks (SAS, no token)
//	/entra/...      login.microsoftonline.com: sign-in pages, tokens, JWKS (package entrasim)
package sim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	segjson "github.com/segmentio/encoding/json"

	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/entrasim"
)

// Options configure a Sim.
type Options struct {
	// PathPrefix is where Handler is mounted, e.g. "/sim"; "" for the root.
	// The handler strips it itself, so mount without http.StripPrefix.
	PathPrefix string
	// BaseURL is the external URL of the mount (scheme://host/prefix), used
	// for absolute nextLinks, content links and callback URLs. Empty means
	// derive it from each request's Host.
	BaseURL string
	// KeySeed makes the RSA signing key (and content signatures)
	// deterministic, so tokens survive a restart. Nil means random.
	KeySeed []byte
	// EnforceScopes requires scp Flows.Read.All (reads) or Flows.Manage.All
	// (writes) on the Flow host.
	EnforceScopes bool
	// Audiences overrides the accepted token audiences per host key
	// ("flow", "powerapps", "bap", "ppapi", "apihub").
	Audiences map[string][]string
	// Now is the simulator's clock (tokens, codes, runs); nil means time.Now.
	// Tests move it instead of sleeping.
	Now func() time.Time
}

// DefaultAudiences are the token audiences each host accepts.
var DefaultAudiences = map[string][]string{
	"flow":      {"https://service.flow.microsoft.com/", "https://service.flow.microsoft.com"},
	"powerapps": {"https://service.powerapps.com/", "https://service.powerapps.com"},
	"bap":       {"https://service.powerapps.com/", "https://service.powerapps.com"},
	// /powerautomate routes take the Flow audience, /connectivity the Power Platform one.
	"ppapi":  {"https://service.flow.microsoft.com/", "https://service.flow.microsoft.com", "https://api.powerplatform.com"},
	"apihub": {"https://apihub.azure.com", "https://apihub.azure.com/"},
}

// apiVersions are the api-version values each host accepts (apihub and
// content take what the connector or SAS link says).
var apiVersions = map[string][]string{
	"flow":      {"2016-11-01"},
	"powerapps": {"2016-11-01", "2017-08-01", "2020-06-01"},
	"bap":       {"2020-10-01", "2016-11-01"},
	"ppapi":     {"1"},
}

// Sim is the simulator. All methods are safe for concurrent use.
type Sim struct {
	opts       Options
	key        *rsa.PrivateKey
	keyID      string
	contentKey []byte
	hosts      map[string]http.Handler

	mu        sync.Mutex
	tenants   map[string]*tenant      // by tenant id
	envs      map[string]*environment // by lower-case name
	workflows map[string]*flow        // by workflow id, for content links
	users     map[string]string       // object id → email, for display
	seq       uint64
	faults    []*fault
	requests  []RecordedRequest

	entra    *entrasim.Entra // the Entra ID stand-in; its own lock
	verified verifiedTokens  // tokens whose signature checked out; its own lock
}

// New builds a simulator with the seeded tenants.
func New(opts Options) *Sim {
	opts.PathPrefix = strings.TrimRight(opts.PathPrefix, "/")
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sim{
		opts:      opts,
		tenants:   map[string]*tenant{},
		envs:      map[string]*environment{},
		workflows: map[string]*flow{},
		users:     map[string]string{},
	}
	s.key = signingKey(opts.KeySeed)
	s.keyID = keyID(&s.key.PublicKey)
	if opts.KeySeed != nil {
		m := hmac.New(sha256.New, opts.KeySeed)
		m.Write([]byte("content signatures"))
		s.contentKey = m.Sum(nil)
	} else {
		s.contentKey = make([]byte, 32)
		rand.Read(s.contentKey)
	}
	s.hosts = map[string]http.Handler{
		"flow":      s.flowRoutes(),
		"powerapps": s.powerAppsRoutes(),
		"bap":       s.bapRoutes(),
		"ppapi":     s.ppapiRoutes(),
		"apihub":    s.apihubRoutes(),
	}
	s.entra = entrasim.New(entrasim.Options{Directory: directory{s}, Signer: s, KeySeed: opts.KeySeed,
		HostTenant: ContosoTenantID, Now: opts.Now})
	s.seed(s.now().UTC())
	return s
}

// now is the simulator's clock (Options.Now).
func (s *Sim) now() time.Time { return s.opts.Now() }

// Config returns a client configuration that points every host at the
// simulator mounted at base (the external URL of the mount, e.g.
// "http://127.0.0.1:8080/sim" or an httptest server's URL).
func (s *Sim) Config(base string) powerautomate.Config { return ConfigFor(base) }

// ConfigFor is Config without a Sim: the URLs depend only on where the simulator is
// mounted, so a caller can build its client before the simulator has finished seeding.
func ConfigFor(base string) powerautomate.Config {
	base = strings.TrimRight(base, "/")
	host := base
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if i := strings.Index(host, "/"); i >= 0 {
		host = host[:i]
	}
	return powerautomate.Config{
		FlowURL:          base + "/flow",
		PowerAppsURL:     base + "/powerapps",
		BAPURL:           base + "/bap",
		PowerPlatformURL: base + "/ppapi/{envhost}",
		ApihubURL:        base + "/apihub",
		DataverseURL:     base + "/dataverse",
		RuntimeHosts:     []string{},
		ContentHosts:     []string{host},
	}
}

// Handler serves every simulated host.
func (s *Sim) Handler() http.Handler { return http.HandlerFunc(s.serve) }

type ctxKey int

const (
	callerKey ctxKey = iota
	requestInfoKey
)

// requestInfo keeps what the lower-cased routing copy of a request loses.
type requestInfo struct {
	base        string // external URL of the mount
	origPath    string // path after the prefix, original case
	escapedPath string // the same, still escaped (segments may contain %2F)
}

func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, s.opts.PathPrefix)
	if !ok || !strings.HasPrefix(rest, "/") {
		writeError(w, http.StatusNotFound, "NotFound", "No route for this path.")
		return
	}
	hostKey, path, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	hostKey = strings.ToLower(hostKey)
	path = "/" + path
	s.record(r, hostKey, path)
	if s.applyFault(w, r) {
		return
	}
	w.Header().Set("x-ms-request-id", uuid.NewString())
	info := requestInfo{base: s.baseURL(r), origPath: rest, escapedPath: strings.TrimPrefix(r.URL.EscapedPath(), s.opts.PathPrefix)}
	if hostKey == "entra" { // sign-in: no bearer token, no api-version
		s.entra.Serve(w, r, info.base+entrasim.Path, path)
		return
	}
	if hostKey == "content" {
		s.serveContent(w, r, info, path)
		return
	}
	if hostKey == "consent" { // the connector consent pages a person opens: no bearer token
		s.serveConsent(w, r, info, path)
		return
	}
	if hostKey == "dataverse" { // per-organisation audiences, OData errors
		s.serveDataverse(w, r, path)
		return
	}
	h, ok := s.hosts[hostKey]
	if !ok {
		writeError(w, http.StatusNotFound, "NotFound", "No route for this path.")
		return
	}
	c, ok := s.authenticate(w, r, hostKey)
	if !ok {
		return
	}
	versions, ok := apiVersions[hostKey]
	if hostKey == "flow" && len(path) > len(flowNSPrefix) && strings.EqualFold(path[:len(flowNSPrefix)+1], flowNSPrefix+"/") {
		versions = migrateAPIVersions
	}
	if ok && !checkAPIVersion(w, r, versions) {
		return
	}
	if hostKey == "flow" && s.opts.EnforceScopes && !checkScopes(w, r, c) {
		return
	}
	ctx := context.WithValue(context.WithValue(r.Context(), callerKey, c), requestInfoKey, info)
	// A shallow copy with its own URL: no handler changes the headers, so they are
	// not copied on every call.
	routed, u := r.WithContext(ctx), *r.URL
	u.Path, u.RawPath = strings.ToLower(path), "" // ARM routing is case-insensitive
	routed.URL = &u
	h.ServeHTTP(w, routed)
}

func (s *Sim) baseURL(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return s.opts.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + s.opts.PathPrefix
}

func checkAPIVersion(w http.ResponseWriter, r *http.Request, versions []string) bool {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		writeError(w, http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
		return false
	}
	for _, ok := range versions {
		if v == ok {
			return true
		}
	}
	writeError(w, http.StatusBadRequest, "InvalidApiVersionParameter",
		"The api-version '"+v+"' is invalid. The supported versions are '"+strings.Join(versions, ",")+"'.")
	return false
}

func checkScopes(w http.ResponseWriter, r *http.Request, c *caller) bool {
	need := "Flows.Manage.All"
	if r.Method == http.MethodGet {
		if c.hasScope("Flows.Read.All") {
			return true
		}
	}
	if c.hasScope(need) {
		return true
	}
	if r.Method == http.MethodGet {
		need = "Flows.Read.All"
	}
	writeError(w, http.StatusForbidden, "InsufficientScope", "The access token does not grant the scope '"+need+"' this operation requires.")
	return false
}

// newMux is a ServeMux whose unknown routes answer in the ARM error shape.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NotFound", "No route for '"+r.Method+" "+r.URL.Path+"'.")
	})
	return mux
}

func callerOf(r *http.Request) *caller { return r.Context().Value(callerKey).(*caller) }

func infoOf(r *http.Request) requestInfo { return r.Context().Value(requestInfoKey).(requestInfo) }

// writeJSON writes v with the ARM response headers.
func writeJSON(w http.ResponseWriter, status int, v any) {
	// segmentio writes what encoding/json's Marshal does at a fraction of the cost (the
	// simulator answers every benchmark call, and its speed paces the server measured
	// against it), with two differences. No HTML escaping: the service is .NET, whose
	// serializer escapes control characters only, so "<p>" reads as "<p>", not
	// "\u003cp\u003e". Raw JSON in the simulator's state is written as it is kept: it was
	// parsed when it arrived, and what a client sends is kept compacted (compactRaw).
	body, err := segjson.Append(nil, v, encodeFlags)
	if err != nil {
		http.Error(w, `{"error":{"code":"InternalServerError","message":"The simulator could not encode its answer."}}`, http.StatusInternalServerError)
		return
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(body))) // as the service answers: not chunked
	w.WriteHeader(status)
	w.Write(body)
}

const encodeFlags = segjson.SortMapKeys | segjson.TrustRawMessage

// compactRaw is raw JSON a client sent, without insignificant space, as the service
// keeps it; raw was parsed already, so it compacts.
func compactRaw(raw json.RawMessage) json.RawMessage {
	if raw == nil {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// encodeJSON is v as writeJSON writes it, for a part of an answer made once and kept;
// v holds only maps, slices and strings, which always encode.
func encodeJSON(v any) json.RawMessage {
	b, err := segjson.Append(nil, v, encodeFlags)
	if err != nil {
		panic("sim: encode: " + err.Error())
	}
	return b
}

// apiError is the ARM error envelope.
type apiError struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code         string          `json:"code"`
	Message      string          `json:"message"`
	ExtendedData json.RawMessage `json:"extendedData,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, apiError{errorBody{Code: code, Message: message}})
}

// writeRunNotFound writes the ARM-wrapped WorkflowRunNotFound the Flow API
// returns for unknown runs.
func writeRunNotFound(w http.ResponseWriter, f *flow, run string) {
	inner, _ := json.Marshal(apiError{errorBody{Code: "WorkflowRunNotFound",
		Message: "The workflow '" + f.name + "' run '" + run + "' could not be found."}})
	writeError(w, http.StatusNotFound, "AzureResourceManagerRequestFailed",
		"Request to Azure Resource Manager failed with error: '"+string(inner)+"'.")
}

// locked serves h under the sim's lock: most handlers read and change its state
// from start to end.
func (s *Sim) locked(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		h(w, r)
	}
}
