package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox"
)

// Real-browser tests of the sandbox's Gateway pages: a headless Chromium,
// driven over the DevTools protocol, does what a user does after the app
// redirects them to a flow's gatewayUrl.

// chromiumPath is where Debian's chromium package installs the browser.
const chromiumPath = "/usr/bin/chromium"

// Bounds of the browser tests: the whole browser session, and each step
// that waits for a page or a download.
const (
	browserLimit = 3 * time.Minute
	stepLimit    = 30 * time.Second
)

// The user's first-time PIN on the Gateway, and the PIN they change it to.
const (
	browserPIN    = "482915"
	browserNewPIN = "640273"
)

// TestBrowser_InitializeOnGateway: PIN setup with security questions,
// typed into the Gateway page by a user in a real browser.
func TestBrowser_InitializeOnGateway(t *testing.T) {
	b := newBrowser(t)
	s := startStack(t)
	app := newAppServer(t)

	cust := s.api.createCustomer("Grace Hopper", "user-browser-initialize")
	f, _ := s.api.start(cust.ID, flow.KindInitialize, map[string]any{"redirectUrl": app.doneURL()}, http.StatusCreated)
	mustEqual(t, "status", f.Status, flow.StatusAwaitingUser)

	b.open(f.GatewayURL, http.StatusOK)
	mustEqual(t, "page heading", b.text("h1"), "Set up your PIN")
	mustEqual(t, "PIN label", b.text(`label[for="pin"]`), "New PIN")
	mustEqual(t, "confirmation label", b.text(`label[for="confirmPin"]`), "Confirm the new PIN")
	mustEqual(t, "recovery choice label", b.text(`label[for="method-questions"]`), "Security questions")
	for i, q := range sandbox.SecurityQuestions {
		mustEqual(t, fmt.Sprintf("label of answer%d", i+1), b.text(fmt.Sprintf(`label[for="answer%d"]`, i+1)), q)
	}

	b.do("fill the form",
		chromedp.SendKeys(chromedp.ID("pin"), browserPIN),
		chromedp.SendKeys(chromedp.ID("confirmPin"), browserPIN),
		chromedp.Click(chromedp.ID("method-questions")),
		chromedp.SendKeys(chromedp.ID("answer1"), "Whiskers"),
		chromedp.SendKeys(chromedp.ID("answer2"), "Arlington"),
		chromedp.SendKeys(chromedp.ID("answer3"), "Vassar"),
	)
	if !b.checked("method-questions") {
		t.Fatal("the security-questions recovery method is not selected after clicking it")
	}
	shot := b.screenshot("gateway-initialize.png")
	if err := os.WriteFile("/tmp/gateway-initialize.png", shot, 0o644); err != nil {
		t.Errorf("save a copy of the screenshot: %v", err)
	} else {
		t.Logf("screenshot copy: /tmp/gateway-initialize.png")
	}

	b.submitTo(app, f.ChallengeID)

	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	sec := s.api.customer(cust.ID).Security
	if !sec.HasPIN || !sec.HasRecovery || !sec.CanTransact {
		t.Fatalf("after initialize on the Gateway: got %+v, want PIN and recovery set", sec)
	}
	// The PIN typed in the browser is the customer's PIN now: the
	// sandbox accepts it for a wallet challenge.
	w, _ := s.api.start(cust.ID, flow.KindCreateWallets, map[string]any{"blockchains": []string{"ETH-SEPOLIA"}}, http.StatusCreated)
	s.complete(w.ChallengeID, map[string]any{"pin": browserPIN})
	s.api.waitFlow(w.ID, flow.StatusCompleted, 30*time.Second)
}

