package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

// Hand-written fakes of the three dependencies. Each records its calls and
// lets a test choose its answers.

// ---- store ----

type fakeStore struct {
	mu        sync.Mutex
	customers map[string]*store.Customer
	flows     map[string]*flow.Flow
	meta      map[string]store.FlowMeta // by flow id
	inbox     map[string]*store.InboxEntry
	audits    []store.AuditEntry
	calls     []string
	err       error // returned by every method when set
	pingErr   error
	auditErr  error // returned by RecordAudit when set
	// signalledErr is returned by ChallengeSignalled when set.
	signalledErr error
}

func newFakeStore() *fakeStore {
	return &fakeStore{customers: map[string]*store.Customer{}, flows: map[string]*flow.Flow{},
		meta: map[string]store.FlowMeta{}, inbox: map[string]*store.InboxEntry{}}
}

func (s *fakeStore) call(name string) error {
	s.calls = append(s.calls, name)
	return s.err
}

func (s *fakeStore) called(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.calls, name)
}

func (s *fakeStore) addFlow(f *flow.Flow, key, hash string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flows[f.ID] = f
	s.meta[f.ID] = store.FlowMeta{IdempotencyKey: key, RequestHash: hash}
}

func (s *fakeStore) FindCustomerByID(_ context.Context, id string) (*store.Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("FindCustomerByID"); err != nil {
		return nil, err
	}
	c, ok := s.customers[id]
	if !ok {
		return nil, flow.Errorf(flow.CodeCustomerNotFound, "no customer %s", id)
	}
	cp := *c
	return &cp, nil
}

func (s *fakeStore) UpsertCustomer(_ context.Context, c *store.Customer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("UpsertCustomer"); err != nil {
		return err
	}
	// Like store.Store: name and refId only; a stored security status stays.
	cp := *c
	if old, ok := s.customers[c.ID]; ok {
		cp.Security, cp.CreatedAt = old.Security, old.CreatedAt
	} else {
		cp.Security = flow.Security{}
	}
	s.customers[c.ID] = &cp
	return nil
}

// putCustomer stores c as is (the worker's security writes).
func (s *fakeStore) putCustomer(c *store.Customer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := *c
	s.customers[c.ID] = &cp
}

func (s *fakeStore) FindFlowByID(_ context.Context, id string) (*flow.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("FindFlowByID"); err != nil {
		return nil, err
	}
	f, ok := s.flows[id]
	if !ok {
		return nil, flow.Errorf(flow.CodeFlowNotFound, "no flow %s", id)
	}
	cp := *f
	return &cp, nil
}

func (s *fakeStore) FindFlowByChallengeID(_ context.Context, challengeID string) (*flow.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("FindFlowByChallengeID"); err != nil {
		return nil, err
	}
	for _, f := range s.flows {
		if f.ChallengeID == challengeID {
			cp := *f
			return &cp, nil
		}
	}
	return nil, flow.Errorf(flow.CodeFlowNotFound, "no flow for challenge %s", challengeID)
}

func (s *fakeStore) FindFlowByIdempotencyKey(_ context.Context, customerID, key string) (*flow.Flow, store.FlowMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("FindFlowByIdempotencyKey"); err != nil {
		return nil, store.FlowMeta{}, err
	}
	for id, m := range s.meta {
		if m.IdempotencyKey == key && s.flows[id].CustomerID == customerID {
			cp := *s.flows[id]
			return &cp, m, nil
		}
	}
	return nil, store.FlowMeta{}, flow.Errorf(flow.CodeFlowNotFound, "no flow for key")
}

