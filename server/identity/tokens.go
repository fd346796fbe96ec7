package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowstudio/mcp/server/outbound"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server/sealing"
	"github.com/flowstudio/mcp/server/telemetry"
	"github.com/flowstudio/mcp/tools/powerautomate"
)

// Log field names.
const (
	logEmailHash = "email_hash"
	logAudience  = "audience"
	logCode      = "error_code"
	logAADSTS    = "aadsts"
	logStatus    = "status"
	logGrant     = "grant"
)

// Config says how to redeem refresh tokens: as which app, and how.
type Config struct {
	App App
	// HTTPClient talks to Entra ID; nil means a 15 s timeout and no redirects.
	HTTPClient *http.Client
	// Skew: an access token is used until this long before it expires (2 min).
	Skew time.Duration
	// Timeout bounds one redemption, retry included (20 s).
	Timeout time.Duration
	// Scopes maps an audience to the scopes asked for; nil means ScopesFor.
	Scopes func(audience string) []string
	Logger *zap.Logger
	Now    func() time.Time
}

// TokenSource is the delegated powerautomate.TokenSource: for the
// powerautomate.Caller in ctx and an audience it redeems the user's sealed refresh token at the
// Entra ID token endpoint and caches the access token until shortly before
// it expires. Concurrent calls for one user and audience redeem once, and
// one user's redemptions run one at a time (each may rotate the refresh
// token the next one needs). A rotated refresh token is sealed and saved
// under an ETag check. invalid_grant marks the user needs_consent; that and
// a missing token answer powerautomate.ErrReconnect. An audience outside the default
// sign-in is redeemed only for a user holding the grant that covers it
// (GrantFor); without it, or when Entra answers that its consent is missing
// (AADSTS65001), the answer wraps powerautomate.ErrConsentRequired and the sign-in
// itself stays valid. Tokens are never logged.
type TokenSource struct {
	cfg    Config
	users  Users
	sealer Sealer
	log    *zap.Logger
	sf     singleflight.Group

	mu    sync.Mutex
	cache map[cacheKey]cachedToken
	locks map[string]*userLock
}

type cacheKey struct {
	user, audience string
	generation     int64
}

type cachedToken struct {
	token         string
	authorization []string // "Bearer " + token, made once for every request that sends it
	expires       time.Time
}

type userLock struct {
	mu   sync.Mutex
	refs int
}

// NewTokenSource returns a TokenSource. It does no I/O.
func NewTokenSource(cfg Config, users Users, sealer Sealer) (*TokenSource, error) {
	cfg.App.Authority = strings.TrimRight(cfg.App.Authority, "/")
	if err := cfg.App.Check(); err != nil {
		return nil, err
	}
	if cfg.App.Tenant == "" {
		cfg.App.Tenant = "organizations"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = outbound.Client(15*time.Second, true)
	}
	if cfg.Skew <= 0 {
		cfg.Skew = 2 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.Scopes == nil {
		cfg.Scopes = ScopesFor
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &TokenSource{cfg: cfg, users: users, sealer: sealer, log: cfg.Logger,
		cache: map[cacheKey]cachedToken{}, locks: map[string]*userLock{}}, nil
}

// ScopesFor returns the scopes to ask for an audience: the Flow service's
// delegated permissions, Power Apps' User, or <resource>/.default for the
// rest (apihub, Power Platform API). Sovereign clouds' hosts are recognised
// by their service.flow / service.powerapps / service.apps names.
func ScopesFor(audience string) []string {
	u, err := url.Parse(audience)
	host := strings.ToLower(audience)
	if err == nil && u.Host != "" {
		host = strings.ToLower(u.Host)
	}
	base := "https://" + host + "/"
	switch {
	case strings.Contains(host, "service.flow.") || strings.HasPrefix(host, "service.powerautomate."):
		return []string{base + "Flows.Read.All", base + "Flows.Manage.All", base + "Activity.Read.All"}
	case strings.Contains(host, "service.powerapps.") || strings.HasPrefix(host, "service.apps."):
		return []string{base + "User"}
	}
	return []string{base + ".default"}
}

// Token returns an access token for the caller in ctx and audience.
func (t *TokenSource) Token(ctx context.Context, audience string) (string, error) {
	c, err := t.entry(ctx, audience)
	return c.token, err
}

var _ powerautomate.Authorizer = (*TokenSource)(nil)

// Authorization is Token as the value of an Authorization header, shared by every
// request that sends it (the Power Automate client's hot path): it must not be changed.
func (t *TokenSource) Authorization(ctx context.Context, audience string) ([]string, error) {
	c, err := t.entry(ctx, audience)
	return c.authorization, err
}

func (t *TokenSource) entry(ctx context.Context, audience string) (cachedToken, error) {
	p := powerautomate.CallerFrom(ctx)
	if p == nil || p.UserID == "" {
		return cachedToken{}, powerautomate.ErrReconnect
	}
	key := cacheKey{p.UserID, audience, p.KeyGeneration}
	if c, ok := t.cached(key); ok {
		return c, nil
	}
	sfKey := p.UserID + "\x00" + audience + "\x00" + strconv.FormatInt(p.KeyGeneration, 10)
	// The redemption outlives a caller that gives up: others may be waiting on it.
	ch := t.sf.DoChan(sfKey, func() (any, error) {
		tok, err := t.redeem(context.WithoutCancel(ctx), p, key)
		if err != nil {
			return nil, err
		}
		return cachedToken{token: tok, authorization: []string{"Bearer " + tok}}, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return cachedToken{}, r.Err
		}
		return r.Val.(cachedToken), nil
	case <-ctx.Done():
		return cachedToken{}, ctx.Err()
	}
}

// Forget drops the cached access tokens of a user (after a revoke in this
// process; other replicas rely on the key generation in the cache key).
func (t *TokenSource) Forget(userID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.cache {
		if k.user == userID {
			delete(t.cache, k)
		}
	}
}

func (t *TokenSource) cached(k cacheKey) (cachedToken, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.cache[k]
	if !ok || !t.cfg.Now().Before(c.expires.Add(-t.cfg.Skew)) {
		return cachedToken{}, false
	}
	return c, true
}

func (t *TokenSource) store(k cacheKey, token string, expires time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.cache) >= 10000 {
		now := t.cfg.Now()
		for k, c := range t.cache {
			if !now.Before(c.expires.Add(-t.cfg.Skew)) {
				delete(t.cache, k)
			}
		}
	}
	t.cache[k] = cachedToken{token, []string{"Bearer " + token}, expires}
}

// lockUser serialises one user's redemptions.
func (t *TokenSource) lockUser(id string) func() {
	t.mu.Lock()
	l := t.locks[id]
	if l == nil {
		l = &userLock{}
		t.locks[id] = l
	}
	l.refs++
	t.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		t.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(t.locks, id)
		}
		t.mu.Unlock()
	}
}