// TestBrowser_WrongPINShowsAttemptsRemaining: a wrong current PIN on the
// update-PIN page is reported next to the field, then the right one changes
// the PIN.
func TestBrowser_WrongPINShowsAttemptsRemaining(t *testing.T) {
	b := newBrowser(t)
	s := startStack(t)
	app := newAppServer(t)

	cust := s.onboard("user-browser-wrong-pin")
	f, _ := s.api.start(cust.ID, flow.KindUpdatePIN, map[string]any{"redirectUrl": app.doneURL()}, http.StatusCreated)

	b.open(f.GatewayURL, http.StatusOK)
	mustEqual(t, "page heading", b.text("h1"), "Change your PIN")
	mustEqual(t, "current PIN label", b.text(`label[for="currentPin"]`), "Current PIN")

	b.do("fill the form with a wrong current PIN",
		chromedp.SendKeys(chromedp.ID("currentPin"), "000000"),
		chromedp.SendKeys(chromedp.ID("newPin"), browserNewPIN),
		chromedp.SendKeys(chromedp.ID("confirmNewPin"), browserNewPIN),
	)
	b.submit(http.StatusUnprocessableEntity)

	// Still on the Gateway, with the message attached to the field.
	if loc := b.location(); !strings.HasPrefix(loc, s.SandboxURL+"/gateway/") {
		t.Fatalf("after a wrong PIN the browser is at %s, want the Gateway page", loc)
	}
	if n := app.hits(); n != 0 {
		t.Fatalf("after a wrong PIN the app was hit %d times, want none", n)
	}
	mustEqual(t, "error next to the current PIN", b.text("#currentPin-err"), "Wrong PIN. 4 attempts remaining")
	mustEqual(t, "error role", b.attr("#currentPin-err", "role"), "alert")
	mustEqual(t, "current PIN aria-invalid", b.attr("#currentPin", "aria-invalid"), "true")
	if d := b.attr("#currentPin", "aria-describedby"); !slices.Contains(strings.Fields(d), "currentPin-err") {
		t.Fatalf("current PIN aria-describedby: got %q, want it to name currentPin-err", d)
	}
	if b.exists("#newPin-err") || b.exists("#confirmNewPin-err") {
		t.Fatal("the wrong current PIN is reported on the new-PIN fields too")
	}
	if got := s.api.flow(f.ID).Status; got != flow.StatusAwaitingUser {
		t.Fatalf("flow after one wrong PIN: got %s, want %s", got, flow.StatusAwaitingUser)
	}

	// The PIN fields come back empty; the right PIN now.
	b.do("fill the form with the right current PIN",
		chromedp.Clear(chromedp.ID("currentPin")),
		chromedp.Clear(chromedp.ID("newPin")),
		chromedp.Clear(chromedp.ID("confirmNewPin")),
		chromedp.SendKeys(chromedp.ID("currentPin"), testPIN),
		chromedp.SendKeys(chromedp.ID("newPin"), browserNewPIN),
		chromedp.SendKeys(chromedp.ID("confirmNewPin"), browserNewPIN),
	)
	b.submitTo(app, f.ChallengeID)

	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	sec := s.api.customer(cust.ID).Security
	if sec.PINUpdatedAt == nil || sec.LockedOut {
		t.Fatalf("after update_pin on the Gateway: got %+v, want pinUpdatedAt set and not locked out", sec)
	}
	// The new PIN typed in the browser is the customer's PIN now.
	w, _ := s.api.start(cust.ID, flow.KindCreateWallets, map[string]any{"blockchains": []string{"SOL-DEVNET"}}, http.StatusCreated)
	s.complete(w.ChallengeID, map[string]any{"pin": browserNewPIN})
	s.api.waitFlow(w.ID, flow.StatusCompleted, 30*time.Second)
}

