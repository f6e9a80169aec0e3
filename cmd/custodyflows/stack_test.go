package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/notify"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox"
)

// Test settings of the whole product: free ports, fast key derivation, no
// rate limits, quiet logs.
const (
	testAPIKey        = "test-api-key"
	testPlanbokKey    = "test-planbok-key"
	testWebhookSecret = "test-webhook-secret"
	testRedirect      = "http://localhost:3000/done"
	testPIN           = "123456"
)

var testAnswers = []string{"Blue", "Rex", "Lisbon"}

// stack is a running `custodyflows dev` and clients for it.
type stack struct {
	*Main
	t       testing.TB
	api     *apiClient
	helper  *sandbox.HelperClient
	planbok *planbok.Client
	events  *eventSink
}

type stackOption func(*devConfig)

func withDataDir(dir string) stackOption { return func(c *devConfig) { c.DataDir = dir } }
func withTTL(d time.Duration) stackOption {
	return func(c *devConfig) { c.ChallengeTTL = d }
}

// startStack starts the whole product in this process and stops it when
// the test ends.
func startStack(t testing.TB, opts ...stackOption) *stack {
	t.Helper()
	events := newEventSink(t)
	cfg := devConfig{
		DataDir:          t.TempDir(),
		HTTPAddr:         "127.0.0.1:0",
		SandboxAddr:      "127.0.0.1:0",
		TemporalPort:     0,
		UIPort:           0,
		APIKey:           testAPIKey,
		ChallengeTTL:     15 * time.Minute,
		PlanbokAPIKey:    testPlanbokKey,
		WebhookSecret:    testWebhookSecret,
		Notify:           notifyConfig{URL: events.url, Secret: secretFlag{events.secretText}},
		Namespace:        "default",
		TaskQueue:        flow.DefaultTaskQueue,
		TemporalLogLevel: "error",
		SandboxKDF:       "light",
		SandboxRateLimit: false,
	}
	for _, o := range opts {
		o(&cfg)
	}
	m := NewMain(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatalf("start dev stack: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close dev stack: %v", err)
		}
	})
	return &stack{
		Main:    m,
		t:       t,
		api:     &apiClient{t: t, base: m.APIURL, key: testAPIKey},
		helper:  sandbox.NewHelperClient(m.SandboxURL, testPlanbokKey, nil),
		planbok: planbok.New(m.SandboxURL, testPlanbokKey),
		events:  events,
	}
}

