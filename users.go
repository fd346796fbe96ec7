package main

// Wiring of refresh-token sealing and delegated tokens, and the operator
// commands `flowstudio user show|revoke` and `flowstudio rotate-key`.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/flowstudio/mcp/cosmos"
	"github.com/flowstudio/mcp/server"
	"github.com/flowstudio/mcp/server/account"
	"github.com/flowstudio/mcp/server/identity"
	"github.com/flowstudio/mcp/server/keyring"
	"github.com/flowstudio/mcp/server/sealing"
	"github.com/flowstudio/mcp/tools/powerautomate"
	"go.uber.org/zap"
)

// openSealer returns the refresh-token sealer: keys from the Key Vault secret
// KEYVAULT_SECRET_NAME when KEYVAULT_URL is set (managed identity AZURE_CLIENT_ID
// in Azure), else from the key file in the data directory. No I/O happens here.
func openSealer(s server.Settings, getenv func(string) string) (*sealing.Sealer, error) {
	if s.KeyVaultURL != "" {
		cred, err := cosmos.AzureCredential(getenv("AZURE_CLIENT_ID"))
		if err != nil {
			return nil, fmt.Errorf("KEYVAULT_URL: credential: %w", err)
		}
		client, err := sealing.NewVaultClient(s.KeyVaultURL, cred, nil)
		if err != nil {
			return nil, fmt.Errorf("KEYVAULT_URL: %w", err)
		}
		return sealing.New(sealing.NewVaultKeys(client, s.KeyVaultSecretName), sealing.Options{}), nil
	}
	if s.Production() {
		return nil, errors.New("KEYVAULT_URL is required in production")
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return nil, err
	}
	return sealing.New(sealing.NewFileKeys(filepath.Join(s.DataDir, sealing.KeyFile)), sealing.Options{}), nil
}

// entraApp is the app registration in force (Settings.Entra): without
// ENTRA_CLIENT_SECRET the app proves itself with a federated credential, its
// managed identity's token (AZURE_CLIENT_ID) as the client assertion, at sign-in
// and at every refresh-token redemption alike.
func entraApp(settings server.Settings, getenv func(string) string) (identity.App, error) {
	return settings.Entra(func() (azcore.TokenCredential, error) { return cosmos.AzureCredential(getenv("AZURE_CLIENT_ID")) })
}

// delegatedTokens is the token source of the tools: the user's sealed refresh token
// redeemed at the app's Entra authority. Without an app registration (Azure storage
// but no ENTRA_CLIENT_ID, outside production) every call asks to reconnect.
func delegatedTokens(app identity.App, users identity.Users, sealer identity.Sealer, log *zap.Logger) (powerautomate.TokenSource, error) {
	if app.ClientID == "" {
		log.Warn("ENTRA_CLIENT_ID is not set: tools cannot reach Power Automate; every call asks the user to reconnect")
		return missingTokens{}, nil
	}
	return identity.NewTokenSource(identity.Config{App: app, Logger: log.Named("tokens")}, users, sealer)
}

// openStoreAndSealer opens the store and the refresh-token sealer: the preamble of
// every command that reads or writes refresh tokens. The caller closes the store.
func openStoreAndSealer(ctx context.Context, settings server.Settings, getenv func(string) string) (*cosmos.Store, *sealing.Sealer, error) {
	store, err := openStore(ctx, settings, getenv)
	if err != nil {
		return nil, nil, err
	}
	sealer, err := openSealer(settings, getenv)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return store, sealer, nil
}

// operatorEnv is what the operator commands open: settings, keys and the store.
type operatorEnv struct {
	settings server.Settings
	keys     *keyring.Keyring
	store    *cosmos.Store
}

func openOperatorEnv(ctx context.Context, settings server.Settings, getenv func(string) string) (*operatorEnv, error) {
	if settings.Embedded() {
		if err := os.MkdirAll(settings.DataDir, 0o700); err != nil {
			return nil, err
		}
	}
	_, keys, err := loadKeyring(settings)
	if err != nil {
		return nil, err
	}
	store, err := openStore(ctx, settings, getenv)
	if err != nil {
		return nil, err
	}
	return &operatorEnv{settings: settings, keys: keys, store: store}, nil
}

const userUsage = `usage: flowstudio user show|revoke|delete (--email E | --id TENANT.OBJECT) [--data-dir D]

  show    print a user's id, tenant, tier, consent, key generation, subscription and dates
          (never a token, never more of the email than you typed)
  revoke  what the dashboard's "Revoke permission" does: delete the sealed refresh token,
          bump the key generation (every key of the user stops working), consent revoked
  delete  what the dashboard's "Delete my account" does: cancel a live Stripe subscription
          (STRIPE_SECRET_KEY), then delete the refresh token, OAuth grants, Team cache, usage
          counters, bug reports and the user record; keys stop working at once. Log lines
          (email hash only) stay until their 90 days are up
`