// TestBrowser_ExportDownloadsCSV: the export page answers the PIN with a
// CSV download of every wallet's key, on the Gateway only, then its link
// returns the user to the app.
func TestBrowser_ExportDownloadsCSV(t *testing.T) {
	b := newBrowser(t)
	s := startStack(t)
	app := newAppServer(t)

	cust := s.onboard("user-browser-export")
	w, _ := s.api.start(cust.ID, flow.KindCreateWallets, map[string]any{"blockchains": []string{"ETH-SEPOLIA", "SOL-DEVNET"}}, http.StatusCreated)
	s.complete(w.ChallengeID, map[string]any{"pin": testPIN})
	s.api.waitFlow(w.ID, flow.StatusCompleted, 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), stepLimit)
	defer cancel()
	wallets, err := s.planbok.ListWallets(ctx, planbok.ListWalletsParams{CustomerIDs: []string{cust.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if len(wallets) != 2 {
		t.Fatalf("wallets: got %d, want 2 (ETH-SEPOLIA and SOL-DEVNET)", len(wallets))
	}

	f, _ := s.api.start(cust.ID, flow.KindExportPrivateKeys, map[string]any{"redirectUrl": app.doneURL()}, http.StatusCreated)
	b.open(f.GatewayURL, http.StatusOK)
	mustEqual(t, "page heading", b.text("h1"), "Export your private keys")
	b.do("enter the PIN", chromedp.SendKeys(chromedp.ID("pin"), testPIN))

	dl := b.download("click Download private keys", chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	mustEqual(t, "download file name", dl.suggestedName, "wallets-"+cust.ID+".csv")
	if !strings.HasPrefix(dl.url, s.SandboxURL+"/gateway/challenges/"+f.ChallengeID) {
		t.Fatalf("download URL: got %s, want the Gateway's challenge page", dl.url)
	}

	rows, err := csv.NewReader(bytes.NewReader(dl.body)).ReadAll()
	if err != nil {
		t.Fatalf("downloaded CSV: %v", err)
	}
	if len(rows) == 0 {
		t.Fatal("downloaded CSV is empty")
	}
	mustEqual(t, "CSV header", strings.Join(rows[0], ","), "Address,Private Key,Blockchain,Derivation Path,Key Type")
	var gotRows, wantRows []string
	for _, r := range rows[1:] {
		if len(r) != 5 || r[1] == "" {
			t.Fatalf("CSV row %q: want 5 columns with a private key", r)
		}
		gotRows = append(gotRows, strings.Join([]string{r[0], r[2], r[3], r[4]}, " "))
	}
	for _, w := range wallets {
		wantRows = append(wantRows, strings.Join([]string{w.Address, w.Blockchain, w.DerivationPath, w.KeyType}, " "))
	}
	slices.Sort(gotRows)
	slices.Sort(wantRows)
	if !slices.Equal(gotRows, wantRows) {
		t.Fatalf("CSV rows (address blockchain path keyType):\n got %q\nwant %q", gotRows, wantRows)
	}

	// The page stays; its link sends the user back to the app.
	if loc := b.location(); loc != f.GatewayURL {
		t.Fatalf("after the download the browser is at %s, want %s", loc, f.GatewayURL)
	}
	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	if sec := s.api.customer(cust.ID).Security; sec.LastExportAt == nil {
		t.Fatalf("after export on the Gateway: got %+v, want lastExportAt set", sec)
	}
	b.navigateTo(app, f.ChallengeID, "click return to the app", chromedp.Click(chromedp.CSS(`a[href$="/return"]`)))
}

// browserSession is one headless Chromium tab.
type browserSession struct {
	t   *testing.T
	ctx context.Context // the tab; bounded by browserLimit
}

// newBrowser starts Chromium, fails the test with how to install it when
// it is missing, and stops it when the test ends.
func newBrowser(t *testing.T) *browserSession {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("Chromium is required for the browser tests and is not at %s (%v): apt-get install chromium (CI installs it)", chromiumPath, err)
	}
	out := &lockedBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		// Without these Chromium calls home, and on a closed network its
		// connections are refused.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.WindowSize(1000, 1400),
		chromedp.CombinedOutput(out),
	}
	limit, cancelLimit := context.WithTimeout(context.Background(), browserLimit)
	alloc, cancelAlloc := chromedp.NewExecAllocator(limit, opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelLimit()
		if t.Failed() {
			// Without a D-Bus, Chromium logs an error a line; they say
			// nothing about the test.
			var lines []string
			for l := range strings.Lines(out.String()) {
				if !strings.Contains(l, "dbus") {
					lines = append(lines, l)
				}
			}
			t.Logf("chromium output (D-Bus errors left out):\n%s", strings.Join(lines, ""))
		}
	})
	// The first action binds the browser's life to its context: start it
	// on the tab's own context, not on a step's.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: start %s: %v", chromiumPath, err)
	}
	return &browserSession{t: t, ctx: ctx}
}

// step returns a context for one step, bounded by stepLimit.
func (b *browserSession) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, stepLimit)
}

func (b *browserSession) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

