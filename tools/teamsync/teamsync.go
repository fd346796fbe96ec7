// Package teamsync fills the Team cache: for every Team user with consent it reads,
// as that user (their delegated token), the environments, flows, run statistics and
// connections the user can see, and writes them into the user's cache partition in
// the shapes of package teamcache. `flowstudio sync` runs it on a schedule.
//
// Semantics, per user:
//   - Only users on the team tier with consent granted are synced; others are skipped.
//   - Upstream reads are bounded by a time budget and page limits. What could not be
//     read completely is kept from the earlier sync, never deleted: an environment
//     whose flows (or connections) were not all listed keeps its other cached flows
//     (or connections); a flow whose runs could not be read keeps its statistics.
//   - Items of a flow, connection or environment that is gone are deleted. The
//     governance item of a vanished flow is never deleted by sync: it gets a 21-day
//     ttl (teamcache.OrphanGovernanceTTL), cleared again if the flow comes back.
//   - Governance items are never written otherwise: update_store_flow owns them.
//   - Nothing of a definition beyond its summary is read (flows are listed, never
//     fetched), and runs are listed without their inputs or outputs.
//   - One user's failure is logged (the user's email hash and an error kind, nothing
//     else) and recorded in their syncState item; the others go on.
package teamsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// Store is what sync needs from storage (*cosmos.Store).
type Store interface {
	ListUserIDs(ctx context.Context, p cosmos.PageRequest) ([]string, string, error)
	GetUser(ctx context.Context, id string) (*cosmos.User, error)
	GetCacheItem(ctx context.Context, userID, kind, key string) (*cosmos.CacheItem, error)
	ListCacheItems(ctx context.Context, userID string, f cosmos.CacheFilter, p cosmos.PageRequest) ([]*cosmos.CacheItem, string, error)
	PutCacheItem(ctx context.Context, c *cosmos.CacheItem) (*cosmos.CacheItem, error)
	ReplaceCacheItem(ctx context.Context, c *cosmos.CacheItem) (*cosmos.CacheItem, error)
	DeleteCacheItem(ctx context.Context, userID, kind, key string) error
	DeleteUserCache(ctx context.Context, userID string) error
	SetUserCacheTTL(ctx context.Context, userID string, ttl int, when func(current int) bool) (int, error)
}

// Upstream is what sync reads from Power Automate (*powerautomate.Client), with the
// delegated token of the principal in ctx.
type Upstream interface {
	ListEnvironments(ctx context.Context) ([]powerautomate.Environment, error)
	ListFlows(ctx context.Context, env string, opts powerautomate.ListFlowsOptions) (*powerautomate.FlowPage, error)
	ListRuns(ctx context.Context, ref powerautomate.FlowRef, opts powerautomate.ListRunsOptions) (*powerautomate.RunPage, error)
	ListConnections(ctx context.Context, env string, opts powerautomate.ListConnectionsOptions) (*powerautomate.ConnectionPage, error)
	ListApps(ctx context.Context, env string, opts powerautomate.ListAppsOptions) (*powerautomate.AppPage, error)
}

// Options configure a Syncer; zero values take the defaults named.
type Options struct {
	Store    Store
	Upstream Upstream
	Logger   *zap.Logger
	// Window is the run-statistics window (teamcache.DefaultWindow, 7 days).
	Window time.Duration
	// UserBudget bounds one user's upstream reads (3 minutes); what is not read by
	// then is kept from the earlier sync.
	UserBudget time.Duration
	// WriteTimeout bounds one user's cache writes (1 minute).
	WriteTimeout time.Duration
	// Users is how many users are synced at once (4); Flows how many upstream
	// lists (an environment's flows and connections, a flow's runs) one user
	// reads at once (4).
	Users, Flows int
	// Page limits per list: FlowPages per environment (20), ConnectionPages and
	// AppPages per environment (10 each), RunPages per flow (8), each of PageSize
	// rows (250).
	FlowPages, ConnectionPages, AppPages, RunPages, PageSize int
	Now                                                      func() time.Time
	// AfterUser runs after a user's cache was written (alerting evaluates the
	// user's monitored flows there); nil for nothing.
	AfterUser func(ctx context.Context, userID string)
}

// Syncer syncs users' caches. It is safe for concurrent use.
type Syncer struct {
	o   Options
	log *zap.Logger
}

