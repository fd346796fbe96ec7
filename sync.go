package main

// Wiring of `flowstudio sync`: the Team cache job (the logic is tools/teamsync).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/server/outbound"
	"github.com/flowstudio/mcp/tools/alerts"
	"github.com/flowstudio/mcp/tools/alerts/notify"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"github.com/flowstudio/mcp/tools/teamcache"
	"github.com/flowstudio/mcp/tools/teamsync"
)

var (
	_ teamcache.Store   = (*cosmos.Store)(nil)
	_ teamsync.Store    = (*cosmos.Store)(nil)
	_ teamsync.Upstream = (*powerautomate.Client)(nil)
)

const syncUsage = `usage: flowstudio sync [--user-id TENANT.OBJECT] [--window 7d] [--monitored-only] [--server-url URL] [--data-dir D]

Refreshes the Team cache: for every team-tier user with consent granted, reads (as
that user) environments, flows with a definition summary, run statistics over the
window, connections and makers, and writes them to the user's cache partition.
Exits non-zero only when no user could be synced and at least one failed.
After each user it evaluates the alert rules of their monitored flows. With
--monitored-only it refreshes nothing and only checks monitored flows (their
newest runs, read live), raising and closing alerts: the frequent, cheap check.

In embedded mode the simulated tenant lives inside the running server, at
<server URL>/sim: sync reaches it at --server-url, else FLOWSTUDIO_PUBLIC_URL, else
http://FLOWSTUDIO_ADDR (the server's default address). Run it beside the server
on the same --data-dir. With FLOWSTUDIO_SIM_URL set, sync reaches the simulated
tenant there (` + "`flowstudio sim`" + `) instead, needs no running server and ignores
--server-url.

`

func syncCommand(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var userID, window, serverURL string
	var budget, timeout time.Duration
	var users int
	var monitoredOnly bool
	settings, err := settingsWithFlags("sync", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.Usage = func() { fmt.Fprint(stderr, syncUsage); fs.PrintDefaults() }
		fs.StringVar(&userID, "user-id", "", "sync only this user (<tenant id>.<object id>)")
		fs.StringVar(&window, "window", "7d", "run-statistics window: days (7d) or a duration (36h), 1h to 30d")
		fs.StringVar(&serverURL, "server-url", "", "embedded mode: the running server's URL (default FLOWSTUDIO_PUBLIC_URL, else http://FLOWSTUDIO_ADDR)")
		fs.DurationVar(&budget, "user-budget", 3*time.Minute, "time for one user's upstream reads; what is not read by then keeps its earlier cache")
		fs.DurationVar(&timeout, "timeout", 22*time.Minute, "time for the whole run's reads; writes of users in progress get up to a minute more (the Container Apps job stops at 25 minutes)")
		fs.IntVar(&users, "users", 4, "users synced at once")
		fs.BoolVar(&monitoredOnly, "monitored-only", false, "the frequent alert check: read only monitored flows' newest runs and raise or close alerts; the cache is not refreshed")
	})
	if err != nil {
		return err
	}
	win, err := teamcache.ParseWindow(window)
	if err != nil {
		return fmt.Errorf("--window: %w", err)
	}
	if userID != "" && (!strings.Contains(userID, ".") || strings.ContainsAny(userID, "/\\?# ")) {
		return errors.New("--user-id must be <tenant id>.<object id>")
	}
	log, err := newLogger(settings.LogLevel, stdout)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var paConfig powerautomate.Config
	if settings.Embedded() {
		if settings.Production() {
			return errors.New("sync refuses embedded defaults in production")
		}
		if settings.SimURL != "" {
			// The simulated tenant in its own process: no server needed.
			if err := os.MkdirAll(settings.DataDir, 0o700); err != nil {
				return err
			}
			secret, err := tokenSecret(settings)
			if err != nil {
				return err
			}
			if err := sameSimulatorKeys(ctx, settings.SimURL, newSimulatorAt(secret, "")); err != nil {
				return fmt.Errorf("FLOWSTUDIO_SIM_URL: %w", err)
			}
			paConfig = sim.ConfigFor(settings.SimURL)
		} else {
			if serverURL != "" {
				settings.PublicURL = strings.TrimRight(serverURL, "/")
			}
			if settings.PublicURL == "" {
				settings.PublicURL = "http://" + settings.Addr
			}
			if u, err := url.Parse(settings.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("--server-url must be an absolute http(s) URL")
			}
			if err := serverAnswers(ctx, settings.PublicURL); err != nil {
				return fmt.Errorf("embedded mode: the simulated tenant lives in the running server, and no server answers at %s (%v); "+
					"start `flowstudio serve` on this data directory, or pass --server-url (or run `flowstudio sim` and set FLOWSTUDIO_SIM_URL)", settings.PublicURL, err)
			}
			paConfig = sim.ConfigFor(settings.PublicURL + "/sim")
		}
	} else {
		paConfig = settings.Upstream()
	}

	store, sealer, err := openStoreAndSealer(ctx, settings, getenv)
	if err != nil {
		return err
	}
	defer store.Close()
	app, err := entraApp(settings, getenv)
	if err != nil {
		return err
	}
	tokens, err := delegatedTokens(app, store, sealer, log)
	if err != nil {
		return err
	}
	pa, err := powerautomate.New(paConfig, tokens)
	if err != nil {
		return err
	}
	runner, err := alertRunner(settings, store, log)
	if err != nil {
		return err
	}
	if monitoredOnly {
		// The frequent, cheap check: only monitored flows, one page of runs each.
		_, err := runner.Check(ctx, store, pa, userID)
		return err
	}
	syncer, err := teamsync.New(teamsync.Options{Store: store, Upstream: pa, Logger: log.Named("sync"),
		Window: win, UserBudget: budget, Users: users,
		AfterUser: func(ctx context.Context, id string) {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			if _, err := runner.EvaluateUser(ctx, id, alerts.FromCache(store, id)); err != nil {
				log.Warn("alert evaluation after sync failed", zap.String("error_kind", teamsync.ErrorKind(err)))
			}
		}})
	if err != nil {
		return err
	}
	rep, err := syncer.Run(ctx, userID)
	if err != nil {
		if errors.Is(err, teamsync.ErrAllFailed) {
			return fmt.Errorf("no user synced: %d failed, %d skipped (the log names each user's email hash and error kind)", rep.Failed, rep.Skipped)
		}
		return err
	}
	return nil
}