func (s *fakeStore) FindFlows(_ context.Context, f store.FlowFilter) ([]*flow.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("FindFlows"); err != nil {
		return nil, err
	}
	var out []*flow.Flow
	for _, fl := range s.flows {
		if fl.CustomerID == f.CustomerID && (len(f.Statuses) == 0 || slices.Contains(f.Statuses, fl.Status)) {
			cp := *fl
			out = append(out, &cp)
		}
	}
	slices.SortFunc(out, func(a, b *flow.Flow) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func (s *fakeStore) FindActiveFlow(_ context.Context, customerID string) (*flow.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("FindActiveFlow"); err != nil {
		return nil, err
	}
	for _, f := range s.flows {
		if f.CustomerID == customerID && f.Status.Active() {
			cp := *f
			return &cp, nil
		}
	}
	return nil, flow.Errorf(flow.CodeFlowNotFound, "no active flow")
}

func (s *fakeStore) RecordWebhook(_ context.Context, e *store.InboxEntry) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("RecordWebhook"); err != nil {
		return false, err
	}
	if _, ok := s.inbox[e.IdempotencyKey]; ok {
		return true, nil
	}
	cp := *e
	s.inbox[e.IdempotencyKey] = &cp
	return false, nil
}

func (s *fakeStore) SetWebhookOutcome(_ context.Context, key, outcome string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("SetWebhookOutcome"); err != nil {
		return err
	}
	if e, ok := s.inbox[key]; ok {
		e.Outcome, e.ProcessedAt = outcome, &at
	}
	return nil
}

func (s *fakeStore) outcome(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.inbox[key]; ok {
		return e.Outcome
	}
	return ""
}

func (s *fakeStore) RecordAudit(_ context.Context, a *store.AuditEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("RecordAudit"); err != nil {
		return err
	}
	if s.auditErr != nil {
		return s.auditErr
	}
	s.audits = append(s.audits, *a)
	return nil
}

func (s *fakeStore) lastAudit() store.AuditEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.audits) == 0 {
		return store.AuditEntry{}
	}
	return s.audits[len(s.audits)-1]
}

func (s *fakeStore) Ping(context.Context) error { return s.pingErr }

// ---- Planbok ----

type fakePlanbok struct {
	mu        sync.Mutex
	customers map[string]*planbok.Customer
	err       error             // returned by every call when set
	byKey     map[string]string // idempotency key → customer id
	creates   []planbok.CreateCustomerParams
	gets      int
	panics    bool // GetCustomer panics (recovery tests)
}

func newFakePlanbok() *fakePlanbok {
	return &fakePlanbok{customers: map[string]*planbok.Customer{}, byKey: map[string]string{}}
}

func (p *fakePlanbok) CreateCustomer(_ context.Context, in planbok.CreateCustomerParams) (*planbok.Customer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.creates = append(p.creates, in)
	if p.err != nil {
		return nil, p.err
	}
	if id, ok := p.byKey[in.IdempotencyKey]; ok && in.IdempotencyKey != "" { // same key, same customer
		cp := *p.customers[id]
		return &cp, nil
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &planbok.Customer{ID: "66aa00000000000000000" + string(rune('a'+len(p.customers))) + "00",
		Name: in.Name, RefID: in.RefID, CustodyType: "customer", Status: planbok.CustomerActive,
		CreatedAt: now, UpdatedAt: now}
	p.customers[c.ID] = c
	p.byKey[in.IdempotencyKey] = c.ID
	cp := *c
	return &cp, nil
}

func (p *fakePlanbok) GetCustomer(_ context.Context, id string) (*planbok.Customer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gets++
	if p.panics {
		panic("fakePlanbok: boom with secret detail")
	}
	if p.err != nil {
		return nil, p.err
	}
	c, ok := p.customers[id]
	if !ok {
		return nil, &planbok.Error{Op: "get customer", StatusCode: http.StatusNotFound, Message: "Customer not found"}
	}
	cp := *c
	return &cp, nil
}

func (p *fakePlanbok) getCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets
}

// ---- Temporal ----

type updateCall struct {
	start   client.StartWorkflowOptions
	wfType  any
	wfArgs  []any
	options client.UpdateWorkflowOptions
}

type signalCall struct {
	workflowID, signal string
	arg                any
	start              *client.StartWorkflowOptions
	wfType             any
	wfArgs             []any
}

type fakeTemporal struct {
	mu sync.Mutex
	// start answers the start-flow update.
	start     func(req flow.StartRequest) (flow.StartResult, error)
	updateErr error // from UpdateWithStartWorkflow itself
	// cancel answers the cancel update.
	cancel    func(id string) (*flow.Flow, error)
	queries   map[string]*flow.Flow
	queryErr  error
	signalErr error
	healthErr error

	updates  []updateCall
	cancels  []client.UpdateWorkflowOptions
	signals  []signalCall
	queryN   int
	blockCtx bool // UpdateWithStart waits for ctx to end
}

func newFakeTemporal() *fakeTemporal { return &fakeTemporal{queries: map[string]*flow.Flow{}} }

type fakeStartOp struct {
	options client.StartWorkflowOptions
	wfType  any
	args    []any
}

func (o *fakeStartOp) Get(context.Context) (client.WorkflowRun, error) { return nil, nil }

func (t *fakeTemporal) NewWithStartWorkflowOperation(options client.StartWorkflowOptions, workflow any, args ...any) client.WithStartWorkflowOperation {
	return &fakeStartOp{options: options, wfType: workflow, args: args}
}