// New returns a Syncer.
func New(o Options) (*Syncer, error) {
	if o.Store == nil || o.Upstream == nil {
		return nil, errors.New("teamsync: store and upstream are required")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Window == 0 {
		o.Window = teamcache.DefaultWindow
	}
	if o.Window < teamcache.MinWindow || o.Window > teamcache.MaxWindow {
		return nil, fmt.Errorf("teamsync: window %s not within %s..%s", o.Window, teamcache.MinWindow, teamcache.MaxWindow)
	}
	if o.UserBudget <= 0 {
		o.UserBudget = 3 * time.Minute
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = time.Minute
	}
	def(&o.Users, 4)
	def(&o.Flows, 4)
	def(&o.FlowPages, 20)
	def(&o.ConnectionPages, 10)
	def(&o.AppPages, 10)
	def(&o.RunPages, 8)
	def(&o.PageSize, powerautomate.MaxPageSize)
	o.PageSize = min(o.PageSize, powerautomate.MaxPageSize)
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Syncer{o: o, log: log}, nil
}

// Outcomes of one user's sync.
const (
	OutcomeSynced  = "synced"
	OutcomeSkipped = "skipped"
	OutcomeFailed  = "failed"
)

// Report counts what a run did.
type Report struct {
	Synced, Skipped, Failed int
	// NotReached users were not started before the run's context ended.
	NotReached int
}

// ErrAllFailed is returned by Run when no user was synced and at least one failed.
var ErrAllFailed = errors.New("teamsync: every user that was attempted failed")

// Log keys.
const (
	logUser        = "user" // the user's email hash (hex HMAC), as on the metering line
	logOutcome     = "outcome"
	logReason      = "reason"
	logErrorKind   = "error_kind"
	logEnvs        = "environments"
	logFlows       = "flows"
	logConnections = "connections"
	logApps        = "apps"
	logMakers      = "makers"
	logPartialEnvs = "partial_environments"
	logNoStats     = "flows_without_stats"
	logDurationMS  = "duration_ms"
)

// maxUsers bounds how many user ids one run lists.
const maxUsers = 1_000_000

// Run syncs every user (or only the user with id only, when not ""). It returns
// ErrAllFailed when no user was synced and at least one failed, and an error when
// the users could not be listed.
func (s *Syncer) Run(ctx context.Context, only string) (Report, error) {
	var ids []string
	if only != "" {
		if _, err := s.o.Store.GetUser(ctx, only); err != nil {
			return Report{}, fmt.Errorf("teamsync: user %s: %w", only, err)
		}
		ids = []string{only}
	} else {
		token := ""
		for len(ids) < maxUsers {
			page, next, err := s.o.Store.ListUserIDs(ctx, cosmos.PageRequest{Size: 1000, Token: token})
			if err != nil {
				return Report{}, fmt.Errorf("teamsync: list users: %w", err)
			}
			ids = append(ids, page...)
			if next == "" {
				break
			}
			token = next
		}
		// A run cut short by its deadline should not always miss the same users.
		rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	}

	var mu sync.Mutex
	var rep Report
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(s.o.Users, max(len(ids), 1)) {
		wg.Go(func() {
			for id := range work {
				outcome := "not reached"
				if ctx.Err() == nil {
					outcome = s.SyncUser(ctx, id)
				}
				mu.Lock()
				switch outcome {
				case OutcomeSynced:
					rep.Synced++
				case OutcomeFailed:
					rep.Failed++
				case OutcomeSkipped:
					rep.Skipped++
				default:
					rep.NotReached++
				}
				mu.Unlock()
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	s.log.Info("sync finished", zap.Int("users_synced", rep.Synced), zap.Int("users_skipped", rep.Skipped),
		zap.Int("users_failed", rep.Failed), zap.Int("users_not_reached", rep.NotReached))
	if only != "" && rep.Failed == 0 && rep.Synced == 0 && rep.Skipped == 1 {
		return rep, nil
	}
	if rep.Synced == 0 && rep.Failed > 0 {
		return rep, ErrAllFailed
	}
	return rep, nil
}

// SyncUser syncs one user and returns the outcome; it logs one line.
func (s *Syncer) SyncUser(ctx context.Context, id string) string {
	started := s.o.Now()
	u, err := s.o.Store.GetUser(ctx, id)
	if errors.Is(err, cosmos.ErrNotFound) {
		s.log.Info("user skipped", zap.String(logUser, userRef(id, "")), zap.String(logOutcome, OutcomeSkipped), zap.String(logReason, "no_such_user"))
		return OutcomeSkipped
	}
	if err != nil {
		s.log.Error("user failed", zap.String(logUser, userRef(id, "")), zap.String(logOutcome, OutcomeFailed), zap.String(logErrorKind, ErrorKind(err)))
		return OutcomeFailed
	}
	ref := userRef(u.ID, u.EmailHash)
	switch {
	case u.Tier != cosmos.TierTeam:
		s.log.Debug("user skipped", zap.String(logUser, ref), zap.String(logOutcome, OutcomeSkipped), zap.String(logReason, "tier_"+string(u.Tier)))
		return OutcomeSkipped
	case u.Consent != cosmos.ConsentGranted:
		s.log.Info("user skipped", zap.String(logUser, ref), zap.String(logOutcome, OutcomeSkipped), zap.String(logReason, "consent_"+string(u.Consent)))
		return OutcomeSkipped
	}
	res, err := s.syncUser(ctx, u, started)
	took := zap.Int64(logDurationMS, s.o.Now().Sub(started).Milliseconds())
	if err != nil {
		s.log.Warn("user failed", zap.String(logUser, ref), zap.String(logOutcome, OutcomeFailed), zap.String(logErrorKind, ErrorKind(err)), took)
		return OutcomeFailed
	}
	s.log.Info("user synced", zap.String(logUser, ref), zap.String(logOutcome, OutcomeSynced),
		zap.Int(logEnvs, res.Environments), zap.Int(logFlows, res.Flows), zap.Int(logConnections, res.Connections), zap.Int(logApps, res.Apps),
		zap.Int(logMakers, res.Makers), zap.Int(logPartialEnvs, len(res.PartialEnvironments)), zap.Int(logNoStats, res.FlowsWithoutStats), took)
	if s.o.AfterUser != nil {
		s.o.AfterUser(context.WithoutCancel(ctx), u.ID)
	}
	return OutcomeSynced
}

// userRef is what the log says of a user: the email hash, or a hash of the id.
func userRef(id, emailHash string) string {
	if emailHash != "" {
		return emailHash
	}
	sum := sha256.Sum256([]byte(id))
	return "id-" + hex.EncodeToString(sum[:8])
}

// ErrorKind classifies an error for the log and the syncState item, without its
// message (which may carry tenant data).
func ErrorKind(err error) string {
	var api *powerautomate.APIError
	var invalid *powerautomate.InvalidIDError
	var consent interface{ NeedsConsent() bool }
	var corrupt *cosmos.CorruptRecordError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, powerautomate.ErrReconnect):
		return "reconnect"
	case errors.As(err, &api):
		return fmt.Sprintf("upstream_%d", api.Status)
	case errors.As(err, &consent):
		return "token_endpoint"
	case errors.Is(err, powerautomate.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &invalid):
		return "invalid_identifier"
	case errors.Is(err, powerautomate.ErrLinkNotAllowed), errors.Is(err, powerautomate.ErrRedirectRefused):
		return "upstream_link_refused"
	case errors.As(err, &corrupt):
		return "store_corrupt"
	case errors.Is(err, cosmos.ErrThrottled):
		return "store_throttled"
	case errors.Is(err, cosmos.ErrUnavailable):
		return "store_unavailable"
	case errors.Is(err, cosmos.ErrInvalid), errors.Is(err, cosmos.ErrPreconditionFailed), errors.Is(err, cosmos.ErrConflict):
		return "store"
	}
	return "internal"
}

// syncUser reads as the user, then writes. The reads have the user's budget; the
// writes their own bound, so that a budget spent upstream still saves what was read.
func (s *Syncer) syncUser(ctx context.Context, u *cosmos.User, started time.Time) (*teamcache.SyncState, error) {
	as := &powerautomate.Caller{UserID: u.ID, TenantID: u.TenantID, ObjectID: u.ObjectID, EmailHash: u.EmailHash,
		KeyGeneration: u.KeyGeneration}
	readCtx, cancel := context.WithTimeout(powerautomate.WithCaller(ctx, as), s.o.UserBudget)
	snap, readErr := s.read(readCtx, started)
	cancel()

	writeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.WriteTimeout)
	defer cancel()
	if readErr != nil {
		s.recordFailure(writeCtx, u.ID, started, readErr)
		return nil, readErr
	}
	state, err := s.write(writeCtx, u.ID, snap, started)
	if err != nil {
		s.recordFailure(writeCtx, u.ID, started, err)
		return nil, err
	}
	return state, s.afterWrite(writeCtx, u.ID)
}

// afterWrite handles a user who changed while being synced: one who left the Team
// plan gets the cancelled plan's ttl on what was just written (the Stripe webhook
// may have set it on the items before sync rewrote them); one who was deleted loses
// the cache.
func (s *Syncer) afterWrite(ctx context.Context, id string) error {
	u, err := s.o.Store.GetUser(ctx, id)
	switch {
	case errors.Is(err, cosmos.ErrNotFound):
		return s.o.Store.DeleteUserCache(ctx, id)
	case err != nil:
		return err
	case u.Tier != cosmos.TierTeam:
		_, err := s.o.Store.SetUserCacheTTL(ctx, id, teamcache.CanceledCacheTTL,
			func(cur int) bool { return cur <= 0 || cur > teamcache.CanceledCacheTTL })
		return err
	}
	return nil
}

// recordFailure notes a failed attempt in the user's syncState, keeping what the
// last successful sync recorded. Best effort: the failure is logged anyway.
func (s *Syncer) recordFailure(ctx context.Context, userID string, started time.Time, cause error) {
	var st teamcache.SyncState
	if it, err := s.o.Store.GetCacheItem(ctx, userID, teamcache.KindSyncState, teamcache.SyncStateKey); err == nil {
		_ = unmarshal(it.Body, &st)
	}
	st.AttemptedAt, st.Error = teamcache.Time(started), ErrorKind(cause)
	body, err := marshal(st)
	if err != nil {
		return
	}
	_, _ = s.o.Store.PutCacheItem(ctx, &cosmos.CacheItem{UserID: userID, Kind: teamcache.KindSyncState, Key: teamcache.SyncStateKey, Body: body})
}