func reconnect(why string) error { return fmt.Errorf("%w: %s", powerautomate.ErrReconnect, why) }

// consentRequired: the audience needs a grant the user does not hold (or, with
// grant "", one no grant covers).
func consentRequired(audience, grant, why string) error {
	if grant == "" {
		return fmt.Errorf("%w: no grant covers token audience %s", powerautomate.ErrConsentRequired, audience)
	}
	return fmt.Errorf("%w: token audience %s needs the %q grant (%s)", powerautomate.ErrConsentRequired, audience, grant, why)
}

func (t *TokenSource) redeem(ctx context.Context, p *powerautomate.Caller, key cacheKey) (_ string, err error) {
	unlock := t.lockUser(p.UserID)
	defer unlock()
	if c, ok := t.cached(key); ok { // filled while we waited for the lock
		return c.token, nil
	}
	defer func() { telemetry.TokenRedemption(redemptionOutcome(err)) }()
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	log := t.log.With(zap.String(logEmailHash, p.EmailHash), zap.String(logAudience, key.audience))
	grant, gated := GrantFor(key.audience)
	for attempt := 0; ; attempt++ {
		u, err := t.users.GetUser(ctx, p.UserID)
		if errors.Is(err, cosmos.ErrNotFound) {
			return "", reconnect("no such user")
		}
		if err != nil {
			return "", err
		}
		if u.Consent != cosmos.ConsentGranted || len(u.SealedRefreshToken) == 0 {
			return "", reconnect("no refresh token (consent " + string(u.Consent) + ")")
		}
		if gated && !HasGrant(u, grant) {
			if grant == "" {
				log.Warn("token audience outside the default sign-in and every grant: not redeemed")
			}
			return "", consentRequired(key.audience, grant, "not granted")
		}
		rt, err := t.sealer.Open(ctx, u.ID, u.SealedRefreshToken, u.SealKeyVersion)
		if errors.Is(err, sealing.ErrOpen) || errors.Is(err, sealing.ErrUnknownVersion) {
			log.Error("stored refresh token does not open; the user must sign in again", logsafe.Error(err))
			return "", reconnect("stored refresh token does not open")
		}
		if err != nil {
			return "", err
		}
		res, err := t.redeemAt(ctx, u.TenantID, string(rt), key.audience)
		var ee *EntraError
		if errors.As(err, &ee) && ee.NeedsConsent() {
			if attempt == 0 && t.tokenChanged(ctx, u.ID, u.SealedRefreshToken, rt) {
				continue // another replica rotated it, or the user signed in again: try the new one
			}
			if gated && ee.ConsentMissing() {
				// Only this grant lapsed (withdrawn at Microsoft, or never given
				// there): the refresh token still serves the default audiences.
				log.Warn("Entra has no consent for this audience; the grant is dropped, the sign-in kept",
					zap.String(logGrant, grant), zap.String(logCode, ee.Code), zap.String(logAADSTS, ee.AADSTS))
				t.dropGrant(ctx, u.ID, grant, u.SealedRefreshToken, rt, log)
				return "", consentRequired(key.audience, grant, "Entra answered "+ee.AADSTS)
			}
			log.Warn("refresh token refused; user needs to consent again", zap.String(logCode, ee.Code), zap.String(logAADSTS, ee.AADSTS))
			t.markNeedsConsent(ctx, u.ID, u.SealedRefreshToken, rt, log)
			return "", reconnect("refresh token refused (" + ee.Code + ")")
		}
		if err != nil {
			if ee != nil {
				log.Error("token endpoint refused the request", zap.Int(logStatus, ee.Status), zap.String(logCode, ee.Code), zap.String(logAADSTS, ee.AADSTS))
			} else {
				log.Warn("token endpoint unreachable", logsafe.Error(err))
			}
			return "", err
		}
		if res.RefreshToken != "" && res.RefreshToken != string(rt) {
			t.saveRotated(ctx, u.ID, u.SealedRefreshToken, rt, res.RefreshToken, log)
		}
		expires := t.cfg.Now().Add(time.Duration(res.ExpiresIn) * time.Second)
		t.store(key, res.AccessToken, expires)
		return res.AccessToken, nil
	}
}

