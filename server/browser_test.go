package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/flowstudio/mcp/server/oauth"
	"github.com/flowstudio/mcp/tools/powerautomate/sim"
)

// TestBrowserSignInDashboardKeys drives a real headless Chromium through the whole
// journey against the simulator's Entra ID stand-in: landing page, sign-in page,
// consent page, dashboard with the key, an MCP tool call with that key, connector
// access granted incrementally, re-issue (the old key fails), revoke (the new key fails). It saves screenshots of the dashboard to
// $CI_ARTIFACTS, then checks that neither the store nor the log holds a token, key or
// email.
func TestBrowserSignInDashboardKeys(t *testing.T) {
	h, tap, _ := newSimWebHarness(t)
	b := newWebBrowser(t, "failure.png")
	ctx, artifacts, run, text, value, navigate := b.ctx, b.artifacts, b.run, b.text, b.value, b.navigate

	// Accept the confirmation dialogs of re-issue and revoke.
	dialogs := chromedp.Events(ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			go chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true}) //nolint:errcheck
		}
	}()
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: perm}, Setting: browser.PermissionSettingGranted, Origin: h.ts.URL}); err != nil {
			t.Logf("clipboard permission %s: %v", perm, err)
		}
	}

	// 1. The landing page says what is stored, and offers the sign-in.
	run("landing page", chromedp.Navigate(h.ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS("a.btn.ms")))
	if body := text("main"); !strings.Contains(body, "What we store") || !strings.Contains(body, "What we do not store") {
		t.Fatalf("landing page:\n%s", body)
	}
	webShot(t, ctx, filepath.Join(artifacts, "landing.png"))
	webFits(t, ctx, artifacts, "/ (signed out)")

	// 2. Sign in on the simulated Microsoft page: pick Alice.
	run("open the sign-in page", chromedp.Click(chromedp.CSS("a.btn.ms")),
		chromedp.WaitVisible(chromedp.CSS(`button[value="alice@contoso.com"]`)))
	run("pick alice", chromedp.Click(chromedp.CSS(`button[value="alice@contoso.com"]`)), chromedp.WaitVisible(chromedp.ID("accept")))

	// 3. The consent page lists exactly what we ask for; accept.
	scopes := text("#scopes")
	for _, want := range []string{"Read your flows", "Manage your flows", "Read your flow activity", "Access Power Apps as you",
		"Maintain access", "offline_access"} {
		if !strings.Contains(scopes, want) {
			t.Errorf("consent page lacks %q:\n%s", want, scopes)
		}
	}
	for _, never := range []string{"Mail", "Calendars", "Files", "graph.microsoft.com"} {
		if strings.Contains(scopes, never) {
			t.Errorf("consent page asks for %q", never)
		}
	}
	navigate("consent", chromedp.Click(chromedp.ID("accept")), "#key-full")

	// 4. The dashboard: who, tenant, plan, usage, keys, client setups.
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != h.ts.URL+"/dashboard" {
		t.Fatalf("after consent the browser is at %s", loc)
	}
	if who, tenant, tier := text("#who"), text("#tenant"), text("#tier"); who != "Alice" || tenant != sim.ContosoTenantID || tier != "Free" {
		t.Errorf("dashboard shows %q, %q, %q", who, tenant, tier)
	}
	key1, read1 := value("#key-full"), value("#key-read")
	if !strings.Contains(text("#cfg-claude"), `--header "x-api-key: `+keyPlaceholder+`"`) || !strings.Contains(text("#cfg-cursor"), keyPlaceholder) ||
		!strings.Contains(text("#cfg-vscode"), "${input:flowstudio-key}") {
		t.Error("the client setups do not carry the key's placeholder")
	}
	if html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`)); err != nil || strings.Count(html, key1) != 1 {
		t.Errorf("the full key is in the page %d times, want 1 (%v)", strings.Count(html, key1), err)
	}
	// The keys are masked; Reveal (a <details>, no script) shows one, Hide masks it again.
	webKeyControls(t, ctx, artifacts, key1, "")
	webShot(t, ctx, filepath.Join(artifacts, "dashboard.png"))
	webPhone(t, ctx, filepath.Join(artifacts, "dashboard-phone.png"))
	// The same controls on a phone.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	webKeyControls(t, ctx, artifacts, key1, "-phone")
	if err := chromedp.Do(ctx, chromedp.EmulateReset(), chromedp.EmulateViewport(1280, 1000)); err != nil {
		t.Fatal(err)
	}
	// Every other page a person sees fits a phone and a desktop (signed in here, the
	// OAuth consent page included; the signed-out landing page at step 1, the revoked
	// dashboard at 7 and an error page at the end).
	for _, p := range []string{"/", "/help", "/security", "/logout", "/connections/signed-in", "/dashboard/data", "/dashboard/delete"} {
		navigate("open "+p, chromedp.Navigate(h.ts.URL+p), "footer")
		webFits(t, ctx, artifacts, p)
	}
	// The OAuth consent page an app's sign-in shows; Deny sends the browser to the app.
	cb := newOAuthCallback(t)
	_, challenge := pkcePair()
	q := authParams(h, registerClient(t, h, "Phone Test App", cb.uri()), cb.uri(), challenge)
	navigate("OAuth consent page", chromedp.Navigate(h.ts.URL+oauth.AuthorizePath+"?"+q.Encode()), "#deny")
	webFits(t, ctx, artifacts, "/oauth/consent")
	run("deny the app", chromedp.Click(chromedp.ID("deny")))
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if got, _ := cb.got(); got.Get("error") == "access_denied" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("Deny did not reach the app: %v", got)
		}
	}
	navigate("back to the dashboard", chromedp.Navigate(h.ts.URL+"/dashboard"), "#key-full")

	// 5. The key calls a tool.
	result := webCallTool(t, h, key1, "list_live_environments")
	if result.status != 200 || result.isError || !strings.Contains(result.text, sim.ContosoDefaultEnv) {
		t.Fatalf("list_live_environments with the key: %d isError=%v %.300s", result.status, result.isError, result.text)
	}

	// 5b. Connector access: not granted yet; the button asks Microsoft for exactly the
	// connector runtime (the consent page shows it, and none of the default scopes),
	// and the dashboard then says granted, with the same key.
	if state := text("#connector-access"); state != "Not granted" {
		t.Errorf("connector access before the grant: %q", state)
	}
	run("grant connector access", chromedp.Click(chromedp.ID("grant-connectors")),
		chromedp.WaitVisible(chromedp.CSS(`button[value="alice@contoso.com"]`)))
	run("pick alice again", chromedp.Click(chromedp.CSS(`button[value="alice@contoso.com"]`)), chromedp.WaitVisible(chromedp.ID("accept")))
	if scopes := text("#scopes"); !strings.Contains(scopes, "connector runtime") || strings.Contains(scopes, "Flows.Manage.All") {
		t.Errorf("the grant's consent page:\n%s", scopes)
	}
	navigate("consent to connector access", chromedp.Click(chromedp.ID("accept")), "#connector-access")
	if state, notice := text("#connector-access"), text(".notice"); state != "Granted" || !strings.Contains(notice, "Connector access granted") {
		t.Errorf("after the grant: %q, notice %q", state, notice)
	}
	if value("#key-full") != key1 {
		t.Error("granting connector access changed the key")
	}
	webShot(t, ctx, filepath.Join(artifacts, "dashboard-connectors.png"))

	// 6. Re-issue: the old key is refused at once, the new one works.
	navigate("re-issue", chromedp.Click(chromedp.ID("reissue")), ".notice")
	key2, read2 := value("#key-full"), value("#key-read")
	if key2 == key1 {
		t.Fatal("re-issue showed the old key")
	}
	if st := webCallTool(t, h, key1, "list_live_environments").status; st != 401 {
		t.Errorf("the old key after re-issue: %d, want 401", st)
	}
	if st := webCallTool(t, h, read1, "list_live_environments").status; st != 401 {
		t.Errorf("the old read-only key after re-issue: %d, want 401", st)
	}
	if r := webCallTool(t, h, key2, "list_live_environments"); r.status != 200 || r.isError {
		t.Errorf("the new key: %d isError=%v", r.status, r.isError)
	}

	// 7. Revoke: the new key is refused at once; the page says how to sign in again.
	navigate("revoke", chromedp.Click(chromedp.ID("revoke")), "#consent-state")
	if st := webCallTool(t, h, key2, "list_live_environments").status; st != 401 {
		t.Errorf("the key after revoke: %d, want 401", st)
	}
	if st := webCallTool(t, h, read2, "list_live_environments").status; st != 401 {
		t.Errorf("the read-only key after revoke: %d, want 401", st)
	}
	if notice := text(".notice"); !strings.Contains(notice, "Permission revoked") {
		t.Errorf("notice after revoke: %q", notice)
	}
	// Counted calls reach the store within one flush interval (1 s): the dashboard
	// shows them by then.
	usage := text("#usage")
	for try := 0; try < 3 && !strings.HasPrefix(usage, "2 of 200"); try++ {
		time.Sleep(1100 * time.Millisecond)
		navigate("dashboard again", chromedp.Navigate(h.ts.URL+"/dashboard"), "#usage")
		usage = text("#usage")
	}
	if !strings.HasPrefix(usage, "2 of 200") {
		t.Errorf("usage after two counted calls: %q", usage)
	}
	webShot(t, ctx, filepath.Join(artifacts, "dashboard-revoked.png"))
	webFits(t, ctx, artifacts, "/dashboard (revoked)")

	for _, p := range b.reported() {
		t.Errorf("the browser reported: %s", p)
	}
	// An error page (it answers 403, which the browser reports, so after the check).
	navigate("an error page", chromedp.Navigate(h.ts.URL+"/callback?error=access_denied"), "footer")
	webFits(t, ctx, artifacts, "/callback (error)")

	// 8. Nothing secret in the store or the log.
	secrets := append(tap.secrets(), key1, read1, key2, read2, "alice@contoso.com")
	h.assertNoSecrets(t, secrets)
	t.Logf("screenshots in %s", artifacts)
}

// webBrowser is a headless Chromium for a browser test, with the steps both journeys
// use. It records what the pages report (script exceptions, CSP violations, failed
// loads), and a failed step saves a screenshot to the artifacts directory
// ($CI_ARTIFACTS, else a temporary one).
type webBrowser struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
	failShot  string // the screenshot's file name when a step fails

	mu       sync.Mutex
	problems []string
}

// newWebBrowser starts the browser; flags are Chromium options beyond the common ones.
// chromedp finds the browser itself (chromium, google-chrome, headless-shell... on
// PATH). None there: a visible skip on a developer's machine, a failure in CI.
func newWebBrowser(t *testing.T, failShot string, flags ...chromedp.ExecAllocatorOption) *webBrowser {
	t.Helper()
	b := &webBrowser{t: t, artifacts: os.Getenv("CI_ARTIFACTS"), failShot: failShot}
	if b.artifacts == "" {
		b.artifacts = t.TempDir()
	}
	if err := os.MkdirAll(b.artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}, flags...)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	b.ctx = ctx
	if err := chromedp.Do(ctx); err != nil {
		if errors.Is(err, exec.ErrNotFound) && os.Getenv("CI") == "" {
			t.Skipf("no Chromium or Chrome found (%v): install one (apt-get install -y chromium) to run the browser test", err)
		}
		t.Fatalf("starting the browser: %v", err)
	}
	b.run("start the browser", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, log.Enable, cdp.Empty{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, runtime.Enable, cdp.Empty{})
		return err
	}))
	entries, exceptions := chromedp.Events(ctx, log.EntryAdded), chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			if ev.Entry.Level == log.EntryLevelError {
				b.report(string(ev.Entry.Source) + ": " + ev.Entry.Text + " " + ev.Entry.URL)
			}
		}
	}()
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			b.report("exception: " + ev.ExceptionDetails.Text)
		}
	}()
	return b
}

func (b *webBrowser) report(problem string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, problem)
}

// reported is what the pages reported so far.
func (b *webBrowser) reported() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.problems)
}

// run runs a step's actions; a failure ends the test with a screenshot.
func (b *webBrowser) run(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		webShot(b.t, b.ctx, filepath.Join(b.artifacts, b.failShot))
		b.t.Fatalf("%s: %v", step, err)
	}
}

// text is the trimmed text of the element sel.
func (b *webBrowser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// value is the value of the input sel.
func (b *webBrowser) value(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("value of %s: %v", sel, err)
	}
	return s
}

// location is the URL of the page shown.
func (b *webBrowser) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

// navigate runs a step that loads a new page and returns once that page is loaded
// and shows sel. The page being left is marked first, so an element matching sel
// on it cannot end the wait before the navigation has happened.
func (b *webBrowser) navigate(step string, action chromedp.Action[chromedp.Void], sel string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`window.__leaving = true`)); err != nil {
		b.t.Fatalf("%s: mark the page: %v", step, err)
	}
	b.run(step, action)
	cond := `window.__leaving === undefined && document.readyState === "complete" && document.querySelector(` +
		strconv.Quote(sel) + `) !== null`
	// Evaluations fail while the target navigates; that is expected here, so retry.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](cond)); err == nil && ok {
			break
		} else if time.Now().After(deadline) {
			webShot(b.t, b.ctx, filepath.Join(b.artifacts, b.failShot))
			loc, _ := chromedp.Run(b.ctx, chromedp.Location())
			b.t.Fatalf("%s: the next page with %s did not load (at %s): %v", step, sel, loc, err)
		}
	}
	b.run(step+": visible", chromedp.WaitVisible(chromedp.CSS(sel)))
}

// shot saves a screenshot of the whole page: the viewport grows to the page's height
// (captureBeyondViewport shifts content in some Chromium versions), then shrinks back.
func webShot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	size, err := chromedp.Run(ctx, chromedp.Evaluate[[]int64](`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);
		[window.innerWidth, Math.ceil(document.documentElement.scrollHeight), window.innerHeight]`))
	if err != nil || len(size) != 3 {
		t.Errorf("screenshot %s: page size: %v", path, err)
		return
	}
	mobile := size[0] < 600
	grow := func(h int64) chromedp.Action[chromedp.Void] {
		if mobile {
			return chromedp.EmulateViewport(size[0], h, chromedp.EmulateScale(2), chromedp.EmulateMobile)
		}
		return chromedp.EmulateViewport(size[0], h)
	}
	if err := chromedp.Do(ctx, grow(size[1])); err != nil {
		t.Errorf("screenshot %s: %v", path, err)
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		t.Errorf("screenshot %s: %v", path, err)
	}
	if err := chromedp.Do(ctx, grow(size[2])); err != nil {
		t.Errorf("screenshot %s: restore viewport: %v", path, err)
	}
}

// phone saves a screenshot at a phone's width, then restores the window.
func webPhone(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Errorf("phone viewport: %v", err)
		return
	}
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err == nil && w > 390 {
		t.Errorf("on a phone the page is %d px wide: it scrolls sideways", w)
	}
	webShot(t, ctx, path)
	if err := chromedp.Do(ctx, chromedp.EmulateReset(), chromedp.EmulateViewport(1280, 1000)); err != nil {
		t.Errorf("reset viewport: %v", err)
	}
}

// webKeyControls checks the dashboard's key controls at the current viewport: the
// full key is masked (its input not rendered), Reveal shows it, Hide masks it again;
// Copy puts the key on the clipboard, and the Claude Code setup's Copy puts the
// setup with the key in place of the placeholder. suffix names the screenshots.
func webKeyControls(t *testing.T, ctx context.Context, artifacts, key, suffix string) {
	t.Helper()
	shown := func() bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const i = document.getElementById("key-full"); return i.checkVisibility({contentVisibilityAuto: true}) && i.getClientRects().length > 0; })()`))
		if err != nil {
			t.Fatalf("is the key shown: %v", err)
		}
		return v
	}
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			webShot(t, ctx, filepath.Join(artifacts, "failure"+suffix+".png"))
			t.Fatalf("%s: %v", step, err)
		}
	}
	masked := `details:has(#key-full) .masked`
	if shown() {
		t.Fatal("the full key shows before Reveal")
	}
	if m, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(masked))); err != nil || strings.Contains(m, key[:8]) {
		t.Errorf("the masked field shows %q (%v)", m, err)
	}
	do("reveal", chromedp.Click(chromedp.CSS(`details:has(#key-full) summary`), chromedp.NodeVisible))
	if !shown() {
		t.Fatal("Reveal does not show the key")
	}
	if got, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("key-full"))); err != nil || got != key {
		t.Errorf("the revealed field holds %.12q…, not the key (%v)", got, err)
	}
	webShot(t, ctx, filepath.Join(artifacts, "dashboard-revealed"+suffix+".png"))
	do("hide", chromedp.Click(chromedp.CSS(`details:has(#key-full) summary`), chromedp.NodeVisible))
	if shown() {
		t.Error("the key still shows after Hide")
	}

	// Copy works while the key is masked (the script loaded despite the strict CSP).
	for _, c := range []struct{ button, want string }{
		{"key-full", key},
		{"cfg-claude", `claude mcp add --transport http flowstudio `},
	} {
		sel := `button[data-copy="` + c.button + `"]`
		do("copy "+c.button, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
		label, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => { const t = document.querySelector('`+sel+`').textContent; return t === "Copy" ? null : t; })()`,
			chromedp.WithPollingTimeout(5*time.Second)))
		if err != nil || label != "Copied" {
			t.Errorf("%s copy button says %q (%v)", c.button, label, err)
			continue
		}
		clip, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Errorf("read the clipboard: %v", err)
			continue
		}
		if c.button == "key-full" && clip != key {
			t.Errorf("the clipboard holds %.12q…, not the key", clip)
		}
		if c.button == "cfg-claude" && (!strings.HasPrefix(clip, c.want) || !strings.HasSuffix(clip, `--header "x-api-key: `+key+`"`) || strings.Contains(clip, keyPlaceholder)) {
			t.Errorf("the Claude Code setup copied as %.60q…, not with the key in place", clip)
		}
		do("let the copy label reset", chromedp.Sleep(2100*time.Millisecond))
	}
	if shown() {
		t.Error("copying revealed the key")
	}
}

// webFits fails when the current page scrolls sideways at a phone's width or on a
// desktop, and saves a phone screenshot of it.
func webFits(t *testing.T, ctx context.Context, artifacts, name string) {
	t.Helper()
	for _, vp := range []struct {
		w, h   int64
		mobile bool
	}{{390, 844, true}, {1280, 1000, false}} {
		opts := []chromedp.EmulateViewportOption{}
		if vp.mobile {
			opts = append(opts, chromedp.EmulateScale(2), chromedp.EmulateMobile)
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(vp.w, vp.h, opts...)); err != nil {
			t.Fatalf("%s: viewport: %v", name, err)
		}
		w, err := chromedp.Run(ctx, chromedp.Evaluate[[]int64](`[document.documentElement.scrollWidth, window.innerWidth]`))
		if err != nil || len(w) != 2 {
			t.Fatalf("%s: page width: %v", name, err)
		}
		if w[0] > w[1] {
			t.Errorf("%s at %d px is %d px wide: it scrolls sideways", name, vp.w, w[0])
		}
		if vp.mobile {
			file := strings.Trim(strings.NewReplacer("/", "-", " ", "", "(", "", ")", "").Replace(name), "-")
			if file == "" || file == "signedout" {
				file = "landing" + file
			}
			webShot(t, ctx, filepath.Join(artifacts, "phone-"+file+".png"))
		}
	}
	if err := chromedp.Do(ctx, chromedp.EmulateReset(), chromedp.EmulateViewport(1280, 1000)); err != nil {
		t.Fatalf("reset viewport: %v", err)
	}
}

type webToolResult struct {
	status  int
	isError bool
	text    string
}

// webCallTool posts tools/call to /mcp with the key, as an agent would.
func webCallTool(t *testing.T, h *webHarness, key, name string) webToolResult {
	t.Helper()
	return callTool(t, h, key, name, map[string]any{})
}

// tokenTap records every token the simulated Entra ID hands out, so the leak check
// knows what to look for.
type tokenTap struct {
	mu  sync.Mutex
	all []string
}

func (tt *tokenTap) add(s ...string) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	for _, v := range s {
		if v != "" {
			tt.all = append(tt.all, v)
		}
	}
}

func (tt *tokenTap) secrets() []string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return append([]string(nil), tt.all...)
}

func (tt *tokenTap) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
			next.ServeHTTP(w, r)
			return
		}
		rec := &tapWriter{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		tt.record(rec.body.Bytes())
	})
}

// client is an HTTP client for the Entra side that records the tokens it receives.
func (tt *tokenTap) client() *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: tapTransport{tt},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type tapTransport struct{ tt *tokenTap }

func (tr tapTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !strings.HasSuffix(r.URL.Path, "/token") {
		return resp, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	tr.tt.record(raw)
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	return resp, nil
}

func (tt *tokenTap) record(raw []byte) {
	var body struct {
		Access  string `json:"access_token"`
		Refresh string `json:"refresh_token"`
		ID      string `json:"id_token"`
	}
	if json.Unmarshal(raw, &body) == nil {
		tt.add(body.Access, body.Refresh, body.ID)
	}
}

type tapWriter struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (w *tapWriter) Write(p []byte) (int, error) {
	w.body.Write(p)
	return w.ResponseWriter.Write(p)
}