// alertRunner wires alerting: email when SMTP_HOST is set (else alerts show on the
// dashboard only), webhooks signed with the user's key derived from TOKEN_SECRET, and
// loopback webhooks only in embedded mode (development).
func alertRunner(settings server.Settings, store *cosmos.Store, log *zap.Logger) (*alerts.Runner, error) {
	secret, err := tokenSecret(settings)
	if err != nil {
		return nil, err
	}
	keys, err := keyring.New(secret)
	if err != nil {
		return nil, err
	}
	o := alerts.Options{Store: store, Webhook: notify.NewPoster(settings.Embedded() && !settings.Production()),
		WebhookSecret: keys.WebhookKey, Logger: log.Named("alerts")}
	if settings.SMTP.Enabled() {
		m, err := notify.NewMailer(settings.SMTP)
		if err != nil {
			return nil, err
		}
		o.Mail = m
	}
	return alerts.New(o)
}

// serverAnswers checks that a FlowStudio server answers /healthz at base.
func serverAnswers(ctx context.Context, base string) error {
	status, err := healthz(ctx, base)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("/healthz answered %d", status)
	}
	return err
}

// healthz GETs /healthz at base and returns the status it answered; any answer
// shows that something serves HTTP there (a simulator answers 404).
func healthz(ctx context.Context, base string) (int, error) {
	resp, cancel, err := getWithin5s(ctx, base+"/healthz")
	if err != nil {
		return 0, err
	}
	defer cancel()
	resp.Body.Close()
	return resp.StatusCode, nil
}

// outboundClient is the CLI's client for its checks of a server or simulator: TLS 1.2
// at least, like every outbound client.
var outboundClient = outbound.Client(0, false)

// getWithin5s GETs u within 5 s; an error names only its cause (not the URL
// again). The caller closes the body, then calls cancel.
func getWithin5s(ctx context.Context, u string) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	resp, err := outboundClient.Do(req)
	if err != nil {
		cancel()
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, err
	}
	return resp, cancel, nil
}
