package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox"
)

// demoHold is the export hold of the demo walk-through. The test runs one
// dev stack with a short hold rather than a second stack without one: a
// second embedded Temporal server doubles the test's start-up on two
// cores, and a short hold shows more, since the page must see the hold
// start, refuse the export, and lapse on its own (the customer read
// computes exportAvailableAt at read time). 30 s leaves the refused click
// well inside the hold on a loaded machine.
const demoHold = 30 * time.Second

// demoWait bounds each wait for the page to show what a step did.
const demoWait = 45 * time.Second

// The answers the person gives the Gateway's security questions.
var demoAnswers = []string{"Whiskers", "Arlington", "Vassar"}

// TestBrowser_DemoWalkthrough is a person clicking through the demo app on
// the real dev stack, with dev's own event receiver: create a customer,
// set a PIN with security questions, create ETH-SEPOLIA and SOL-DEVNET
// wallets, update the PIN, reset it through the questions, see the export
// hold and the refused export, then export once it lapsed and download the
// CSV. A screenshot of each step goes to the test's temp dir.
func TestBrowser_DemoWalkthrough(t *testing.T) {
	s := startStack(t, func(c *devConfig) {
		c.ExportHold = demoHold
		c.Notify = notifyConfig{} // dev's own receiver, the demo's
		c.UIPort = -1             // a Temporal UI, for the links
	})
	if s.UIURL == "" {
		t.Fatal("the dev stack runs no Temporal UI")
	}
	apiHasNoDemo(t, s)
	b := newBrowser(t)
	d := &demoPage{t: t, b: b, s: s, shots: t.TempDir()}

	// 1. The empty demo, then a customer.
	b.open(s.APIURL+"/demo", http.StatusOK)
	mustEqual(t, "page heading", b.text("h1"), "Customer Custody security flows")
	d.waitFor("the create form", `!document.getElementById("create-panel").hidden`)
	d.shot("01-start.png")
	b.do("create a customer", chromedp.SendKeys(chromedp.ID("name"), "Ada Lovelace"), chromedp.Click(chromedp.ID("create")))
	d.waitFor("the customer's status", `document.getElementById("customer-name").textContent === "Ada Lovelace" && d("hasPin") === "false"`)
	custID := b.text("#customer-id")
	if !strings.Contains(b.location(), "customer="+custID) {
		t.Fatalf("after creating the customer the address is %s, want it to name customer %s", b.location(), custID)
	}
	d.shot("02-customer.png")

	// 2. Set the PIN, with security questions, on the Gateway.
	d.startOnGateway("initialize", "Set up your PIN")
	b.do("fill the PIN setup form",
		chromedp.SendKeys(chromedp.ID("pin"), browserPIN),
		chromedp.SendKeys(chromedp.ID("confirmPin"), browserPIN),
		chromedp.Click(chromedp.ID("method-questions")),
		chromedp.SendKeys(chromedp.ID("answer1"), demoAnswers[0]),
		chromedp.SendKeys(chromedp.ID("answer2"), demoAnswers[1]),
		chromedp.SendKeys(chromedp.ID("answer3"), demoAnswers[2]),
	)
	d.shot("03-gateway-set-pin.png")
	d.submitBack()
	d.waitFor("PIN and recovery set", `d("hasPin") === "true" && d("hasRecovery") === "true" && d("canTransact") === "true"`)
	d.waitEvent(flow.EventPINSetup)
	d.waitFlow(flow.KindInitialize, flow.StatusCompleted)
	d.shot("04-pin-set.png")

	// 3. Wallets on ETH-SEPOLIA and SOL-DEVNET.
	if !b.checked("chain-eth") || !b.checked("chain-sol") {
		t.Fatal("the wallet blockchains are not both checked")
	}
	d.startOnGateway("wallets", "Create wallets")
	mustEqual(t, "blockchains on the Gateway", b.text("ul.chains"), "ETH-SEPOLIA\nSOL-DEVNET")
	b.do("enter the PIN", chromedp.SendKeys(chromedp.ID("pin"), browserPIN))
	d.submitBack()
	d.waitEvent(flow.EventWalletsCreated)
	d.waitFlow(flow.KindCreateWallets, flow.StatusCompleted)
	d.shot("05-wallets.png")
	ctx, cancel := context.WithTimeout(context.Background(), stepLimit)
	defer cancel()
	wallets, err := s.planbok.ListWallets(ctx, planbok.ListWalletsParams{CustomerIDs: []string{custID}})
	if err != nil {
		t.Fatal(err)
	}
	var chains []string
	for _, w := range wallets {
		chains = append(chains, w.Blockchain)
	}
	slices.Sort(chains)
	mustEqual(t, "wallets at Planbok", strings.Join(chains, ","), "ETH-SEPOLIA,SOL-DEVNET")

	// 4. Update the PIN.
	d.startOnGateway("update-pin", "Change your PIN")
	b.do("fill the PIN change form",
		chromedp.SendKeys(chromedp.ID("currentPin"), browserPIN),
		chromedp.SendKeys(chromedp.ID("newPin"), browserNewPIN),
		chromedp.SendKeys(chromedp.ID("confirmNewPin"), browserNewPIN),
	)
	d.submitBack()
	d.waitEvent(flow.EventPINUpdated)
	d.waitFor("pinUpdatedAt", `document.querySelector('[data-field="pinUpdatedAt"] time[datetime]') !== null`)
	d.shot("06-pin-updated.png")

	// 5. Forgot it: reset it through the security questions.
	resetPIN := "906153"
	d.startOnGateway("reset-pin", "")
	for i, q := range sandbox.SecurityQuestions {
		mustEqual(t, fmt.Sprintf("question %d", i+1), b.text(fmt.Sprintf(`label[for="answer%d"]`, i+1)), q)
	}
	b.do("answer the questions and choose a new PIN",
		chromedp.SendKeys(chromedp.ID("answer1"), demoAnswers[0]),
		chromedp.SendKeys(chromedp.ID("answer2"), demoAnswers[1]),
		chromedp.SendKeys(chromedp.ID("answer3"), demoAnswers[2]),
		chromedp.SendKeys(chromedp.ID("newPin"), resetPIN),
		chromedp.SendKeys(chromedp.ID("confirmNewPin"), resetPIN),
	)
	d.shot("07-gateway-reset-pin.png")
	d.submitBack()

	// 6. The export hold: shown live, announced to the app, and enforced.
	d.waitFor("the export hold", `!document.getElementById("hold").hidden`)
	d.waitEvent(flow.EventPINReset)
	d.waitEvent(flow.EventExportHoldStarted)
	cust := s.api.customer(custID)
	if cust.Security.ExportAvailableAt == nil || cust.Security.LastPINResetAt == nil ||
		!cust.Security.ExportAvailableAt.Equal(cust.Security.LastPINResetAt.Add(demoHold)) {
		t.Fatalf("customer during the hold: got exportAvailableAt %s, lastPinResetAt %s, want the reset + %s",
			fmtTime(cust.Security.ExportAvailableAt), fmtTime(cust.Security.LastPINResetAt), demoHold)
	}
	mustEqual(t, "hold on the page", b.attr("#hold", "data-available-at"), cust.Security.ExportAvailableAt.UTC().Format(time.RFC3339Nano))
	ev := s.receivedEvent(custID, flow.EventExportHoldStarted)
	if !strings.Contains(ev, "exportAvailableAt") {
		t.Fatalf("the export_hold_started event on the page does not show exportAvailableAt: %q", ev)
	}
	d.shot("08-export-hold.png")

	b.do("click Export private keys during the hold", chromedp.Click(chromedp.ID("start-export-private-keys")))
	d.waitFor("the refusal", `document.getElementById("notice").dataset.kind === "error" && document.getElementById("notice").textContent.includes("export_on_hold")`)
	if !strings.Contains(b.text("#notice"), "Export opens at") {
		t.Fatalf("the refusal does not say when export opens: %q", b.text("#notice"))
	}
	if !strings.HasPrefix(b.location(), s.APIURL+"/demo") {
		t.Fatalf("a refused export left the demo for %s", b.location())
	}
	d.shot("09-export-refused.png")

	// 7. The hold lapses on its own; the export runs on the Gateway and
	// ends with the CSV.
	wait := time.Until(*cust.Security.ExportAvailableAt) + demoWait
	d.waitForWithin("the hold to lapse", `document.getElementById("hold").hidden && d("exportAvailableAt") !== ""`, wait)
	d.shot("10-hold-over.png")
	d.startOnGateway("export-private-keys", "Export your private keys")
	b.do("enter the new PIN", chromedp.SendKeys(chromedp.ID("pin"), resetPIN))
	dl := b.download("click Download private keys", chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	mustEqual(t, "download file name", dl.suggestedName, "wallets-"+custID+".csv")
	rows, err := csv.NewReader(bytes.NewReader(dl.body)).ReadAll()
	if err != nil {
		t.Fatalf("downloaded CSV: %v", err)
	}
	if len(rows) != 3 {
		t.Fatalf("CSV: got %d rows, want a header and 2 wallets", len(rows))
	}
	mustEqual(t, "CSV header", strings.Join(rows[0], ","), "Address,Private Key,Blockchain,Derivation Path,Key Type")
	var csvChains []string
	for _, r := range rows[1:] {
		csvChains = append(csvChains, r[2])
	}
	slices.Sort(csvChains)
	mustEqual(t, "CSV blockchains", strings.Join(csvChains, ","), "ETH-SEPOLIA,SOL-DEVNET")
	d.shot("11-gateway-export.png")
	b.do("return to the app", chromedp.Click(chromedp.CSS(`a[href$="/return"]`)))
	d.waitForWithin("the demo again", `location.pathname === "/demo" && !document.getElementById("customer-panel").hidden`, stepLimit)
	d.waitEvent(flow.EventPrivateKeysExported)
	d.waitFlow(flow.KindExportPrivateKeys, flow.StatusCompleted)
	d.shot("12-exported.png")

	// Secrets stayed on the Gateway: no PIN, answer or key in anything the
	// demo's page received.
	page := browserRun(b, "read the page", chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	for _, secret := range append([]string{browserPIN, browserNewPIN, resetPIN, rows[1][1], rows[2][1]}, demoAnswers...) {
		if strings.Contains(page, secret) {
			t.Fatalf("the demo page holds a secret typed or downloaded on the Gateway (%d chars)", len(secret))
		}
	}

	// 8. Every flow links to its page in the Temporal UI.
	links := browserRun(b, "read the Temporal UI links", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#flows tr")].map(r => r.dataset.flowId + " " + r.dataset.status + " " + r.querySelector("a.temporal").href)`))
	if len(links) != 5 {
		t.Fatalf("flows on the page: got %d %q, want 5", len(links), links)
	}
	for _, l := range links {
		parts := strings.Fields(l)
		if want := s.UIURL + "/namespaces/default/workflows/" + parts[0]; parts[2] != want || parts[1] != string(flow.StatusCompleted) {
			t.Errorf("flow row %q: want completed with link %s", l, want)
		}
	}
	exportFlow := strings.Fields(links[0])[0]
	b.open(s.UIURL+"/namespaces/default/workflows/"+exportFlow, http.StatusOK)
	// The UI decodes the flow's input through dev's codec endpoint: the
	// redirectUrl back to the demo is readable.
	d.waitForWithin("the flow's decoded page in the Temporal UI", `document.body.innerText.includes("ExportPrivateKeys") && document.body.innerText.includes("/demo?customer=")`, demoWait)
	d.shot("13-temporal-ui.png")
}

// demoPage drives the demo page in a browser.
type demoPage struct {
	t     *testing.T
	b     *browserSession
	s     *stack
	shots string
}

// shot saves a screenshot of the whole page under name in the test's
// temp dir, and in $DEMO_SCREENSHOTS too when set (to look at them after
// the test).
func (d *demoPage) shot(name string) {
	d.t.Helper()
	png := browserRun(d.b, "take a screenshot", chromedp.FullScreenshot(100))
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		d.t.Fatalf("screenshot %s is not a PNG (%d bytes)", name, len(png))
	}
	dirs := []string{d.shots}
	if extra := os.Getenv("DEMO_SCREENSHOTS"); extra != "" {
		dirs = append(dirs, extra)
	}
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			d.t.Fatal(err)
		}
	}
	d.t.Logf("screenshot: %s", filepath.Join(d.shots, name))
}

