package sim

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"github.com/flowstudio/mcp/tools/pattern"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Connection creation and sign-in, as api.powerapps.com and the connector consent
// service do them: PUT a connection (201, Unauthenticated until someone signs in;
// Connected at once for a connector that needs no sign-in), POST getConsentLink for
// the link a person opens, and the consent pages themselves, where the person signs
// in and is sent back to the redirect URL with a code.

var simConnNameRE = pattern.MustClass(`^[0-9A-Za-z][0-9A-Za-z_-]{0,127}$`)

func (s *Sim) putConnection(w http.ResponseWriter, r *http.Request) {
	env := s.filteredEnv(w, r)
	if env == nil {
		return
	}
	info := findConnector(r.PathValue("connector"))
	if info == nil {
		writeError(w, http.StatusNotFound, "ApiNotFound", "The API '"+r.PathValue("connector")+"' could not be found.")
		return
	}
	name := infoOf(r).origPath[strings.LastIndexByte(infoOf(r).origPath, '/')+1:]
	if !simConnNameRE.Match(name) {
		writeError(w, http.StatusBadRequest, "InvalidResourceName", "The connection name '"+name+"' is not valid.")
		return
	}
	var body struct {
		Properties struct {
			DisplayName          string                     `json:"displayName"`
			ConnectionParameters map[string]json.RawMessage `json:"connectionParameters"`
			ParametersSet        *struct {
				Name string `json:"name"`
			} `json:"connectionParametersSet"`
			Environment struct {
				Name string `json:"name"`
			} `json:"environment"`
		} `json:"properties"`
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err := json.Unmarshal(raw, &body); err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "The request content is not valid JSON.")
		return
	}
	if !strings.EqualFold(body.Properties.Environment.Name, env.name) {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "properties.environment must name the environment of the $filter.")
		return
	}
	for _, p := range info.requiredValues() {
		if _, ok := body.Properties.ConnectionParameters[p]; !ok {
			writeError(w, http.StatusBadRequest, "InvalidConnectionParameters", "The connection parameter '"+p+"' is required.")
			return
		}
	}
	c := callerOf(r)
	now := time.Now().UTC()
	for _, existing := range env.connections {
		if strings.EqualFold(existing.name, name) {
			if !strings.EqualFold(existing.connector, info.name) || existing.creator != c.objectID {
				writeError(w, http.StatusConflict, "ConnectionConflict", "A connection named '"+name+"' already exists.")
				return
			}
			if body.Properties.DisplayName != "" {
				existing.displayName = body.Properties.DisplayName
			}
			existing.modified = now
			writeJSON(w, http.StatusOK, s.connectionJSON(existing))
			return
		}
	}
	conn := &connection{name: name, connector: info.name, displayName: body.Properties.DisplayName, env: env, creator: c.objectID,
		created: now, modified: now, status: "Connected"}
	if conn.displayName == "" {
		conn.displayName = info.display
	}
	if info.signsInWithOAuth() {
		conn.status = "Error"
		conn.statusError = &errorBody{Code: "Unauthenticated", Message: "This connection is not authenticated."}
	}
	env.connections = append(env.connections, conn)
	writeJSON(w, http.StatusCreated, s.connectionJSON(conn))
}

func (s *Sim) getConsentLink(w http.ResponseWriter, r *http.Request) {
	env := s.filteredEnv(w, r)
	if env == nil {
		return
	}
	var conn *connection
	for _, c := range env.connections {
		if strings.EqualFold(c.name, r.PathValue("conn")) && strings.EqualFold(c.connector, r.PathValue("connector")) {
			conn = c
		}
	}
	if conn == nil || conn.creator != callerOf(r).objectID {
		writeError(w, http.StatusNotFound, "ConnectionNotFound", "The connection '"+r.PathValue("conn")+"' was not found.")
		return
	}
	if info := findConnector(conn.connector); info == nil || !info.signsInWithOAuth() {
		writeError(w, http.StatusBadRequest, "ConsentLinkNotSupported", "The API '"+conn.connector+"' does not use OAuth; there is nothing to consent to.")
		return
	}
	var body struct {
		RedirectURL string `json:"redirectUrl"`
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if json.Unmarshal(raw, &body) != nil || body.RedirectURL == "" {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "The request must carry a redirectUrl.")
		return
	}
	data := base64.RawURLEncoding.EncodeToString([]byte(strings.Join([]string{env.name, conn.connector, conn.name, body.RedirectURL}, "\n")))
	link := infoOf(r).base + "/consent/login?" + url.Values{"data": {data}, "sig": {s.sign("consent/" + data)}}.Encode()
	writeJSON(w, http.StatusOK, map[string]string{"consentLink": link})
}

var consentPage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to {{.Connector}}</title></head>
<body><h1>Sign in to {{.Connector}}</h1>
<p>Simulated connector sign-in: signing in here connects the connection {{.Connection}}.</p>
<form method="post"><input type="hidden" name="data" value="{{.Data}}"><input type="hidden" name="sig" value="{{.Sig}}">
<button type="submit" name="consent" value="accept">Sign in</button> <button type="submit" name="consent" value="cancel">Cancel</button></form>
</body></html>`))
}) // parsed on first use: serve with a remote simulator never shows it

// serveConsent serves /consent/login: GET shows the sign-in page, POST signs the
// connection in (or not, on cancel) and redirects to the link's redirect URL.
func (s *Sim) serveConsent(w http.ResponseWriter, r *http.Request, _ requestInfo, path string) {
	if path != "/login" || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	data, sig := r.Form.Get("data"), r.Form.Get("sig")
	raw, err := base64.RawURLEncoding.DecodeString(data)
	parts := strings.Split(string(raw), "\n")
	if err != nil || len(parts) != 4 || !hmac.Equal([]byte(sig), []byte(s.sign("consent/"+data))) {
		http.Error(w, "This sign-in link is not valid.", http.StatusBadRequest)
		return
	}
	envName, connector, connName, redirect := parts[0], parts[1], parts[2], parts[3]
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		consentPage().Execute(w, map[string]string{"Connector": connector, "Connection": connName, "Data": data, "Sig": sig})
		return
	}
	q := url.Values{}
	if r.Form.Get("consent") == "accept" {
		s.mu.Lock()
		if env := s.envs[strings.ToLower(envName)]; env != nil {
			for _, c := range env.connections {
				if c.name == connName && c.connector == connector {
					c.status, c.statusError, c.modified, c.expires = "Connected", nil, time.Now().UTC(), time.Time{}
				}
			}
		}
		s.mu.Unlock()
		q.Set("code", "sim-consent-code")
	} else {
		q.Set("error", "access_denied")
	}
	sep := "?"
	if strings.Contains(redirect, "?") {
		sep = "&"
	}
	http.Redirect(w, r, redirect+sep+q.Encode(), http.StatusFound)
}

// SignInConnection completes a connection's sign-in as its consent page would
// (tests that do not drive the page).
func (s *Sim) SignInConnection(env, name string) bool {
	return s.inEnv(env, func(e *environment) bool {
		for _, c := range e.connections {
			if strings.EqualFold(c.name, name) {
				c.status, c.statusError, c.modified = "Connected", nil, time.Now().UTC()
				return true
			}
		}
		return false
	})
}
