// Command flowstudio is FlowStudio MCP: a hosted MCP server for Microsoft Power
// Automate. main.go is wiring only: settings → logger → store → keyring → upstream
// client → catalog → server → run.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/rpc/logsafe"
	"github.com/flowstudio/mcp/server"
	"github.com/flowstudio/mcp/server/billing"
	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/server/telemetry/otelexport"
	"github.com/flowstudio/mcp/tools"
	"github.com/flowstudio/mcp/tools/metering"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"github.com/flowstudio/mcp/tools/powerautomate/entrasim"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `flowstudio: a hosted MCP server for Microsoft Power Automate

Usage:
  flowstudio serve [--addr HOST:PORT] [--data-dir DIR]   run the server
  flowstudio dev-key --email E [--tier free|pro|team] [--scope full|read] [--grant connectors,dataverse]
                                                       print an API key for a simulated user (embedded mode only)
  flowstudio store init                                create the Cosmos DB database and containers
  flowstudio reports list [--limit N] [--json]         show the bug reports filed with report_bug
  flowstudio user show|revoke (--email E | --id ID)    support: show a user, or revoke its permission
  flowstudio rotate-key [--reseal-only]                add a refresh-token key version and re-seal every token
  flowstudio sync [--user-id ID] [--window 7d] [--server-url URL]
                                                       refresh the Team cache (scheduled job)
  flowstudio sim [--addr HOST:PORT] [--redirect-uri URL]
                                                       run the simulated tenant alone; serve, dev-key and
                                                       sync use it with FLOWSTUDIO_SIM_URL=http://HOST:PORT
  flowstudio version                                   print the version

Settings come from the environment; see the README. Every command takes --help.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv)) }

// commands are the subcommands by name; run answers version and help itself.
var commands = map[string]func(args []string, stdout, stderr io.Writer, getenv func(string) string) error{
	"serve": serve, "dev-key": devKey, "store": storeInit, "reports": reports, "user": userCommand,
	"sync": syncCommand, "rotate-key": rotateKey, "sim": simCommand,
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch run, ok := commands[cmd]; {
	case ok:
		err = run(rest, stdout, stderr, getenv)
	case cmd == "version":
		fmt.Fprintln(stdout, "flowstudio", version)
	case cmd == "-h" || cmd == "--help" || cmd == "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "flowstudio: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "flowstudio "+cmd+":", err)
		return 1
	}
	return 0
}

// invokedAs is how to run this program again the way it was started, for hints in
// the log: `go run .` when arg0 is the binary `go run` built into its temp dir
// (…/go-build<N>/b001/exe/<name>), else arg0 itself (a name on PATH or a path).
func invokedAs(arg0 string) string {
	exe := filepath.Dir(arg0)
	if filepath.Base(exe) == "exe" && strings.HasPrefix(filepath.Base(filepath.Dir(filepath.Dir(exe))), "go-build") {
		return "go run ."
	}
	return arg0
}

// settingsWithFlags reads the environment, then lets --addr and --data-dir override it.
func settingsWithFlags(name string, args []string, stderr io.Writer, getenv func(string) string, extra func(*flag.FlagSet)) (server.Settings, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := new(string)
	if name == "serve" { // only the server listens
		addr = fs.String("addr", "", "listen address (FLOWSTUDIO_ADDR, default 127.0.0.1:8080)")
	}
	dataDir := fs.String("data-dir", "", "data directory for embedded mode (FLOWSTUDIO_DATA_DIR, default ./data)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return server.Settings{}, err
	}
	env := func(k string) string {
		switch {
		case k == "FLOWSTUDIO_ADDR" && *addr != "":
			return *addr
		case k == "FLOWSTUDIO_DATA_DIR" && *dataDir != "":
			return *dataDir
		}
		return getenv(k)
	}
	return server.LoadSettings(env)
}

func newLogger(level string, out io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(out)), lvl)
	return zap.New(core), nil
}

// tokenSecret returns TOKEN_SECRET, or on embedded defaults the one generated into the
// data directory on first use, for a command that works beside a server (dev-key,
// sync, user, sim): it refuses a secret other than the one the data directory's server
// uses (see checkSecretFingerprint).
func tokenSecret(s server.Settings) (string, error) {
	secret, _, err := resolveTokenSecret(s, false)
	return secret, err
}

// secretFingerprintFile, in the data directory, holds a fingerprint of the TOKEN_SECRET
// the directory's server runs with, so that a command run beside it without that
// secret (which would print keys the server refuses) notices and says so.
const secretFingerprintFile = "token-secret.fingerprint"

// secretFingerprint identifies a TOKEN_SECRET without revealing it: 64 bits of a
// SHA-256 under a label of its own, enough to tell two secrets apart.
func secretFingerprint(secret string) string {
	sum := sha256.Sum256([]byte("flowstudio token-secret fingerprint v1\x00" + secret))
	return "v1:" + hex.EncodeToString(sum[:8])
}

// resolveTokenSecret is tokenSecret for serve (serving: its secret is the data
// directory's from now on; replaced reports that another one was recorded before) and
// for the other commands (which must match what is recorded).
func resolveTokenSecret(s server.Settings, serving bool) (secret string, replaced bool, err error) {
	if s.TokenSecret == "" && (s.Production() || !s.Embedded()) {
		return "", false, errors.New("TOKEN_SECRET is required outside embedded mode")
	}
	if s.Production() || !s.Embedded() {
		return s.TokenSecret, false, nil // no data directory: nothing to compare with
	}
	fpPath := filepath.Join(s.DataDir, secretFingerprintFile)
	recorded := ""
	if b, err := os.ReadFile(fpPath); err == nil {
		recorded = strings.TrimSpace(string(b))
	}
	if secret = s.TokenSecret; secret == "" {
		if _, err := os.Stat(filepath.Join(s.DataDir, "token-secret")); recorded != "" && errors.Is(err, os.ErrNotExist) && !serving {
			// Generating one now would print keys that the server refuses.
			return "", false, errServerHasOwnSecret(s.DataDir)
		}
		if secret, err = generatedTokenSecret(s.DataDir); err != nil {
			return "", false, err
		}
	}
	fp := secretFingerprint(secret)
	switch {
	case recorded == fp:
	case serving:
		return secret, recorded != "", writeFingerprint(fpPath, fp, true)
	case recorded == "":
		return secret, false, writeFingerprint(fpPath, fp, false)
	case s.TokenSecret == "":
		return "", false, errServerHasOwnSecret(s.DataDir)
	default:
		return "", false, fmt.Errorf("TOKEN_SECRET is not the one the server using the data directory %s runs with "+
			"(its fingerprint is in %s): keys made with it would be refused there. Run this command with the "+
			"server's TOKEN_SECRET, or with none if the server has none", s.DataDir, secretFingerprintFile)
	}
	return secret, false, nil
}

func errServerHasOwnSecret(dataDir string) error {
	return fmt.Errorf("the server using the data directory %s runs with a TOKEN_SECRET of its own (set in its "+
		"environment), and this command has none: a key made here would be refused there. Run it with the same "+
		"TOKEN_SECRET as the server", dataDir)
}

// writeFingerprint records fp; only serve overwrites one. A data directory that does
// not exist (sim with TOKEN_SECRET alone) keeps none.
func writeFingerprint(path, fp string, overwrite bool) error {
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return nil
	}
	if !overwrite {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return nil // another process recorded one meanwhile; the next run compares
		}
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.WriteString(fp + "\n")
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fp+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// generatedTokenSecret returns the data directory's generated TOKEN_SECRET, creating
// it on first use (exclusively, so a CLI and a server starting together agree on one).
func generatedTokenSecret(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "token-secret")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= keyring.MinSecretLength {
		return strings.TrimSpace(string(b)), nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		time.Sleep(50 * time.Millisecond) // another process is writing it
		b, err := os.ReadFile(path)
		return strings.TrimSpace(string(b)), err
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.WriteString(secret + "\n"); err != nil {
		return "", err
	}
	return secret, f.Sync()
}

// loadKeyring reads (or, on embedded defaults, generates) TOKEN_SECRET and derives
// every key from it.
func loadKeyring(s server.Settings) (string, *keyring.Keyring, error) {
	secret, err := tokenSecret(s)
	if err != nil {
		return "", nil, err
	}
	keys, err := keyring.New(secret)
	return secret, keys, err
}

// serverKeyring is loadKeyring for serve: its TOKEN_SECRET becomes the one the data
// directory's fingerprint names (replaced: another was recorded before).
func serverKeyring(s server.Settings) (string, *keyring.Keyring, bool, error) {
	secret, replaced, err := resolveTokenSecret(s, true)
	if err != nil {
		return "", nil, false, err
	}
	keys, err := keyring.New(secret)
	return secret, keys, replaced, err
}

// openStore opens Cosmos DB when COSMOS_ENDPOINT is set (managed identity in Azure;
// COSMOS_KEY only for emulators, refused in production), else the embedded store.
// Neither does network I/O here: a cold start is not slowed down.
func openStore(ctx context.Context, s server.Settings, getenv func(string) string) (*cosmos.Store, error) {
	if s.CosmosEndpoint != "" {
		cfg := cosmos.CosmosConfig{Endpoint: s.CosmosEndpoint, Database: s.CosmosDatabase, Key: getenv("COSMOS_KEY")}
		if cfg.Key != "" && s.Production() {
			return nil, errors.New("COSMOS_KEY is for emulators only; production uses its managed identity")
		}
		if cfg.Key == "" {
			cred, err := cosmos.AzureCredential(getenv("AZURE_CLIENT_ID"))
			if err != nil {
				return nil, err
			}
			cfg.Credential = cred
		}
		return cosmos.OpenCosmos(ctx, cfg)
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return nil, err
	}
	return cosmos.OpenEmbedded(s.DataDir)
}

// commandStore opens the store for a command that may run up to timeout (ctx ends
// then); done closes the store and ends ctx.
func commandStore(settings server.Settings, getenv func(string) string, timeout time.Duration) (context.Context, *cosmos.Store, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	store, err := openStore(ctx, settings, getenv)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, store, func() { store.Close(); cancel() }, nil
}

// storeInit creates the database and containers (partition keys, TTL on). The
// server never does this itself.
func storeInit(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "init" {
		return errors.New("usage: flowstudio store init [--data-dir D]")
	}
	settings, err := settingsWithFlags("store init", args[1:], stderr, getenv, nil)
	if err != nil {
		return err
	}
	ctx, store, done, err := commandStore(settings, getenv, 2*time.Minute)
	if err != nil {
		return err
	}
	defer done()
	if err := store.Provision(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "store ready")
	return nil
}

func serve(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	settings, err := settingsWithFlags("serve", args, stderr, getenv, nil)
	if err != nil {
		return err
	}
	tuneGC(getenv)
	// One locked sink for both loggers, so that their lines never interleave.
	sink := zapcore.Lock(zapcore.AddSync(stdout))
	log, err := newLogger(settings.LogLevel, sink)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck
	if settings.Embedded() {
		if err := os.MkdirAll(settings.DataDir, 0o700); err != nil {
			return err
		}
	}
	secret, keys, secretReplaced, err := serverKeyring(settings)
	if err != nil {
		return err
	}
	if secretReplaced {
		log.Warn("TOKEN_SECRET is not the one this data directory was last served with: keys, sessions and email hashes made before no longer match",
			zap.String("data_dir", settings.DataDir))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	store, err := openStore(ctx, settings, getenv)
	if err != nil {
		return err
	}
	defer store.Close()
	// Embedded: a store file deleted or replaced under the server fails every operation
	// and /readyz from then on; said once here.
	store.OnLost(func(error) {
		log.Error("the embedded store file was deleted or replaced while the server ran: every store operation now fails "+
			"and /readyz answers 503 (writes would have been lost); restore the file or restart the server",
			zap.String("store_file", filepath.Join(settings.DataDir, cosmos.EmbeddedFile)))
	})

	// Listen before building the rest: embedded mode needs the real address for its
	// public URL and the simulator's links.
	ln, err := net.Listen("tcp", settings.Addr)
	if err != nil {
		return err
	}
	if settings.PublicURL == "" {
		settings.PublicURL = "http://" + ln.Addr().String()
	}

	var simulator *asyncSimulator
	var paConfig powerautomate.Config
	var tokens powerautomate.TokenSource
	simulatedTenant := settings.PublicURL + "/sim"
	if settings.Embedded() && settings.SimURL != "" {
		// The simulated tenant runs in its own process (`flowstudio sim`): nothing of
		// it is built or mounted here.
		simulatedTenant = settings.SimURL
		paConfig = sim.ConfigFor(settings.SimURL)
		if getenv("FLOWSTUDIO_SIM_LATENCY") != "" {
			log.Warn("FLOWSTUDIO_SIM_LATENCY is ignored with FLOWSTUDIO_SIM_URL: set it on `flowstudio sim`")
		}
		go func() {
			if _, err := healthz(ctx, settings.SimURL); err != nil && ctx.Err() == nil { // any status will do
				log.Warn("no simulated tenant answers at FLOWSTUDIO_SIM_URL yet; start `flowstudio sim` there",
					zap.String("sim_url", settings.SimURL), logsafe.Error(err))
			}
		}()
	} else if settings.Embedded() {
		latency, err := simLatency(getenv)
		if err != nil {
			return err
		}
		simulator = startSimulator(secret, latency)
		paConfig = sim.ConfigFor(settings.PublicURL + "/sim")
		go func() { // sign-in back to a public URL that is not loopback
			if s, err := simulator.get(ctx); err == nil {
				s.Entra().AddRedirectURI(entrasim.DevClientID, settings.PublicURL+"/callback")
			}
		}()
	} else {
		paConfig = settings.Upstream()
	}
	// Refresh tokens are sealed with keys from Key Vault (or the data directory's key
	// file); delegated tokens are redeemed at Entra ID, in embedded mode at the
	// simulator's stand-in, through the same code.
	sealer, err := openSealer(settings, getenv)
	if err != nil {
		return err
	}
	go func() { // first use must not wait for Key Vault
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := sealer.Warm(wctx); err != nil {
			log.Warn("refresh-token key not readable yet; retried on first use", logsafe.Error(err))
		}
	}()
	entra, err := entraApp(settings, getenv)
	if err != nil {
		return err
	}
	if tokens, err = delegatedTokens(entra, store, sealer, log); err != nil {
		return err
	}
	pa, err := powerautomate.New(paConfig, tokens)
	if err != nil {
		return err
	}
	env := &tools.Env{PA: pa, DashboardURL: settings.PublicURL + "/dashboard", SignInReturnURL: settings.PublicURL + "/connections/signed-in",
		Logger: log, Reports: store, Cache: store}
	// Metering lines, one per call, are buffered (64 KiB or 1 s, and on drain) so that
	// a call does not pay a write to stdout of its own; operational lines are not.
	meterSink := &zapcore.BufferedWriteSyncer{WS: sink, Size: 64 << 10, FlushInterval: time.Second}
	defer meterSink.Stop() //nolint:errcheck // runs after the drain below has written the last lines
	meter := metering.New(metering.Options{Store: store, Quotas: settings.Quotas, DashboardURL: env.DashboardURL,
		Log: metering.NewLogger(meterSink), Ops: log})
	catalog, err := tools.NewCatalog(env, meter, 0, tools.All())
	if err != nil {
		return err
	}
	deps := server.Deps{Settings: settings, Logger: log, Keys: keys, Users: store, Accounts: store, Billing: store, OAuth: store, Alerts: store,
		Stripe: stripeClient(settings), AccountData: store, UsageHistory: store, Sealer: sealer, Catalog: catalog, Ready: store.Ping, Version: version,
		Entra: entra}
	if simulator != nil {
		deps.Simulator = simulator
	}
	srv := server.New(deps)
	httpServer := newHTTPServer(srv.Handler(), log)

	// Metrics: the internal Prometheus listener (FLOWSTUDIO_METRICS_ADDR, never on ln)
	// and OTLP export (OTEL_EXPORTER_OTLP_ENDPOINT); nothing at all when both are unset.
	metrics, err := otelexport.Start(ctx, otelexport.Options{MetricsAddr: settings.MetricsAddr, Version: version,
		Log: log, Getenv: getenv})
	if err != nil {
		return err
	}
	mode := "azure"
	if settings.Embedded() {
		mode = "embedded"
		log.Warn("EMBEDDED DEFAULTS: single-file store, simulated Power Automate tenant, no Azure; not for production",
			zap.String("data_dir", settings.DataDir), zap.String("simulated_tenant", simulatedTenant),
			zap.String("get_a_key", invokedAs(os.Args[0])+" dev-key --email you@contoso.com --data-dir "+settings.DataDir))
	}
	log.Info("flowstudio starting", zap.String("version", version), zap.String("mode", mode),
		zap.String("addr", ln.Addr().String()), zap.String("mcp_url", settings.PublicURL+"/mcp"))

	go srv.ReleaseMemoryWhenIdle(ctx, 5*time.Second)
	if err := serveUntilDone(ctx, httpServer, ln); err != nil {
		return err
	}
	// Stop accepting, let in-flight calls finish within the drain timeout.
	srv.Drain()
	log.Info("draining", zap.Duration("timeout", settings.DrainTimeout))
	drainCtx, cancel := context.WithTimeout(context.Background(), settings.DrainTimeout)
	defer cancel()
	drainErr := httpServer.Shutdown(drainCtx)
	// Write the usage counted since the last flush: a replica that stops loses no count.
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelFlush()
	if err := meter.Close(flushCtx); err != nil {
		log.Error("usage counters not written at drain", logsafe.Error(err))
	}
	// Stop the metrics listener and push the last OTLP export, counting the drain.
	if err := metrics.Shutdown(flushCtx); err != nil {
		log.Warn("metrics not shut down cleanly", logsafe.Error(err))
	}
	if drainErr != nil {
		log.Error("drain incomplete", zap.Error(drainErr))
		return drainErr
	}
	log.Info("stopped")
	return nil
}

// serveUntilDone serves on ln until ctx ends (nil: time to drain) or serving fails.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
}

// newHTTPServer is the listener configuration of serve and sim.
func newHTTPServer(h http.Handler, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// SSE responses lift this deadline for themselves (rpc).
		WriteTimeout:   3 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       zap.NewStdLog(log.Named("http")),
	}
}

// tuneGC sets the collector for a server whose live heap is a few MB: at the default
// GOGC=100 a collection ran every ~4 MB allocated, a quarter of the CPU of a call
// (mark work and allocation assists); 200 halves that for ~4 MB more heap under
// load. The soft limit makes it collect harder before a replica's memory (0.5 GiB)
// is at risk. GOGC and GOMEMLIMIT in the environment win.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(256 << 20)
	}
}

func devKey(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var email, tier, scope, grantNames string
	settings, err := settingsWithFlags("dev-key", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "email of the simulated user (required)")
		fs.StringVar(&tier, "tier", "free", "plan: free, pro or team")
		fs.StringVar(&scope, "scope", tools.ScopeFull, "key scope: full or read")
		fs.StringVar(&grantNames, "grant", "", "consent beyond the default sign-in, as the dashboard's grant buttons give: connectors")
	})
	if err != nil {
		return err
	}
	if !settings.Embedded() || settings.Production() {
		return errors.New("dev-key works only in embedded mode (no COSMOS_ENDPOINT, FLOW_API_URL or ENTRA_CLIENT_ID; not production)")
	}
	if !strings.Contains(email, "@") {
		return errors.New("--email is required")
	}
	t, ok := cosmos.ParseTier(tier)
	if !ok {
		return errors.New("--tier must be free, pro or team")
	}
	if scope != tools.ScopeFull && scope != tools.ScopeRead {
		return errors.New("--scope must be full or read")
	}
	if err := os.MkdirAll(settings.DataDir, 0o700); err != nil {
		return err
	}
	secret, keys, err := loadKeyring(settings)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, sealer, err := openStoreAndSealer(ctx, settings, getenv)
	if err != nil {
		return err
	}
	defer store.Close()
	var grants []identity.Grant
	for _, name := range strings.FieldsFunc(grantNames, func(r rune) bool { return r == ',' }) {
		g, ok := identity.LookupGrant(strings.TrimSpace(name))
		if !ok {
			return fmt.Errorf("--grant: unknown grant %q (known: %s)", name, strings.Join(identity.GrantNames(), ", "))
		}
		grants = append(grants, g)
	}
	local := newSimulator(secret)
	if settings.SimURL != "" {
		// The refresh token is minted here and redeemed there: the two must share keys.
		if err := sameSimulatorKeys(ctx, settings.SimURL, local); errors.Is(err, errSimUnreachable) {
			fmt.Fprintf(stderr, "note: %v; the key works once it runs with this TOKEN_SECRET or --data-dir\n", err)
		} else if err != nil {
			return err
		}
	}
	user, err := ensureDevUser(ctx, store, keys, sealer, local, email, t, grants)
	if err != nil {
		return err
	}
	key, err := keys.Issue(user.ID, user.KeyGeneration, time.Unix(user.KeyIssuedAt, 0), scope)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, key)
	return nil
}

// ensureDevUser creates or updates a consented simulated user holding a sealed refresh
// token from the simulator's Entra stand-in, as if they had signed in: tool calls then
// redeem it exactly as in production. An existing consented user keeps its key
// generation and refresh token, so running dev-key again prints the same key.
func ensureDevUser(ctx context.Context, store *cosmos.Store, keys *keyring.Keyring, sealer identity.Sealer, simulator *sim.Sim, email string, tier cosmos.Tier, grants []identity.Grant) (*cosmos.User, error) {
	tenantID, objectID := simulator.UserFor(email)
	id := cosmos.UserID(tenantID, objectID)
	scopes := slices.Clone(identity.ConsentScopes)
	var granted []string
	for _, g := range grants {
		scopes, granted = append(scopes, g.Scopes...), append(granted, g.Name)
	}
	// Issued and sealed up front; used only if the user has no token, or gains a grant.
	rt := simulator.Entra().IssueRefreshToken(tenantID, objectID, entrasim.DevClientID, scopes)
	sealed, version, err := sealer.Seal(ctx, id, []byte(rt))
	if err != nil {
		return nil, fmt.Errorf("seal refresh token: %w", err)
	}
	u, err := store.UpdateUser(ctx, id, func(u *cosmos.User) error {
		u.Tier = tier
		if u.Consent != cosmos.ConsentGranted || len(u.SealedRefreshToken) == 0 || !containsAll(u.ConsentedResources, granted) {
			u.SealedRefreshToken, u.SealKeyVersion = sealed, version
		}
		for _, g := range granted {
			if !slices.Contains(u.ConsentedResources, g) {
				u.ConsentedResources = append(u.ConsentedResources, g)
			}
		}
		u.Consent = cosmos.ConsentGranted
		if u.KeyGeneration == 0 {
			u.KeyGeneration, u.KeyIssuedAt = 1, time.Now().Unix()
		}
		return nil
	})
	if !errors.Is(err, cosmos.ErrNotFound) {
		return u, err
	}
	// No display name: like a real sign-in, the store keeps none (the dashboard takes it
	// from the session cookie).
	u, err = store.CreateUser(ctx, &cosmos.User{ID: id, TenantID: tenantID, ObjectID: objectID,
		EmailHash: keys.HashEmail(email), Tier: tier, ConsentedResources: granted,
		KeyGeneration: 1, KeyIssuedAt: time.Now().Unix(), Consent: cosmos.ConsentGranted,
		SealedRefreshToken: sealed, SealKeyVersion: version})
	if errors.Is(err, cosmos.ErrConflict) { // created concurrently by another process
		return store.GetUser(ctx, id)
	}
	return u, err
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// newSimulator builds the simulated tenant mounted at /sim. Its signing key is seeded
// from TOKEN_SECRET so that tokens it issued survive a restart.
func newSimulator(secret string) *sim.Sim { return newSimulatorAt(secret, "/sim") }

// newSimulatorAt builds the simulated tenant mounted at prefix ("" for the root, as
// `flowstudio sim` does). Every one built from the same TOKEN_SECRET has the same
// keys, so each redeems the refresh tokens another issued (dev-key's, say).
func newSimulatorAt(secret, prefix string) *sim.Sim {
	seed := sha256.Sum256([]byte("flowstudio simulator key v1\x00" + secret))
	return sim.New(sim.Options{PathPrefix: prefix, KeySeed: seed[:]})
}

// simLatency reads FLOWSTUDIO_SIM_LATENCY: a slower simulated Flow API, for demos and
// for drain tests.
func simLatency(getenv func(string) string) (time.Duration, error) {
	d := strings.TrimSpace(getenv("FLOWSTUDIO_SIM_LATENCY"))
	if d == "" {
		return 0, nil
	}
	latency, err := time.ParseDuration(d)
	if err != nil || latency < 0 {
		return 0, fmt.Errorf("FLOWSTUDIO_SIM_LATENCY: want a duration such as 200ms, got %q", d)
	}
	return latency, nil
}

func withLatency(s *sim.Sim, latency time.Duration) *sim.Sim {
	if latency > 0 {
		s.InjectFault(sim.FaultMatch{PathContains: "/flow/"}, sim.Fault{Delay: latency})
	}
	return s
}

// asyncSimulator builds the simulated tenant in the background: its signing key and
// seed data take 100-250 ms, which a cold start must not wait for. Only requests that
// reach /sim, or need a simulator token, wait for it.
type asyncSimulator struct {
	ready chan struct{}
	sim   *sim.Sim
}

func startSimulator(secret string, latency time.Duration) *asyncSimulator {
	a := &asyncSimulator{ready: make(chan struct{})}
	go func() {
		a.sim = withLatency(newSimulator(secret), latency)
		close(a.ready)
	}()
	return a
}

func (a *asyncSimulator) get(ctx context.Context) (*sim.Sim, error) {
	select {
	case <-a.ready:
		return a.sim, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *asyncSimulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, err := a.get(r.Context())
	if err != nil {
		http.Error(w, "simulator starting", http.StatusServiceUnavailable)
		return
	}
	s.Handler().ServeHTTP(w, r)
}

// missingTokens stands in until delegated sign-in is configured: every call asks the
// user to reconnect.
type missingTokens struct{}

func (missingTokens) Token(context.Context, string) (string, error) {
	return "", powerautomate.ErrReconnect
}

const simUsage = `usage: flowstudio sim [--addr HOST:PORT] [--redirect-uri URL] [--data-dir D]