// demoHelpers are defined before each wait expression: d(name) is the
// data-value (or text) of a security field.
const demoHelpers = `const d = (n) => { const e = document.querySelector('[data-field="' + n + '"]'); return e ? (e.dataset.value ?? e.textContent) : ""; };`

// waitFor waits until expr is true on the page (demoWait at most).
func (d *demoPage) waitFor(what, expr string) {
	d.t.Helper()
	d.waitForWithin(what, expr, demoWait)
}

// waitForWithin evaluates expr until it is true; an evaluation that fails
// (the page is navigating) is tried again.
func (d *demoPage) waitForWithin(what, expr string, limit time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(d.b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { `+demoHelpers+` try { return !!(`+expr+`); } catch (e) { return false; } })()`))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	d.shot("timeout.png")
	d.t.Fatalf("demo: %s did not show within %s (last error %v); page notice %q", what, limit, last, d.notice())
}

func (d *demoPage) notice() string {
	ctx, cancel := context.WithTimeout(d.b.ctx, 2*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("notice") || {}).textContent || ""`))
	return strings.TrimSpace(s)
}

// startOnGateway clicks the flow's button on the demo page and expects the
// browser on the Gateway, on the page titled heading ("" = any).
func (d *demoPage) startOnGateway(route, heading string) {
	d.t.Helper()
	d.b.do("click "+route, chromedp.Click(chromedp.ID("start-"+route)))
	d.waitFor("the Gateway page of "+route, fmt.Sprintf(`location.href.startsWith(%s) && document.querySelector('input[name="csrf"]') !== null`, jsString(d.s.SandboxURL+"/gateway/")))
	if heading != "" {
		mustEqual(d.t, "Gateway heading", d.b.text("h1"), heading)
	}
}