// redemptionOutcome is the counter a redemption that ended with err goes to.
func redemptionOutcome(err error) telemetry.Redemption {
	switch {
	case err == nil:
		return telemetry.Redeemed
	case errors.Is(err, powerautomate.ErrReconnect):
		return telemetry.Reconnect
	case errors.Is(err, powerautomate.ErrConsentRequired):
		return telemetry.ConsentRequired
	}
	return telemetry.RedeemFailed
}

// sameToken reports whether the user's stored token is still the one we
// read (as sealed, or the same token re-sealed by rotate-key).
func (t *TokenSource) sameToken(ctx context.Context, u *cosmos.User, sealed, plain []byte) bool {
	if bytes.Equal(u.SealedRefreshToken, sealed) {
		return true
	}
	if len(u.SealedRefreshToken) == 0 {
		return false
	}
	cur, err := t.sealer.Open(ctx, u.ID, u.SealedRefreshToken, u.SealKeyVersion)
	return err == nil && bytes.Equal(cur, plain)
}

func (t *TokenSource) tokenChanged(ctx context.Context, id string, sealed, plain []byte) bool {
	u, err := t.users.GetUser(ctx, id)
	return err == nil && u.Consent == cosmos.ConsentGranted && len(u.SealedRefreshToken) > 0 && !t.sameToken(ctx, u, sealed, plain)
}

// saveRotated seals and saves the new refresh token, unless the stored one
// changed meanwhile (a new sign-in, a revoke): that one wins.
func (t *TokenSource) saveRotated(ctx context.Context, id string, oldSealed, oldPlain []byte, newToken string, log *zap.Logger) {
	sealed, version, err := t.sealer.Seal(ctx, id, []byte(newToken))
	if err == nil {
		_, err = t.users.UpdateUser(ctx, id, func(u *cosmos.User) error {
			if u.Consent != cosmos.ConsentGranted || !t.sameToken(ctx, u, oldSealed, oldPlain) {
				return errUnchanged
			}
			u.SealedRefreshToken, u.SealKeyVersion = sealed, version
			return nil
		})
	}
	if err != nil && !errors.Is(err, errUnchanged) {
		log.Error("rotated refresh token not saved", logsafe.Error(err))
	}
}