Serves the simulated tenant alone, at the root of --addr: the Entra ID stand-in
(/entra), Flow (/flow), Power Apps (/powerapps), BAP (/bap), ppapi (/ppapi/{envhost}),
connector runtimes (/apihub) and content links (/content). GET /healthz answers
{"status":"ok","simulator":true}. It is what ` + "`flowstudio serve`" + ` otherwise builds in-process
under <public URL>/sim; its data (flows, runs, consents) lives in memory.

serve, dev-key and sync use it when FLOWSTUDIO_SIM_URL is the URL they reach it at,
with no /sim: FLOWSTUDIO_SIM_URL=http://127.0.0.1:8090. Run it with the same
TOKEN_SECRET as they have, or on the same --data-dir (whose generated token-secret it
reads, or creates): its signing keys derive from that secret, so that it redeems the
refresh tokens dev-key and sign-in stored.

Sign-in: the development client accepts http://127.0.0.1:<any port>/callback and
http://localhost:<any port>/callback. A server whose public URL is not loopback needs
its <public URL>/callback accepted: give it with --redirect-uri, or set
FLOWSTUDIO_PUBLIC_URL (the server's) in this command's environment too.

FLOWSTUDIO_SIM_LATENCY (a duration) slows the simulated Flow API. Not for production:
FLOWSTUDIO_ENV=production refuses to run it. SIGTERM drains requests in flight within
FLOWSTUDIO_DRAIN_TIMEOUT.

`

// simCommand is `flowstudio sim`: the simulated tenant in its own process, mounted at
// the root, so that a server reaches it over the network like a real upstream
// (FLOWSTUDIO_SIM_URL) and its CPU and memory are not counted against the server.
func simCommand(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var addr string
	var redirects []string
	settings, err := settingsWithFlags("sim", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.Usage = func() { fmt.Fprint(stderr, simUsage); fs.PrintDefaults() }
		fs.StringVar(&addr, "addr", "127.0.0.1:8090", "listen address; the others then take FLOWSTUDIO_SIM_URL=http://<this address>")
		fs.Func("redirect-uri", "one more sign-in redirect URI to accept, e.g. https://mcp.example.com/callback (repeatable, or a comma list)", func(v string) error {
			for _, uri := range strings.Split(v, ",") {
				if uri = strings.TrimSpace(uri); uri == "" {
					continue
				}
				if u, err := url.Parse(uri); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return fmt.Errorf("%q is not an absolute http(s) URL", uri)
				}
				redirects = append(redirects, uri)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if settings.Production() {
		return errors.New("the simulated tenant is for development and tests: FLOWSTUDIO_ENV=production refuses it")
	}
	if settings.PublicURL != "" {
		redirects = append(redirects, settings.PublicURL+"/callback")
	}
	latency, err := simLatency(getenv)
	if err != nil {
		return err
	}
	log, err := newLogger(settings.LogLevel, stdout)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck
	if settings.TokenSecret == "" {
		if err := os.MkdirAll(settings.DataDir, 0o700); err != nil {
			return err
		}
	}
	secret, err := tokenSecret(settings)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// Built before serving, so that the first request that gets an answer gets data.
	simulator := withLatency(newSimulatorAt(secret, ""), latency)
	for _, uri := range redirects {
		simulator.Entra().AddRedirectURI(entrasim.DevClientID, uri)
	}
	tenant := simulator.Handler()
	httpServer := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.URL.Path == "/healthz" || r.URL.Path == "/") && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, `{"status":"ok","simulator":true}`+"\n")
			return
		}
		tenant.ServeHTTP(w, r)
	}), log)
	simURL := "http://" + ln.Addr().String()
	secretFrom := "TOKEN_SECRET"
	if settings.TokenSecret == "" {
		secretFrom = filepath.Join(settings.DataDir, "token-secret")
	}
	log.Info("simulated tenant listening; not for production", zap.String("version", version), zap.String("addr", ln.Addr().String()),
		zap.String("sim_url", simURL), zap.String("use_with", "FLOWSTUDIO_SIM_URL="+simURL), zap.String("keys_from", secretFrom),
		zap.Duration("flow_latency", latency), zap.Strings("redirect_uris", redirects))

	if err := serveUntilDone(ctx, httpServer, ln); err != nil {
		return err
	}
	log.Info("draining", zap.Duration("timeout", settings.DrainTimeout))
	drainCtx, cancel := context.WithTimeout(context.Background(), settings.DrainTimeout)
	defer cancel()
	if err := httpServer.Shutdown(drainCtx); err != nil {
		log.Error("drain incomplete", zap.Error(err))
		return err
	}
	log.Info("stopped")
	return nil
}

// errSimUnreachable: nothing answered at FLOWSTUDIO_SIM_URL.
var errSimUnreachable = errors.New("no simulated tenant answers")

// sameSimulatorKeys checks that the simulated tenant at simURL signs with the keys
// this TOKEN_SECRET gives (local is a simulator built from it): one that does not
// refuses every refresh token stored here. Nothing is redeemed.
func sameSimulatorKeys(ctx context.Context, simURL string, local *sim.Sim) error {
	keysURL := simURL + server.SimEntraPath + "/organizations/discovery/v2.0/keys"
	resp, cancel, err := getWithin5s(ctx, keysURL)
	if err != nil {
		return fmt.Errorf("%w at %s (%v); start `flowstudio sim` there", errSimUnreachable, simURL, err)
	}
	defer cancel()
	defer resp.Body.Close()
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&jwks); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d, not the simulated tenant's keys: is FLOWSTUDIO_SIM_URL the URL of `flowstudio sim`?", keysURL, resp.StatusCode)
	}
	for _, k := range jwks.Keys {
		if k.Kid == local.KeyID() {
			return nil
		}
	}
	return fmt.Errorf("the simulated tenant at %s signs with other keys than this TOKEN_SECRET gives, and would refuse the "+
		"refresh tokens stored here: run `flowstudio sim` with the same TOKEN_SECRET, or on the same --data-dir", simURL)
}

// stripeClient is the Stripe API client of the settings; nil (billing off)
// without STRIPE_SECRET_KEY.
func stripeClient(s server.Settings) *billing.Client {
	return billing.New(billing.Config{SecretKey: s.StripeSecretKey, APIBase: s.StripeAPIBase,
		PricePro: s.StripePricePro, PriceTeam: s.StripePriceTeam})
}
