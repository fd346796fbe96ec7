package alerts

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/teamcache"
)

// RunLister reads a flow's newest runs as the principal in ctx (*powerautomate.Client).
type RunLister interface {
	ListRuns(ctx context.Context, ref powerautomate.FlowRef, opts powerautomate.ListRunsOptions) (*powerautomate.RunPage, error)
}

// liveRuns is how many of a monitored flow's newest runs the check reads: one page.
const liveRuns = 25

// Live observes a flow by reading its newest runs from Power Automate (status,
// times and error codes only): the frequent check. Failure-rate rules need the sync
// window's statistics and are left to the evaluation after each sync.
func Live(pa RunLister) Observer {
	return func(ctx context.Context, g teamcache.Governance) (Observation, bool, error) {
		page, err := pa.ListRuns(ctx, powerautomate.FlowRef{Environment: g.EnvironmentName, Flow: g.FlowName},
			powerautomate.ListRunsOptions{Top: liveRuns})
		if err != nil {
			return Observation{}, false, err
		}
		obs := Observation{Runs: make([]teamcache.RunBrief, 0, len(page.Runs))}
		for _, r := range page.Runs {
			b := teamcache.RunBrief{Name: r.Name, Status: r.Status, Start: teamcache.Time(r.StartTime), End: teamcache.Time(r.EndTime)}
			if r.Error != nil && r.Error.Code != "" {
				b.ErrorCode = r.Error.Code
			} else if failed(r.Status) {
				b.ErrorCode = r.Code
			}
			obs.Runs = append(obs.Runs, b)
		}
		return obs, true, nil
	}
}

// Users is what the check needs to find Team users (*cosmos.Store).
type Users interface {
	ListUserIDs(ctx context.Context, p cosmos.PageRequest) ([]string, string, error)
	GetUser(ctx context.Context, id string) (*cosmos.User, error)
}

// CheckReport counts what a check did.
type CheckReport struct {
	Users, Monitored, Raised, Recovered, Failed int
}

// maxCheckUsers bounds how many user ids one check lists.
const maxCheckUsers = 1_000_000

// Check evaluates the monitored flows of every Team user with consent (or only of
// user only), reading each flow's newest runs live as that user. Users without a
// monitored flow cost one store query and no upstream call.
func (r *Runner) Check(ctx context.Context, users Users, pa RunLister, only string) (CheckReport, error) {
	var rep CheckReport
	var ids []string
	if only != "" {
		ids = []string{only}
	} else {
		token := ""
		for len(ids) < maxCheckUsers {
			page, next, err := users.ListUserIDs(ctx, cosmos.PageRequest{Size: 1000, Token: token})
			if err != nil {
				return rep, fmt.Errorf("alerts: list users: %w", err)
			}
			ids = append(ids, page...)
			if next == "" {
				break
			}
			token = next
		}
	}
	observe := Live(pa)
	for _, id := range ids {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		u, err := users.GetUser(ctx, id)
		if errors.Is(err, cosmos.ErrNotFound) {
			continue
		}
		if err != nil {
			rep.Failed++
			continue
		}
		if u.Tier != cosmos.TierTeam || u.Consent != cosmos.ConsentGranted {
			continue
		}
		rep.Users++
		as := &powerautomate.Caller{UserID: u.ID, TenantID: u.TenantID, ObjectID: u.ObjectID, EmailHash: u.EmailHash,
			KeyGeneration: u.KeyGeneration}
		ur, err := r.EvaluateUser(powerautomate.WithCaller(ctx, as), u.ID, observe)
		rep.Monitored += ur.Monitored
		rep.Raised += ur.Raised
		rep.Recovered += ur.Recovered
		if err != nil || ur.Skipped > 0 {
			rep.Failed++
		}
	}
	r.o.Logger.Info("alert check finished", zap.Int("users", rep.Users), zap.Int("monitored_flows", rep.Monitored),
		zap.Int("alerts_raised", rep.Raised), zap.Int("incidents_recovered", rep.Recovered), zap.Int("users_failed", rep.Failed))
	return rep, nil
}
