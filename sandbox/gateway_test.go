package sandbox

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/planbok"
)

// page is a Gateway response.
type page struct {
	status int
	header http.Header
	body   string
}

func (e *env) browser() *http.Client {
	c := *e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (e *env) gatewayGet(gatewayURL string) page {
	e.t.Helper()
	res, err := e.browser().Get(gatewayURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return page{res.StatusCode, res.Header, string(b)}
}

func (e *env) gatewayPost(gatewayURL string, form url.Values) page {
	e.t.Helper()
	res, err := e.browser().PostForm(gatewayURL, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return page{res.StatusCode, res.Header, string(b)}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formToken GETs the page and returns its CSRF token.
func (e *env) formToken(gatewayURL string) string {
	e.t.Helper()
	p := e.gatewayGet(gatewayURL)
	if p.status != 200 {
		e.t.Fatalf("GET %s: got %d: %s", gatewayURL, p.status, p.body)
	}
	m := csrfRe.FindStringSubmatch(p.body)
	if m == nil {
		e.t.Fatalf("no CSRF token in page: %s", p.body)
	}
	return m[1]
}

func wantRedirect(t *testing.T, p page, ch planbok.Challenge, status string) {
	t.Helper()
	if p.status != http.StatusSeeOther {
		t.Fatalf("got %d, want 303: %s", p.status, p.body)
	}
	u, err := url.Parse(p.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Host != "app.example" || u.Path != "/return" || q.Get("flow") != "abc" || q.Get("challengeId") != ch.ChallengeID || q.Get("status") != status {
		t.Errorf("got Location %s, want the app URL with flow=abc, challengeId=%s, status=%s", u, ch.ChallengeID, status)
	}
}

func TestGateway_InitializeForm(t *testing.T) {
	e := newEnv(t)
	c := e.createCustomer()
	ch := e.challenge(c.ID, planbok.TaskInitialize)
	p := e.gatewayGet(ch.RedirectURL)
	if p.status != 200 {
		t.Fatalf("got %d", p.status)
	}
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Content-Type": "text/html; charset=utf-8"} {
		if got := p.header.Get(h); got != want {
			t.Errorf("%s: got %q, want %q", h, got, want)
		}
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("got CSP %q", csp)
	}
	for _, want := range []string{`<label for="pin">`, `<label for="confirmPin">`, `name="method" value="security_questions"`, `name="method" value="email"`, SecurityQuestions[0], `name="csrf"`} {
		if !strings.Contains(p.body, htmlEscape(want)) {
			t.Errorf("page lacks %q", want)
		}
	}
	token := e.formToken(ch.RedirectURL)
	good := url.Values{"csrf": {token}, "pin": {pin1}, "confirmPin": {pin1}, "method": {"security_questions"},
		"answer1": {answers[0]}, "answer2": {answers[1]}, "answer3": {answers[2]}}

	bad := url.Values{}
	for k, v := range good {
		bad[k] = v
	}
	bad.Set("csrf", "forged")
	if p := e.gatewayPost(ch.RedirectURL, bad); p.status != 403 {
		t.Errorf("wrong CSRF token: got %d, want 403", p.status)
	}
	bad.Del("csrf")
	if p := e.gatewayPost(ch.RedirectURL, bad); p.status != 403 {
		t.Errorf("no CSRF token: got %d, want 403", p.status)
	}
	mismatch := url.Values{"csrf": {token}, "pin": {pin1}, "confirmPin": {pin2}, "method": {"security_questions"}}
	p = e.gatewayPost(ch.RedirectURL, mismatch)
	if p.status != 400 || !strings.Contains(p.body, `id="confirmPin-err"`) || !strings.Contains(p.body, "do not match") {
		t.Errorf("mismatched PINs: got %d: %s", p.status, p.body)
	}
	if strings.Contains(p.body, pin1) {
		t.Error("the page echoes the PIN back")
	}
	noAnswers := url.Values{"csrf": {token}, "pin": {pin1}, "confirmPin": {pin1}, "method": {"security_questions"}, "answer1": {"x"}}
	if p := e.gatewayPost(ch.RedirectURL, noAnswers); p.status != 400 || !strings.Contains(p.body, `role="alert"`) {
		t.Errorf("missing answers: got %d", p.status)
	}
	if got := e.getChallenge(c.ID, ch.ChallengeID); got.Status != "pending" {
		t.Fatalf("got %s after invalid forms", got.Status)
	}

	wantRedirect(t, e.gatewayPost(ch.RedirectURL, good), ch, "verified")
	if got := e.customer(c.ID); !got.HasPIN || !got.HasRecovery {
		t.Errorf("got %+v", got)
	}
	// The finished challenge shows a clear page with the way back.
	p = e.gatewayGet(ch.RedirectURL)
	if p.status != 200 || !strings.Contains(p.body, "Return to the app") || strings.Contains(p.body, `name="csrf"`) {
		t.Errorf("finished page: got %d: %s", p.status, p.body)
	}
	// The helper and the form share one code path: the PIN set on the form works.
	if _, err := e.export(c.ID, pin1); err != nil {
		t.Fatal(err)
	}
}

func htmlEscape(s string) string { return strings.ReplaceAll(s, "'", "&#39;") }

func TestGateway_WrongPINAndExportCSV(t *testing.T) {
	e := newEnv(t)
	c := e.onboard()
	ws := e.createWallets(c.ID, pin1, "ETH-SEPOLIA", "SOL-DEVNET")
	ch := e.challenge(c.ID, planbok.TaskExportPrivateKeys)
	token := e.formToken(ch.RedirectURL)

	p := e.gatewayPost(ch.RedirectURL, url.Values{"csrf": {token}, "pin": {pin2}})
	if p.status != 422 || !strings.Contains(p.body, "4 attempts remaining") || !strings.Contains(p.body, `id="pin-err"`) {
		t.Fatalf("wrong PIN: got %d: %s", p.status, p.body)
	}
	p = e.gatewayPost(ch.RedirectURL, url.Values{"csrf": {token}, "pin": {pin1}})
	if p.status != 200 {
		t.Fatalf("export: got %d: %s", p.status, p.body)
	}
	if got := p.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("got Cache-Control %q, want no-store", got)
	}
	if got := p.header.Get("Content-Disposition"); !strings.HasPrefix(got, "attachment;") {
		t.Errorf("got Content-Disposition %q", got)
	}
	if !strings.HasPrefix(p.header.Get("Content-Type"), "text/csv") {
		t.Errorf("got Content-Type %q", p.header.Get("Content-Type"))
	}
	rows := parseCSV(t, p.body)
	if len(rows) != 2 || rows[0]["Address"] != ws[0].Address || rows[1]["Address"] != ws[1].Address {
		t.Errorf("got %v, want the wallets %v", rows, ws)
	}
	if got := e.getChallenge(c.ID, ch.ChallengeID); got.Status != "verified" || string(got.Result) != "{}" {
		t.Errorf("got %+v", got)
	}
	// The export page's return link sends the user back once it is done.
	wantRedirect(t, e.gatewayGet(ch.RedirectURL+"/return"), ch, "verified")
}

func TestGateway_LockoutPage(t *testing.T) {
	e := newEnv(t)
	c := e.onboard()
	ch := e.challenge(c.ID, planbok.TaskCreateWallets, "blockchains", []string{"ETH"})
	other := e.challenge(c.ID, planbok.TaskUpdatePIN)
	token := e.formToken(ch.RedirectURL)
	var p page
	for range 5 {
		p = e.gatewayPost(ch.RedirectURL, url.Values{"csrf": {token}, "pin": {pin2}})
	}
	if p.status != 422 || !strings.Contains(p.body, "locked") || !strings.Contains(p.body, "status=failed") {
		t.Errorf("fifth wrong PIN: got %d: %s", p.status, p.body)
	}
	if p := e.gatewayGet(other.RedirectURL); p.status != 403 || !strings.Contains(p.body, "locked") {
		t.Errorf("other challenge while locked: got %d", p.status)
	}
	// Reset with the emailed-code-free path: security questions on the form.
	rs := e.challenge(c.ID, planbok.TaskResetPIN)
	rt := e.formToken(rs.RedirectURL)
	form := url.Values{"csrf": {rt}, "answer1": {answers[0]}, "answer2": {answers[1]}, "answer3": {answers[2]},
		"newPin": {pin3}, "confirmNewPin": {pin3}}
	wantRedirect(t, e.gatewayPost(rs.RedirectURL, form), rs, "verified")
	if got := e.customer(c.ID); got.Status != "active" {
		t.Errorf("got %s after reset", got.Status)
	}
}

func TestGateway_OtherTasks(t *testing.T) {
	e := newEnv(t)
	c := e.createCustomer()
	in := e.challenge(c.ID, planbok.TaskInitialize)
	wantRedirect(t, e.gatewayPost(in.RedirectURL, url.Values{"csrf": {e.formToken(in.RedirectURL)},
		"pin": {pin1}, "confirmPin": {pin1}, "method": {"none"}}), in, "verified")
	if e.customer(c.ID).HasRecovery {
		t.Fatal("hasRecovery after choosing none")
	}

	rc := e.challenge(c.ID, planbok.TaskRecovery)
	p := e.gatewayPost(rc.RedirectURL, url.Values{"csrf": {e.formToken(rc.RedirectURL)}, "pin": {pin1}, "method": {"email"}, "email": {"bad"}})
	if p.status != 400 || !strings.Contains(p.body, `id="email-err"`) || !strings.Contains(p.body, `value="bad"`) {
		t.Errorf("bad email: got %d: %s", p.status, p.body)
	}
	wantRedirect(t, e.gatewayPost(rc.RedirectURL, url.Values{"csrf": {e.formToken(rc.RedirectURL)},
		"pin": {pin1}, "method": {"email"}, "email": {"ada@example.com"}}), rc, "verified")

	up := e.challenge(c.ID, planbok.TaskUpdatePIN)
	wantRedirect(t, e.gatewayPost(up.RedirectURL, url.Values{"csrf": {e.formToken(up.RedirectURL)},
		"currentPin": {pin1}, "newPin": {pin2}, "confirmNewPin": {pin2}}), up, "verified")

	wc := e.challenge(c.ID, planbok.TaskCreateWallets, "blockchains", []string{"SOL-DEVNET", "ETH"})
	if body := e.gatewayGet(wc.RedirectURL).body; !strings.Contains(body, "<li>SOL-DEVNET</li>") {
		t.Errorf("wallet page lacks the blockchains: %s", body)
	}
	wantRedirect(t, e.gatewayPost(wc.RedirectURL, url.Values{"csrf": {e.formToken(wc.RedirectURL)}, "pin": {pin2}}), wc, "verified")

	rs := e.challenge(c.ID, planbok.TaskResetPIN)
	page := e.gatewayGet(rs.RedirectURL).body
	if !strings.Contains(page, "a***@example.com") || !strings.Contains(page, `name="emailCode"`) {
		t.Errorf("reset page lacks the email code field: %s", page)
	}
	code, err := e.helper.EmailCode(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantRedirect(t, e.gatewayPost(rs.RedirectURL, url.Values{"csrf": {e.formToken(rs.RedirectURL)},
		"emailCode": {code}, "newPin": {pin3}, "confirmNewPin": {pin3}}), rs, "verified")
	csvText, err := e.export(c.ID, pin3)
	if err != nil {
		t.Fatal(err)
	}
	if rows := parseCSV(t, csvText); len(rows) != 2 {
		t.Errorf("got %d rows, want 2", len(rows))
	}
}

func TestGateway_ExpiredAndUnknown(t *testing.T) {
	e := newEnv(t)
	c := e.createCustomer()
	ch := e.challenge(c.ID, planbok.TaskInitialize)
	token := e.formToken(ch.RedirectURL)
	e.clock.Advance(DefaultChallengeTTL + time.Second)
	if p := e.gatewayGet(ch.RedirectURL); p.status != 404 || !strings.Contains(p.body, "expired") {
		t.Errorf("expired: got %d: %s", p.status, p.body)
	}
	if p := e.gatewayPost(ch.RedirectURL, url.Values{"csrf": {token}, "pin": {pin1}, "confirmPin": {pin1}, "method": {"none"}}); p.status != 404 {
		t.Errorf("expired POST: got %d", p.status)
	}
	if p := e.gatewayGet(e.srv.URL + "/gateway/challenges/nope"); p.status != 404 {
		t.Errorf("unknown: got %d", p.status)
	}
}