func browserRun[T any](b *browserSession, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// open navigates to url and expects the page's HTTP status.
func (b *browserSession) open(url string, wantStatus int) {
	b.t.Helper()
	resp := browserRun(b, "open "+url, chromedp.NavigateResponse(url))
	if int(resp.Status) != wantStatus {
		b.t.Fatalf("browser: open %s: got HTTP %d, want %d", url, resp.Status, wantStatus)
	}
}

// submit clicks the form's submit button, waits for the page it leads to
// and expects its HTTP status.
func (b *browserSession) submit(wantStatus int) {
	b.t.Helper()
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	if err != nil {
		b.t.Fatalf("browser: submit the form: %v", err)
	}
	if int(resp.Status) != wantStatus {
		b.t.Fatalf("browser: submit the form: got HTTP %d from %s, want %d", resp.Status, resp.URL, wantStatus)
	}
}

// submitTo submits the form and expects the Gateway to send the browser
// back to the app with the challenge verified.
func (b *browserSession) submitTo(app *appServer, challengeID string) {
	b.t.Helper()
	b.navigateTo(app, challengeID, "submit the form", chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
}

// navigateTo runs trigger and expects the browser to land on the app's
// /done page with challengeId and status=verified, both in the address
// bar and in the request the app received.
func (b *browserSession) navigateTo(app *appServer, challengeID, what string, trigger chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	before := app.hits()
	ctx, cancel := b.step()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, trigger)
	if err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	if resp.Status != http.StatusOK || !strings.HasPrefix(resp.URL, app.doneURL()+"?") {
		b.t.Fatalf("browser: %s: landed on %s (HTTP %d), want the app's %s", what, resp.URL, resp.Status, app.doneURL())
	}
	for _, u := range []string{resp.URL, b.location()} {
		q, err := url.Parse(u)
		if err != nil {
			b.t.Fatal(err)
		}
		mustEqual(b.t, "challengeId in "+u, q.Query().Get("challengeId"), challengeID)
		mustEqual(b.t, "status in "+u, q.Query().Get("status"), "verified")
	}
	q := app.waitHit(before, stepLimit)
	mustEqual(b.t, "challengeId the app received", q.Get("challengeId"), challengeID)
	mustEqual(b.t, "status the app received", q.Get("status"), "verified")
}

func (b *browserSession) location() string {
	b.t.Helper()
	return browserRun(b, "read the location", chromedp.Location())
}

func (b *browserSession) text(css string) string {
	b.t.Helper()
	return strings.TrimSpace(browserRun(b, "read the text of "+css, chromedp.TextContent(chromedp.CSS(css))))
}

// attr returns an attribute of the element css selects ("" when it has
// none).
func (b *browserSession) attr(css, name string) string {
	b.t.Helper()
	return browserRun(b, "read "+name+" of "+css,
		chromedp.Evaluate[string](`document.querySelector(`+jsString(css)+`).getAttribute(`+jsString(name)+`) ?? ""`))
}

func (b *browserSession) exists(css string) bool {
	b.t.Helper()
	return browserRun(b, "look for "+css, chromedp.Evaluate[bool](`document.querySelector(`+jsString(css)+`) !== null`))
}

func (b *browserSession) checked(id string) bool {
	b.t.Helper()
	return browserRun(b, "read whether "+id+" is checked", chromedp.Evaluate[bool](`document.getElementById(`+jsString(id)+`).checked`))
}

// screenshot saves a PNG of the whole page in the test's temp dir, logs
// its path and returns it.
func (b *browserSession) screenshot(name string) []byte {
	b.t.Helper()
	png := browserRun(b, "take a screenshot", chromedp.FullScreenshot(100))
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		b.t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	path := filepath.Join(b.t.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	return png
}

type downloaded struct {
	url, suggestedName string
	body               []byte
}

// download lets the browser save files in a temp dir, runs trigger and
// waits until the download it starts is complete.
func (b *browserSession) download(what string, trigger chromedp.Action[chromedp.Void]) downloaded {
	b.t.Helper()
	dir := b.t.TempDir()
	ctx, cancel := b.step()
	defer cancel()
	begins := chromedp.Events(ctx, browser.DownloadWillBegin)
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	// Set on the tab's session (not the browser's), so the download
	// events come to the tab's subscriptions above.
	events := true
	if _, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior:      browser.SetDownloadBehaviorBehaviorAllowAndName,
		DownloadPath:  dir,
		EventsEnabled: &events,
	}); err != nil {
		b.t.Fatalf("browser: allow downloads: %v", err)
	}
	if err := chromedp.Do(ctx, trigger); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	var d downloaded
	var guid string
	for ev, err := range begins {
		if err != nil {
			b.t.Fatalf("browser: %s: no download began: %v", what, err)
		}
		guid, d.url, d.suggestedName = ev.GUID, ev.URL, ev.SuggestedFilename
		break
	}
	for ev, err := range progress {
		if err != nil {
			b.t.Fatalf("browser: %s: download %s did not complete: %v", what, d.suggestedName, err)
		}
		if ev.GUID != guid {
			continue
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			b.t.Fatalf("browser: %s: download %s was canceled", what, d.suggestedName)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			break
		}
	}
	body, err := os.ReadFile(filepath.Join(dir, guid))
	if err != nil {
		b.t.Fatalf("browser: %s: read the downloaded file: %v", what, err)
	}
	d.body = body
	return d
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// appServer is the app the Gateway sends the user back to: it records
// the query of each request to /done.
type appServer struct {
	t       *testing.T
	server  *httptest.Server
	mu      sync.Mutex
	queries []url.Values
}

func newAppServer(t *testing.T) *appServer {
	a := &appServer{t: t}
	a.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/done" {
			http.NotFound(w, r)
			return
		}
		a.mu.Lock()
		a.queries = append(a.queries, r.URL.Query())
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<!doctype html><title>App</title><h1>Back in the app</h1>"))
	}))
	t.Cleanup(a.server.Close)
	if u, _ := url.Parse(a.server.URL); u.Hostname() != "127.0.0.1" {
		t.Fatalf("app server at %s, want 127.0.0.1 (the dev redirect allow-list)", a.server.URL)
	}
	return a
}

// doneURL is the redirectUrl flows are started with.
func (a *appServer) doneURL() string { return a.server.URL + "/done" }

func (a *appServer) hits() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queries)
}

// waitHit waits for the request after the first `after` ones.
func (a *appServer) waitHit(after int, limit time.Duration) url.Values {
	a.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		if len(a.queries) > after {
			q := a.queries[after]
			a.mu.Unlock()
			return q
		}
		a.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	a.t.Fatalf("the app's %s was not requested within %s", a.doneURL(), limit)
	return nil
}