func (t *fakeTemporal) UpdateWithStartWorkflow(ctx context.Context, o client.UpdateWithStartWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	t.mu.Lock()
	op := o.StartWorkflowOperation.(*fakeStartOp)
	t.updates = append(t.updates, updateCall{start: op.options, wfType: op.wfType, wfArgs: op.args, options: o.UpdateOptions})
	start, updateErr, block := t.start, t.updateErr, t.blockCtx
	t.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if updateErr != nil {
		return nil, updateErr
	}
	req := o.UpdateOptions.Args[0].(flow.StartRequest)
	if start == nil {
		return nil, errors.New("fakeTemporal: no start answer")
	}
	res, err := start(req)
	return &fakeHandle{id: o.UpdateOptions.WorkflowID, value: res, err: err}, nil
}

func (t *fakeTemporal) UpdateWorkflow(ctx context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	t.mu.Lock()
	t.cancels = append(t.cancels, o)
	cancel := t.cancel
	t.mu.Unlock()
	if cancel == nil {
		return nil, errors.New("fakeTemporal: no cancel answer")
	}
	f, err := cancel(o.WorkflowID)
	if err != nil {
		return nil, err
	}
	return &fakeHandle{id: o.WorkflowID, value: f}, nil
}

func (t *fakeTemporal) QueryWorkflow(_ context.Context, workflowID, _, queryType string, _ ...any) (converter.EncodedValue, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.queryN++
	if queryType != flow.QueryFlow {
		return nil, errors.New("unknown query")
	}
	if t.queryErr != nil {
		return nil, t.queryErr
	}
	f, ok := t.queries[workflowID]
	if !ok {
		return nil, errors.New("workflow not found")
	}
	return fakeValue{f}, nil
}

func (t *fakeTemporal) SignalWorkflow(_ context.Context, workflowID, _, signalName string, arg any) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.signals = append(t.signals, signalCall{workflowID: workflowID, signal: signalName, arg: arg})
	return t.signalErr
}

func (t *fakeTemporal) SignalWithStartWorkflow(_ context.Context, workflowID, signalName string, signalArg any, options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.signals = append(t.signals, signalCall{workflowID: workflowID, signal: signalName, arg: signalArg,
		start: &options, wfType: workflow, wfArgs: workflowArgs})
	return nil, t.signalErr
}

func (t *fakeTemporal) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	return &client.CheckHealthResponse{}, t.healthErr
}

func (t *fakeTemporal) signalCalls() []signalCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.signals)
}

func (t *fakeTemporal) updateCalls() []updateCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.updates)
}

// fakeHandle returns value through a JSON round trip, as a data converter
// would.
type fakeHandle struct {
	id    string
	value any
	err   error
}

func (h *fakeHandle) WorkflowID() string { return h.id }
func (h *fakeHandle) RunID() string      { return "run" }
func (h *fakeHandle) UpdateID() string   { return "update" }
func (h *fakeHandle) Get(_ context.Context, ptr any) error {
	if h.err != nil {
		return h.err
	}
	return roundTrip(h.value, ptr)
}

type fakeValue struct{ v any }

func (v fakeValue) HasValue() bool    { return v.v != nil }
func (v fakeValue) Get(ptr any) error { return roundTrip(v.v, ptr) }

func roundTrip(v, ptr any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}

// ---- harness ----

const (
	testKey1   = "test-key-one-0123456789abcdef"
	testKey2   = "test-key-two-fedcba9876543210"
	testSecret = "whsec-test-secret-value-42"
	customerA  = "66aa0000000000000000000a"
	customerB  = "66aa0000000000000000000b"
)

var testNow = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

type env struct {
	t    testing.TB
	srv  *Server
	h    http.Handler
	st   *fakeStore
	pb   *fakePlanbok
	tc   *fakeTemporal
	logs *bytes.Buffer
	now  time.Time
}

