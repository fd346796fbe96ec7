package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/server/telemetry"
	"github.com/flowstudio/mcp/tools"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/sourcegraph/jsonrpc2"
	"go.uber.org/zap"
)

// UserStore is what the API-key check needs from storage: one point read per request.
// Nothing is cached, so a re-issued or revoked key dies at once on every replica. The
// user it returns is only read (cosmos.Store.ViewUser saves the copy for a writer).
type UserStore interface {
	ViewUser(ctx context.Context, id string) (*cosmos.User, error)
}

// APIKeyHeader carries the API key. Not Authorization: Bearer, which OAuth-capable
// clients would take as an invitation to start an OAuth flow.
const APIKeyHeader = "X-Api-Key"

// challenge is the WWW-Authenticate value of a 401: not Bearer and no
// resource_metadata, so OAuth-capable clients find no invitation here; the reason goes
// in error_description for clients that show the challenge rather than the body.
const challenge = `ApiKey realm="mcp", header="x-api-key", error_description=`

// maxRefusedBody is how much of a refused request's body is read to find its id.
const maxRefusedBody = 16 << 10

// authenticate checks the API key on every request (sessions never authenticate) and
// puts the principal in the context.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(APIKeyHeader)
		if key == "" {
			msg := "Unauthorized: missing x-api-key header"
			if hasMisplacedKey(r) {
				msg = "Unauthorized: send the API key in the x-api-key header (not Authorization: Bearer, not the query string); OAuth clients connect to /mcp/oauth instead"
			}
			s.unauthorized(w, r, msg, "missing key")
			return
		}
		claims, err := s.deps.Keys.Verify(key)
		if errors.Is(err, keyring.ErrExpiredKey) {
			s.unauthorized(w, r, "Unauthorized: this API key expired (keys last 30 days); open "+s.dashboardURL()+
				" to re-issue it, then update your agents", "expired key")
			return
		}
		if err != nil {
			s.unauthorized(w, r, "Unauthorized: invalid x-api-key", "invalid key")
			return
		}
		user, err := s.deps.Users.ViewUser(r.Context(), claims.Subject)
		switch {
		case errors.Is(err, cosmos.ErrNotFound):
			s.unauthorized(w, r, "Unauthorized: this key's user no longer exists; get a new key on the dashboard", "unknown user")
			return
		case err != nil:
			s.userLookupFailed(w, r, err, claims.Subject)
			return
		case user.Consent != cosmos.ConsentGranted:
			s.unauthorized(w, r, "Unauthorized: permission was revoked or needs renewing; sign in again at "+s.dashboardURL(), "consent "+string(user.Consent))
			return
		case user.KeyGeneration != claims.Generation:
			s.unauthorized(w, r, "Unauthorized: this key was replaced; copy the current key from "+s.dashboardURL(), "stale generation")
			return
		}
		s.serveAs(w, r, next, user, claims.Scope)
	})
}

// userLookupFailed answers a request whose user the store did not return (/mcp and
// /mcp/oauth alike): 503, retry; the log names the user only as logsafe allows.
func (s *Server) userLookupFailed(w http.ResponseWriter, r *http.Request, err error, userID string) {
	s.log.Error("user lookup failed", zap.String("request_id", rpc.RequestID(r.Context())), logsafe.Error(err, userID))
	writeRPCError(w, http.StatusServiceUnavailable,
		rpc.NewError(rpc.CodeInternalError, "Service unavailable: the user store did not answer; retry shortly", nil))
}

// serveAs serves an authenticated request as user with a key scope: the per-user
// in-flight cap, then the principal in the context. /mcp and /mcp/oauth share it.
func (s *Server) serveAs(w http.ResponseWriter, r *http.Request, next http.Handler, user *cosmos.User, scope string) {
	tier, ok := cosmos.ParseTier(string(user.Tier)) // an unknown stored tier counts as free
	if !ok {
		tier = cosmos.TierFree
	}
	release, ok := s.slots.acquire(r.Context(), user.ID)
	if !ok {
		telemetry.QuotaRefusal(telemetry.InFlight, string(tier))
		s.log.Info("mcp request refused", zap.String("request_id", rpc.RequestID(r.Context())), zap.String("reason", "too many in flight"))
		w.Header().Set("Retry-After", "1")
		writeRPCError(w, http.StatusTooManyRequests, rpc.NewError(rpc.CodeTooManyRequests,
			fmt.Sprintf("Too many requests in flight for this user (at most %d at once); wait for earlier calls to finish", s.slots.limit), nil))
		return
	}
	defer release()
	p := &tools.Principal{Caller: powerautomate.Caller{UserID: user.ID, TenantID: user.TenantID, ObjectID: user.ObjectID,
		EmailHash: user.EmailHash, KeyGeneration: user.KeyGeneration}, Tier: tier, Scope: scope}
	next.ServeHTTP(w, r.WithContext(tools.WithPrincipal(r.Context(), p)))
}

// hasMisplacedKey spots a key sent the wrong way, to say how to send it right.
func hasMisplacedKey(r *http.Request) bool {
	if strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "bearer ") {
		return true
	}
	q := r.URL.Query()
	for _, name := range []string{"x-api-key", "api_key", "apikey", "api-key", "key", "token"} {
		if q.Has(name) {
			return true
		}
	}
	return false
}

// unauthorized answers 401 with msg (our own words: never the key, and the user is
// named only for a key we signed) in the challenge and in a JSON-RPC error carrying
// the request's id, which the Go SDK needs to show the message at all.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, msg, reason string) {
	s.log.Info("mcp request unauthorized", zap.String("request_id", rpc.RequestID(r.Context())), zap.String("reason", reason))
	w.Header().Set("WWW-Authenticate", challenge+quote(msg))
	id := rpc.RequestIDOf(nil)
	if r.Method == http.MethodPost && r.Body != nil {
		if body, err := io.ReadAll(io.LimitReader(r.Body, maxRefusedBody+1)); err == nil && len(body) <= maxRefusedBody {
			id = rpc.RequestIDOf(body)
		}
	}
	writeJSON(w, http.StatusUnauthorized, map[string]any{"jsonrpc": "2.0", "id": id,
		"error": rpc.NewError(rpc.CodeUnauthorized, msg, nil)})
}

// quote makes s an HTTP quoted-string (RFC 9110 5.6.4): backslash before " and \,
// and anything outside visible ASCII and space dropped.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (s *Server) dashboardURL() string { return s.deps.Settings.PublicURL + "/dashboard" }

func writeRPCError(w http.ResponseWriter, status int, e *jsonrpc2.Error) {
	writeJSON(w, status, map[string]any{"jsonrpc": "2.0", "id": nil, "error": e})
}

func principalID(ctx context.Context) string {
	if p := tools.PrincipalFrom(ctx); p != nil {
		return p.UserID
	}
	return ""
}