// submitBack submits the Gateway's form and expects the Gateway to send
// the browser back to the demo page, which then drops the challenge from
// its address and says the challenge was verified.
func (d *demoPage) submitBack() {
	d.t.Helper()
	d.b.do("submit the Gateway form", chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	d.waitFor("the demo page after the Gateway", `location.pathname === "/demo" && !location.search.includes("challengeId") && document.getElementById("notice").textContent.includes("challenge verified")`)
}

// waitEvent waits until the page lists an event of typ.
func (d *demoPage) waitEvent(typ flow.EventType) {
	d.t.Helper()
	d.waitFor("event "+string(typ), fmt.Sprintf(`document.querySelector('#events li[data-type=%s]') !== null`, jsString(string(typ))))
}

// waitFlow waits until the page's newest flow of kind has status.
func (d *demoPage) waitFlow(kind flow.Kind, status flow.Status) {
	d.t.Helper()
	d.waitFor(fmt.Sprintf("a %s flow %s", kind, status),
		fmt.Sprintf(`(document.querySelector('#flows tr[data-kind=%s]') || {dataset: {}}).dataset.status === %s`, jsString(string(kind)), jsString(string(status))))
}

// receivedEvent returns the text of the page's newest event of typ.
func (s *stack) receivedEvent(customerID string, typ flow.EventType) string {
	s.t.Helper()
	r := s.api.do(http.MethodGet, "/demo/api/customers/"+customerID, nil)
	if r.Status != http.StatusOK {
		s.t.Fatalf("demo state: got %d %s", r.Status, r.Body)
	}
	var st struct {
		Events []struct {
			Type     string         `json:"type"`
			Security map[string]any `json:"security"`
		} `json:"events"`
	}
	r.decode(s.t, &st)
	for _, e := range st.Events {
		if e.Type == string(typ) {
			return fmt.Sprint(e.Security)
		}
	}
	return ""
}

// The export hold is off in dev unless set, on (24 h) for api and worker,
// read from CUSTODYFLOWS_EXPORT_HOLD, and never negative.
func TestConfig_ExportHold(t *testing.T) {
	e := func(m map[string]string) env { return env{stderr: &bytes.Buffer{}, lookup: lookupFrom(m)} }
	dev, err := parseDevConfig(nil, e(nil))
	if err != nil || dev.ExportHold != 0 {
		t.Fatalf("dev default: got %s, %v, want 0", dev.ExportHold, err)
	}
	dev, err = parseDevConfig(nil, e(map[string]string{"CUSTODYFLOWS_EXPORT_HOLD": "90s"}))
	if err != nil || dev.ExportHold != 90*time.Second {
		t.Fatalf("dev from env: got %s, %v, want 90s", dev.ExportHold, err)
	}
	if _, err := parseDevConfig([]string{"--export-hold", "-1m"}, e(nil)); err == nil || !strings.Contains(err.Error(), "--export-hold") {
		t.Fatalf("negative hold: got %v, want a refusal naming --export-hold", err)
	}
	base := []string{"--planbok-api-key", "k", "--payload-keys", "k1:" + strings.Repeat("A", 43) + "="}
	w, err := parseWorkerConfig(base, e(nil))
	if err != nil || w.ExportHold != flow.DefaultExportHold || flow.DefaultExportHold != 24*time.Hour {
		t.Fatalf("worker default: got %s, %v, want 24h", w.ExportHold, err)
	}
	a, err := parseAPIConfig(append(base, "--api-keys", "key", "--webhook-secrets", "s", "--allow-localhost-redirects", "--export-hold", "0"), e(nil))
	if err != nil || a.ExportHold != 0 {
		t.Fatalf("api --export-hold 0: got %s, %v, want 0 (off)", a.ExportHold, err)
	}
}

// apiHasNoDemo runs the `api` command against the stack's Temporal and
// Planbok and checks that it answers 404 for the demo's paths while dev
// serves them: the demo exists only in dev.
func apiHasNoDemo(t *testing.T, s *stack) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := freeAddr(t)
	environment := map[string]string{
		"CUSTODYFLOWS_TEMPORAL_ADDRESS": s.TemporalURL,
		"CUSTODYFLOWS_DB":               t.TempDir() + "/app.db",
		"CUSTODYFLOWS_PLANBOK_URL":      s.SandboxURL,
		"CUSTODYFLOWS_PLANBOK_API_KEY":  testPlanbokKey,
		"CUSTODYFLOWS_PAYLOAD_KEYS":     "k1:" + strings.Repeat("A", 43) + "=",
		"CUSTODYFLOWS_WEBHOOK_SECRETS":  testWebhookSecret,
		"CUSTODYFLOWS_API_KEYS":         testAPIKey,
	}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"api", "--http-addr", addr, "--allow-localhost-redirects"}, io.Discard, io.Discard, lookupFrom(environment))
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("api command: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the api command did not stop within 30s")
		}
	}()
	if err := waitReady(ctx, "http://"+addr+"/healthz", 30*time.Second); err != nil {
		t.Fatalf("api: %v", err)
	}
	for _, path := range []string{"/demo", "/demo/assets/app.js", "/demo/api/customers/x"} {
		for base, want := range map[string]int{"http://" + addr: http.StatusNotFound, s.APIURL: http.StatusOK} {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if path == "/demo/api/customers/x" && base == s.APIURL {
				want = http.StatusNotFound // dev: the API's customer_not_found
			}
			if resp.StatusCode != want {
				t.Errorf("GET %s%s: got %d, want %d", base, path, resp.StatusCode, want)
			}
		}
	}
}