func userCommand(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || (args[0] != "show" && args[0] != "revoke" && args[0] != "delete") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, userUsage)
			return flag.ErrHelp
		}
		fmt.Fprint(stderr, userUsage)
		return errors.New("user: say show, revoke or delete")
	}
	sub := args[0]
	var email, id string
	settings, err := settingsWithFlags("user "+sub, args[1:], stderr, getenv, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the user's email address")
		fs.StringVar(&id, "id", "", "the user's id (<tenant id>.<object id>), instead of --email")
	})
	if err != nil {
		return err
	}
	if (email == "") == (id == "") {
		return errors.New("give exactly one of --email and --id")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := openOperatorEnv(ctx, settings, getenv)
	if err != nil {
		return err
	}
	defer env.store.Close()

	var users []*cosmos.User
	if id != "" {
		u, err := env.store.GetUser(ctx, id)
		if errors.Is(err, cosmos.ErrNotFound) {
			return fmt.Errorf("no user with id %s", id)
		}
		if err != nil {
			return err
		}
		users = []*cosmos.User{u}
	} else {
		if !strings.Contains(email, "@") {
			return errors.New("--email must be an email address")
		}
		if users, err = env.store.FindUsersByEmailHash(ctx, env.keys.HashEmail(email)); err != nil {
			return err
		}
		if len(users) == 0 {
			return errors.New("no user with that email")
		}
	}

	switch sub {
	case "show":
		for i, u := range users {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			printUser(stdout, u)
		}
		return nil
	}
	if len(users) > 1 {
		var ids []string
		for _, u := range users {
			ids = append(ids, u.ID)
		}
		return fmt.Errorf("%d users have that email (%s): %s one with --id", len(users), strings.Join(ids, ", "), sub)
	}
	switch sub {
	case "delete":
		d := account.Deps{Store: env.store, Settle: account.DefaultSettle}
		if c := stripeClient(settings); c.Enabled() {
			d.Stripe = c
		}
		done, err := account.Delete(ctx, d, users[0].ID)
		if err != nil {
			return err
		}
		cancelled := "no live subscription"
		if done.SubscriptionCancelled {
			cancelled = "subscription cancelled at Stripe"
		}
		fmt.Fprintf(stdout, "deleted %s: %s; refresh token, user record, %d usage counters, %d Team cache items, %d bug reports, %d OAuth grants (%d codes and refresh tokens) deleted; its keys no longer work\n",
			users[0].ID, cancelled, done.UsageCounters, done.CacheItems, done.BugReports, done.Grants, done.OAuthTokens)
		fmt.Fprintln(stdout, "not deleted at once: "+account.LogRetention)
		return nil
	default: // revoke
		u, err := identity.Revoke(ctx, env.store, users[0].ID)
		if u == nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s: refresh token deleted, consent %s, key generation now %d (earlier keys no longer work)\n",
			u.ID, u.Consent, u.KeyGeneration)
		if err != nil { // identity.ErrNotErased: revoked, erasing again later finishes it
			return fmt.Errorf("%w; run the command again to erase it", err)
		}
		return nil
	}
}

// grantsOf lists the consents beyond the default sign-in (identity.GrantConnectors).
func grantsOf(u *cosmos.User) string {
	if len(u.ConsentedResources) == 0 {
		return "none (default sign-in only)"
	}
	return strings.Join(u.ConsentedResources, ", ")
}

func printUser(w io.Writer, u *cosmos.User) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	date := func(unix int64) string {
		if unix == 0 {
			return "-"
		}
		return time.Unix(unix, 0).UTC().Format(time.RFC3339)
	}
	token := "none"
	if len(u.SealedRefreshToken) > 0 {
		token = "sealed (key version " + u.SealKeyVersion + ")"
	}
	sub := "none"
	if u.Subscription.Status != "" {
		sub = u.Subscription.Status + " (updated " + date(u.Subscription.UpdatedAt) + ")"
	}
	keyExpires := "-"
	if u.KeyIssuedAt != 0 {
		keyExpires = date(time.Unix(u.KeyIssuedAt, 0).Add(keyring.KeyLifetime).Unix())
	}
	for _, row := range [][2]string{
		{"id", u.ID},
		{"tenant", u.TenantID},
		{"object", u.ObjectID},
		{"tier", string(u.Tier)},
		{"consent", string(u.Consent)},
		{"grants", grantsOf(u)},
		{"key generation", fmt.Sprint(u.KeyGeneration)},
		{"key issued", date(u.KeyIssuedAt)},
		{"key expires", keyExpires},
		{"refresh token", token},
		{"subscription", sub},
		{"created", date(u.CreatedAt)},
		{"updated", date(u.UpdatedAt)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	tw.Flush()
}

func rotateKey(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	var resealOnly bool
	settings, err := settingsWithFlags("rotate-key", args, stderr, getenv, func(fs *flag.FlagSet) {
		fs.BoolVar(&resealOnly, "reseal-only", false, "add no version: only re-seal tokens not yet under the newest one")
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	store, sealer, err := openStoreAndSealer(ctx, settings, getenv)
	if err != nil {
		return err
	}
	defer store.Close()
	if !resealOnly {
		v, err := sealer.Rotate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new key version %s\n", v)
	}
	res, err := identity.Reseal(ctx, store, sealer)
	fmt.Fprintf(stdout, "re-sealed %d refresh tokens; %d already under the newest version; %d users without one\n",
		res.Resealed, res.Current, res.Empty)
	if len(res.Failed) > 0 {
		fmt.Fprintf(stdout, "failed: %s\n", strings.Join(res.Failed, " "))
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "older versions still open tokens that running servers seal within the next few minutes: run `flowstudio rotate-key --reseal-only` again in 10 minutes")
	return nil
}
