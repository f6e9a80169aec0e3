package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox/keys"
)

const (
	testKey      = "test-planbok-key"
	testSecret   = "test-webhook-secret"
	testRedirect = "https://app.example/return?flow=abc"
	pin1         = "123456"
	pin2         = "654321"
	pin3         = "111222"
)

var answers = []string{"Rex", "Lisbon", "St. Mary's"}

// fakeClock is the injected clock; tests move it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a sandbox behind an httptest server, with a fake clock.
type env struct {
	t      *testing.T
	opts   Options
	sb     *Sandbox
	srv    *httptest.Server
	clock  *fakeClock
	helper *HelperClient
}

func testOptions(clock *fakeClock) Options {
	return Options{
		APIKey:           testKey,
		Clock:            clock.Now,
		KDF:              keys.LightParams,
		WebhookSecret:    []byte(testSecret),
		WebhookRetryPoll: 10 * time.Millisecond,
	}
}

func newEnv(t *testing.T, mods ...func(*Options)) *env {
	t.Helper()
	clock := newFakeClock()
	opts := testOptions(clock)
	for _, m := range mods {
		m(&opts)
	}
	e := &env{t: t, opts: opts, clock: clock}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.sb.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.start()
	e.helper = NewHelperClient(e.srv.URL, testKey, e.srv.Client())
	return e
}

// start (re)opens the sandbox with e.opts.
func (e *env) start() {
	e.t.Helper()
	opts := e.opts
	if opts.BaseURL == "" {
		opts.BaseURL = e.srv.URL
	}
	sb, err := New(opts)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.sb = sb
	e.t.Cleanup(func() { sb.Close() })
}

// resp is a decoded envelope.
type resp struct {
	Status  int
	Header  http.Header
	Env     planbok.Envelope
	RawBody []byte
}

func (e *env) req(method, path string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	r, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	r.Header.Set(HeaderAPIKey, testKey)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
		} else {
			r.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := e.srv.Client().Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{Status: res.StatusCode, Header: res.Header, RawBody: raw}
	if err := json.Unmarshal(raw, &out.Env); err != nil {
		e.t.Fatalf("%s %s: body is not an envelope: %v: %s", method, path, err, raw)
	}
	if out.Env.Status != res.StatusCode || out.Env.Success != (res.StatusCode < 300) {
		e.t.Fatalf("%s %s: envelope %+v does not match HTTP status %d", method, path, out.Env, res.StatusCode)
	}
	return out
}

// want fails unless r has the status.
func (r resp) want(t *testing.T, status int) resp {
	t.Helper()
	if r.Status != status {
		t.Fatalf("got status %d (%s), want %d", r.Status, r.Env.Message, status)
	}
	return r
}

func (r resp) data(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Env.Data, v); err != nil {
		t.Fatalf("decode data: %v: %s", err, r.Env.Data)
	}
}

func (e *env) createCustomer() planbok.Customer {
	e.t.Helper()
	var c planbok.Customer
	e.req("POST", "/v2/customers", map[string]string{"name": "Ada", "refId": "user-1"}).want(e.t, 201).data(e.t, &c)
	return c
}

func (e *env) customer(id string) planbok.Customer {
	e.t.Helper()
	var c planbok.Customer
	e.req("GET", "/v2/customers/"+id, nil).want(e.t, 200).data(e.t, &c)
	return c
}

// challenge creates a challenge and expects 201.
func (e *env) challenge(customerID string, task planbok.Task, extra ...any) planbok.Challenge {
	e.t.Helper()
	body := map[string]any{"redirectUrl": testRedirect}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i].(string)] = extra[i+1]
	}
	var ch planbok.Challenge
	e.req("POST", "/v2/customers/"+customerID+"/"+string(task), body).want(e.t, 201).data(e.t, &ch)
	return ch
}

func (e *env) getChallenge(customerID, challengeID string) planbok.Challenge {
	e.t.Helper()
	var ch planbok.Challenge
	e.req("GET", "/v2/customers/"+customerID+"/challenges/"+challengeID, nil).want(e.t, 200).data(e.t, &ch)
	return ch
}

func (e *env) complete(challengeID string, body any) (json.RawMessage, error) {
	return e.helper.Complete(context.Background(), challengeID, body)
}

func (e *env) mustComplete(challengeID string, body any) json.RawMessage {
	e.t.Helper()
	d, err := e.complete(challengeID, body)
	if err != nil {
		e.t.Fatalf("complete %s: %v", challengeID, err)
	}
	return d
}

func questions() map[string]any {
	return map[string]any{"method": "security_questions", "answers": answers}
}

// onboard creates a customer with pin1 and security-question recovery.
func (e *env) onboard() planbok.Customer {
	e.t.Helper()
	c := e.createCustomer()
	ch := e.challenge(c.ID, planbok.TaskInitialize)
	e.mustComplete(ch.ChallengeID, map[string]any{"pin": pin1, "recovery": questions()})
	return e.customer(c.ID)
}

// createWallets runs a wallet/create challenge with pin.
func (e *env) createWallets(customerID, pin string, chains ...string) []planbok.Wallet {
	e.t.Helper()
	ch := e.challenge(customerID, planbok.TaskCreateWallets, "blockchains", chains, "accountType", "eoa")
	e.mustComplete(ch.ChallengeID, map[string]any{"pin": pin})
	var res struct {
		Wallets []planbok.Wallet `json:"wallets"`
	}
	if err := json.Unmarshal(e.getChallenge(customerID, ch.ChallengeID).Result, &res); err != nil {
		e.t.Fatal(err)
	}
	return res.Wallets
}

// export runs an export challenge with pin and returns the CSV.
func (e *env) export(customerID, pin string) (string, error) {
	e.t.Helper()
	ch := e.challenge(customerID, planbok.TaskExportPrivateKeys)
	d, err := e.complete(ch.ChallengeID, map[string]any{"pin": pin})
	if err != nil {
		return "", err
	}
	var out struct {
		CSV string `json:"csv"`
	}
	json.Unmarshal(d, &out)
	return out.CSV, nil
}

func wantAttempts(t *testing.T, err error, status, attempts int) {
	t.Helper()
	he, ok := err.(*HelperError)
	if !ok {
		t.Fatalf("got error %v, want a *HelperError", err)
	}
	if he.Status != status {
		t.Fatalf("got status %d (%s), want %d", he.Status, he.Message, status)
	}
	if attempts < 0 {
		return
	}
	got, ok := he.AttemptsRemaining()
	if !ok || got != attempts {
		t.Fatalf("got attemptsRemaining %d (present %v), want %d", got, ok, attempts)
	}
}