func newEnv(t testing.TB, mod ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, st: newFakeStore(), pb: newFakePlanbok(), tc: newFakeTemporal(), logs: &bytes.Buffer{}, now: testNow}
	cfg := Config{
		APIKeys:              []string{testKey1, testKey2},
		WebhookSecrets:       [][]byte{[]byte("old-secret"), []byte(testSecret)},
		AllowedRedirectHosts: []string{"app.example.com", "*.example.org"},
		TaskQueue:            "tq",
		Logger:               slog.New(slog.NewJSONHandler(&syncWriter{buf: e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:                func() time.Time { return e.now },
		// Short, so a customer.created for a customer never stored costs
		// a test little time.
		CustomerCreatedGrace: 100 * time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	srv, err := New(cfg, e.st, e.pb, e.tc)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv, e.h = srv, srv.Handler()
	e.pb.customers[customerA] = &planbok.Customer{ID: customerA, Name: "Ada", RefID: "user-1",
		Status: planbok.CustomerActive, HasPIN: true, HasRecovery: true}
	e.tc.start = e.defaultStart
	return e
}

type syncWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// defaultStart answers a start-flow update like the customer workflow:
// a new awaiting_user flow.
func (e *env) defaultStart(req flow.StartRequest) (flow.StartResult, error) {
	f := testFlow(req.CustomerID, req.Kind, flow.StatusAwaitingUser)
	f.RedirectURL, f.Blockchains = req.RedirectURL, req.Blockchains
	return flow.StartResult{Flow: f, Created: true}, nil
}

var flowSeq int

func testFlow(customerID string, kind flow.Kind, status flow.Status) *flow.Flow {
	flowSeq++
	id := flow.NewFlowID(bytes.NewReader(bytes.Repeat([]byte{byte(flowSeq)}, 15)))
	exp := testNow.Add(15 * time.Minute)
	f := &flow.Flow{ID: id, CustomerID: customerID, Kind: kind, Status: status,
		ChallengeID: "ch_" + id, GatewayURL: "https://gateway.planbok.io/c/" + id,
		RedirectURL: "https://app.example.com/back", ExpiresAt: &exp,
		CreatedAt: testNow.Add(time.Duration(flowSeq) * time.Second), UpdatedAt: testNow}
	if status.Terminal() {
		done := testNow.Add(time.Minute)
		f.CompletedAt = &done
	}
	if status == flow.StatusFailed {
		f.Error = &flow.Error{Code: flow.CodeChallengeFailed, Message: "The challenge failed."}
	}
	return f
}

// do sends a request through the handler and checks the response against
// the OpenAPI document.
func (e *env) do(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	validateResponse(e.t, req, rec)
	return rec
}

// api sends an authenticated /v1 request.
func (e *env) api(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(method, path, body, append([]string{"Authorization", "Bearer " + testKey1}, hdr...)...)
}

// webhook sends a webhook signed with secret at the env's clock.
func (e *env) webhook(body string, secret string, id string) *httptest.ResponseRecorder {
	e.t.Helper()
	h := http.Header{}
	planbok.SetWebhookHeaders(h, []byte(secret), id, "event", e.now, []byte(body))
	hdr := []string{}
	for k := range h {
		hdr = append(hdr, k, h.Get(k))
	}
	return e.do(http.MethodPost, "/v1/webhooks/planbok", body, hdr...)
}

type errResp struct {
	Error struct {
		Code         flow.Code `json:"code"`
		Message      string    `json:"message"`
		ActiveFlowID string    `json:"activeFlowId"`
		FlowID       string    `json:"flowId"`
	} `json:"error"`
}

func decode[T any](t testing.TB, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body.String(), err)
	}
	return v
}

// wantError checks status and code of an error response.
func wantError(t testing.TB, rec *httptest.ResponseRecorder, status int, code flow.Code) errResp {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status: got %d, want %d (body %s)", rec.Code, status, rec.Body.String())
	}
	e := decode[errResp](t, rec)
	if e.Error.Code != code {
		t.Fatalf("code: got %q, want %q (body %s)", e.Error.Code, code, rec.Body.String())
	}
	if e.Error.Message == "" {
		t.Fatalf("empty message: %s", rec.Body.String())
	}
	return e
}

func (s *fakeStore) FindWebhook(_ context.Context, key string) (*store.InboxEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("FindWebhook"); err != nil {
		return nil, err
	}
	e, ok := s.inbox[key]
	if !ok {
		return nil, flow.Errorf(flow.CodeNotFound, "no webhook %s", key)
	}
	cp := *e
	return &cp, nil
}

func (s *fakeStore) ChallengeSignalled(_ context.Context, challengeID, status, exceptKey string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.call("ChallengeSignalled"); err != nil {
		return false, err
	}
	if s.signalledErr != nil {
		return false, s.signalledErr
	}
	for key, e := range s.inbox {
		if key != exceptKey && challengeID != "" && e.ChallengeID == challengeID &&
			e.ChallengeStatus == status && e.Outcome == OutcomeSignalled {
			return true, nil
		}
	}
	return false, nil
}