// apiClient calls custodyflows' HTTP API as an app backend would.
type apiClient struct {
	t    testing.TB
	base string
	key  string
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// errorCode returns the error.code of an error response.
func (r response) errorCode() string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

func (c *apiClient) do(method, path string, body any) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

func (c *apiClient) createCustomer(name, refID string) flow.Customer {
	c.t.Helper()
	r := c.do(http.MethodPost, "/v1/customers", map[string]string{"name": name, "refId": refID})
	if r.Status != http.StatusCreated {
		c.t.Fatalf("create customer: got %d %s, want 201", r.Status, r.Body)
	}
	var cust flow.Customer
	r.decode(c.t, &cust)
	return cust
}

func (c *apiClient) customer(id string) flow.Customer {
	c.t.Helper()
	r := c.do(http.MethodGet, "/v1/customers/"+id, nil)
	if r.Status != http.StatusOK {
		c.t.Fatalf("get customer: got %d %s, want 200", r.Status, r.Body)
	}
	var cust flow.Customer
	r.decode(c.t, &cust)
	return cust
}

// start starts a flow and expects wantStatus.
func (c *apiClient) start(customerID string, kind flow.Kind, body map[string]any, wantStatus int) (flow.Flow, response) {
	c.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	if _, ok := body["redirectUrl"]; !ok {
		body["redirectUrl"] = testRedirect
	}
	r := c.do(http.MethodPost, "/v1/customers/"+customerID+"/"+kind.Route(), body)
	if r.Status != wantStatus {
		c.t.Fatalf("start %s: got %d %s, want %d", kind, r.Status, r.Body, wantStatus)
	}
	var f flow.Flow
	if r.Status < 300 {
		r.decode(c.t, &f)
	}
	return f, r
}

func (c *apiClient) flow(id string) flow.Flow {
	c.t.Helper()
	r := c.do(http.MethodGet, "/v1/flows/"+id, nil)
	if r.Status != http.StatusOK {
		c.t.Fatalf("get flow: got %d %s, want 200", r.Status, r.Body)
	}
	var f flow.Flow
	r.decode(c.t, &f)
	return f
}

// waitFlow polls the API until the flow reaches want or the limit passes.
func (c *apiClient) waitFlow(id string, want flow.Status, limit time.Duration) flow.Flow {
	c.t.Helper()
	deadline := time.Now().Add(limit)
	var f flow.Flow
	for time.Now().Before(deadline) {
		f = c.flow(id)
		if f.Status == want {
			return f
		}
		if f.Status.Terminal() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("flow %s: got status %s (error %+v), want %s", id, f.Status, f.Error, want)
	return f
}

// complete does on the sandbox what the user does on the Gateway.
func (s *stack) complete(challengeID string, body any) json.RawMessage {
	s.t.Helper()
	data, err := s.helper.Complete(context.Background(), challengeID, body)
	if err != nil {
		s.t.Fatalf("complete challenge %s: %v", challengeID, err)
	}
	return data
}

func securityQuestions(answers ...string) map[string]any {
	return map[string]any{"method": "security_questions", "answers": answers}
}

// onboard creates a customer with a PIN and security-question recovery.
func (s *stack) onboard(refID string) flow.Customer {
	s.t.Helper()
	cust := s.api.createCustomer("Test "+refID, refID)
	f, _ := s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
	s.complete(f.ChallengeID, map[string]any{"pin": testPIN, "recovery": securityQuestions(testAnswers...)})
	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	return s.api.customer(cust.ID)
}

// eventSink receives the events custodyflows sends the app and checks
// their Standard Webhooks signatures.
//
// Events go to a path of the sink's own (url), not "/": tests of other
// packages run at the same time and may still send requests to a loopback
// port they used and closed (a sandbox retrying a webhook, a readiness
// poll), and the kernel may give that port to this sink. Such strays are
// logged and answered 404; everything sent to url must be a signed event.
type eventSink struct {
	t          testing.TB
	server     *httptest.Server
	url        string
	secretText string
	mu         sync.Mutex
	events     []receivedEvent
}

type receivedEvent struct {
	ID    string
	Event flow.AppEvent
}

func newEventSink(t testing.TB) *eventSink {
	s := &eventSink{t: t, secretText: "whsec_" + "dGVzdC1ub3RpZnktc2VjcmV0LTMyLWJ5dGVzLWxvbmch"}
	secret, err := notify.ParseSecret(s.secretText)
	if err != nil {
		t.Fatal(err)
	}
	path := "/events/" + rand.Text()
	s.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			t.Logf("event sink: ignored a stray %s %s (User-Agent %q)", r.Method, r.URL.Path, r.UserAgent())
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if err := notify.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("event with a bad signature: %v", err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev flow.AppEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("event body %s: %v", body, err)
		}
		s.mu.Lock()
		s.events = append(s.events, receivedEvent{ID: r.Header.Get("webhook-id"), Event: ev})
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.server.Close)
	s.url = s.server.URL + path
	return s
}

// waitFor waits until an event of type typ for flowID (any flow when "")
// arrived, and returns it.
func (s *eventSink) waitFor(typ flow.EventType, customerID, flowID string, limit time.Duration) receivedEvent {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, e := range s.events {
			if e.Event.Type == typ && e.Event.Data.CustomerID == customerID && (flowID == "" || e.Event.Data.FlowID == flowID) {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("no %s event for customer %s flow %q within %s", typ, customerID, flowID, limit)
	return receivedEvent{}
}

// distinctIDs counts distinct webhook-ids of events for customerID.
func (s *eventSink) count(typ flow.EventType, customerID string) (deliveries, distinct int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := map[string]bool{}
	for _, e := range s.events {
		if e.Event.Type == typ && e.Event.Data.CustomerID == customerID {
			deliveries++
			ids[e.ID] = true
		}
	}
	return deliveries, len(ids)
}

func mustEqual[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func fmtTime(p *time.Time) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(p.UTC())
}

// lockedBuffer collects output written from other goroutines (logs,
// Chromium).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