// dropGrant removes a grant Entra says is not consented, unless the refresh
// token was replaced meanwhile (a new grant sign-in wins).
func (t *TokenSource) dropGrant(ctx context.Context, id, grant string, oldSealed, oldPlain []byte, log *zap.Logger) {
	_, err := t.users.UpdateUser(ctx, id, func(u *cosmos.User) error {
		if !t.sameToken(ctx, u, oldSealed, oldPlain) || !dropGrant(u, grant) {
			return errUnchanged
		}
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		log.Error("could not drop the lapsed grant", logsafe.Error(err))
	}
}

// markNeedsConsent records that the refresh token stopped working, unless it
// was replaced meanwhile.
func (t *TokenSource) markNeedsConsent(ctx context.Context, id string, oldSealed, oldPlain []byte, log *zap.Logger) {
	_, err := t.users.UpdateUser(ctx, id, func(u *cosmos.User) error {
		if u.Consent != cosmos.ConsentGranted || !t.sameToken(ctx, u, oldSealed, oldPlain) {
			return errUnchanged
		}
		u.Consent = cosmos.ConsentNeeded
		u.SealedRefreshToken, u.SealKeyVersion = nil, ""
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		log.Error("could not mark the user as needing consent", logsafe.Error(err))
	}
	t.Forget(id)
}

// tokenResponse is the token endpoint's success body.
type tokenResponse struct {
	AccessToken  string      `json:"access_token"`
	RefreshToken string      `json:"refresh_token"`
	ExpiresIn    json.Number `json:"expires_in"` // a number in v2.0, a string in v1.0
	Scope        string      `json:"scope"`
}

type redeemed struct {
	AccessToken, RefreshToken string
	ExpiresIn                 int64
}

// EntraError is an error answer of the token endpoint. Only its code, the
// AADSTS number and status are kept; the description is not (it can name
// users and apps).
type EntraError struct {
	Status   int
	Code     string // invalid_grant, invalid_client, ...
	AADSTS   string // e.g. AADSTS70008
	Suberror string // e.g. consent_required
}

func (e *EntraError) Error() string {
	return fmt.Sprintf("entra token endpoint: HTTP %d %s %s", e.Status, e.Code, e.AADSTS)
}

// NeedsConsent reports whether only a new sign-in fixes this: the refresh
// token is expired, revoked or lacks consent, or policy demands interaction.
func (e *EntraError) NeedsConsent() bool {
	return e.Code == "invalid_grant" || e.Code == "interaction_required" || e.Code == "consent_required"
}

// ConsentMissing reports whether the user (or an admin) has not consented to
// the resource asked for (AADSTS65001, suberror consent_required): the
// refresh token itself is fine.
func (e *EntraError) ConsentMissing() bool {
	return e.AADSTS == "AADSTS65001" || e.Suberror == "consent_required" || e.Code == "consent_required"
}

func (t *TokenSource) tokenURL(userTenant string) string {
	tenant := t.cfg.App.Tenant
	if t.cfg.App.MultiTenant() {
		tenant = userTenant // redeem at the user's own tenant (AADSTS50059 otherwise, for some resources)
	}
	return t.cfg.App.Authority + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token"
}

// redeemAt redeems a refresh token for an audience, retrying once after a
// network failure, 429 or 5xx.
func (t *TokenSource) redeemAt(ctx context.Context, userTenant, refreshToken, audience string) (*redeemed, error) {
	v, err := t.cfg.App.ClientAuth(ctx)
	if err != nil {
		return nil, err
	}
	v.Set("grant_type", "refresh_token")
	v.Set("refresh_token", refreshToken)
	v.Set("scope", strings.Join(append(t.cfg.Scopes(audience), "offline_access"), " "))
	form := v.Encode()
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			wait := 500 * time.Millisecond
			var ee *EntraError
			if errors.As(lastErr, &ee) && ee.Status == http.StatusTooManyRequests {
				wait = 2 * time.Second
			}
			select {
			case <-ctx.Done():
				return nil, lastErr
			case <-time.After(wait):
			}
		}
		res, err, retry := t.post(ctx, userTenant, form)
		if !retry {
			return res, err
		}
		lastErr = err
	}
	return nil, lastErr
}

func (t *TokenSource) post(ctx context.Context, userTenant, form string) (*redeemed, error, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.tokenURL(userTenant), strings.NewReader(form))
	if err != nil {
		return nil, err, false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := t.cfg.HTTPClient.Do(req)
	if err != nil {
		telemetry.UpstreamAnswer(telemetry.Entra, telemetry.NoResponse)
		// The URL in a *url.Error carries no secret (the form is the body);
		// keep only the cause anyway.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("entra token endpoint: %w", err), ctx.Err() == nil
	}
	defer resp.Body.Close()
	telemetry.UpstreamAnswer(telemetry.Entra, resp.StatusCode)
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("entra token endpoint: %w", err), ctx.Err() == nil
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			Suberror    string `json:"suberror"`
		}
		_ = json.Unmarshal(body, &e)
		ee := &EntraError{Status: resp.StatusCode, Code: e.Error, Suberror: e.Suberror}
		if code, _, ok := strings.Cut(e.Description, ":"); ok && strings.HasPrefix(code, "AADSTS") && len(code) < 20 {
			ee.AADSTS = code
		}
		if ee.Code == "" {
			ee.Code = "http_" + strconv.Itoa(resp.StatusCode)
		}
		return nil, ee, resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return nil, errors.New("entra token endpoint: answer without an access token"), false
	}
	expires, err := tr.ExpiresIn.Int64()
	if err != nil || expires <= 0 {
		expires = 300 // unknown: assume short
	}
	return &redeemed{AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, ExpiresIn: expires}, nil, false
}
