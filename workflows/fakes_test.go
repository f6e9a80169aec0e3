package workflows

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

// t0 is the virtual start time of every test workflow. It is the real
// time the tests start: the test environment runs local activities under a
// context whose deadline is virtual time, checked against the real clock,
// so a virtual clock behind the real one fails every retried local activity.
var t0 = time.Now().UTC().Truncate(time.Second)

// fakeActivities are hand-written fakes of the registered activities. Tests
// script them through the exported-looking fields (under mu) and read what
// the workflows sent.
type fakeActivities struct {
	now func() time.Time

	mu sync.Mutex
	// script
	challengeStatus string                    // GetChallenge's answer ("" = pending)
	challengeTTL    time.Duration             // 0 = 15 minutes
	createErr       func(call int) error      // CreateChallenge's error on call n (1-based)
	getErr          func(now time.Time) error // GetChallenge's error at a time
	syncErr         func(call int) error      // SyncCustomer's error on call n
	syncResult      func(call int) flow.SyncCustomerResult
	onSync          func(call int) // runs inside SyncCustomer, e.g. to signal meanwhile
	preflight       func(flow.PreflightInput) (flow.PreflightResult, error)
	deliverErr      func(call int) error // DeliverEvent's error on call n
	// observed
	creates    []flow.CreateChallengeInput
	gets       []time.Duration // offsets from t0 of GetChallenge calls
	polls      []time.Duration // offsets from t0 of AwaitChallenge attempts
	records    []flow.RecordFlowInput
	reads      []string // flow ids ReadFlow was asked for
	audits     []flow.AuditInput
	syncs      []flow.SyncCustomerInput
	syncCalls  int
	deliveries []flow.DeliverEventInput
	// deliveredLocally tells, per delivery, whether it was a local activity.
	deliveredLocally []bool
	preflights       []flow.PreflightInput
}

func newFakes(now func() time.Time) *fakeActivities { return &fakeActivities{now: now} }

// register registers every fake under its flow.Activity* name.
func (f *fakeActivities) register(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}) {
	for name, fn := range map[string]any{
		flow.ActivityPreflight:       f.Preflight,
		flow.ActivityCreateChallenge: f.CreateChallenge,
		flow.ActivityGetChallenge:    f.GetChallenge,
		flow.ActivityRecordFlow:      f.RecordFlow,
		flow.ActivityReadFlow:        f.ReadFlow,
		flow.ActivitySyncCustomer:    f.SyncCustomer,
		flow.ActivityRecordAudit:     f.RecordAudit,
		flow.ActivityDeliverEvent:    f.DeliverEvent,
		flow.ActivityAwaitChallenge:  f.AwaitChallenge,
	} {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name, DisableAlreadyRegisteredCheck: true})
	}
}

func (f *fakeActivities) setStatus(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.challengeStatus = s
}

func (f *fakeActivities) setPreflight(fn func(flow.PreflightInput) (flow.PreflightResult, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.preflight = fn
}

func (f *fakeActivities) Preflight(_ context.Context, in flow.PreflightInput) (flow.PreflightResult, error) {
	f.mu.Lock()
	f.preflights = append(f.preflights, in)
	fn := f.preflight
	f.mu.Unlock()
	if fn != nil {
		return fn(in)
	}
	s := flow.Standing{HasPIN: in.Kind != flow.KindInitialize, HasRecovery: in.Kind != flow.KindInitialize && in.Kind != flow.KindRecovery}
	return flow.PreflightResult{Standing: s, Refusal: flow.Check(in.Kind, s)}, nil
}

func (f *fakeActivities) CreateChallenge(_ context.Context, in flow.CreateChallengeInput) (flow.Challenge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, in)
	if f.createErr != nil {
		if err := f.createErr(len(f.creates)); err != nil {
			return flow.Challenge{}, err
		}
	}
	ttl := f.challengeTTL
	if ttl == 0 {
		ttl = 15 * time.Minute
	}
	return flow.Challenge{
		ID:         challengeIDFor(in.FlowID),
		GatewayURL: "https://gateway.example/c/" + challengeIDFor(in.FlowID),
		ExpiresAt:  f.now().Add(ttl),
	}, nil
}

func challengeIDFor(flowID string) string { return "ch-" + flowID }

func (f *fakeActivities) GetChallenge(_ context.Context, in flow.GetChallengeInput) (flow.ChallengeStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.gets = append(f.gets, now.Sub(t0))
	if f.getErr != nil {
		if err := f.getErr(now); err != nil {
			return flow.ChallengeStatus{}, err
		}
	}
	if f.challengeStatus == "" {
		return flow.ChallengeStatus{Status: "pending"}, nil
	}
	return flow.ChallengeStatus{Status: f.challengeStatus}, nil
}

// AwaitChallenge is the poll: like GetChallenge, but failing retryably
// while the challenge is pending (as activities.AwaitChallenge does).
func (f *fakeActivities) AwaitChallenge(_ context.Context, in flow.GetChallengeInput) (flow.ChallengeStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.polls = append(f.polls, now.Sub(t0))
	if f.getErr != nil {
		if err := f.getErr(now); err != nil {
			return flow.ChallengeStatus{}, err
		}
	}
	if f.challengeStatus == "" {
		return flow.ChallengeStatus{}, temporal.NewApplicationError("The challenge is still pending.", "challenge_pending")
	}
	return flow.ChallengeStatus{Status: f.challengeStatus}, nil
}

func (f *fakeActivities) RecordFlow(_ context.Context, in flow.RecordFlowInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records = append(f.records, in)
	return nil
}

// ReadFlow returns the last row RecordFlow wrote for the flow, if any.
func (f *fakeActivities) ReadFlow(_ context.Context, in flow.ReadFlowInput) (*flow.Flow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, in.FlowID)
	for i := len(f.records) - 1; i >= 0; i-- {
		if f.records[i].Flow.ID == in.FlowID {
			row := f.records[i].Flow
			return &row, nil
		}
	}
	return nil, nil
}

func (f *fakeActivities) SyncCustomer(_ context.Context, in flow.SyncCustomerInput) (flow.SyncCustomerResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncCalls++
	if f.onSync != nil {
		f.onSync(f.syncCalls)
	}
	if f.syncErr != nil {
		if err := f.syncErr(f.syncCalls); err != nil {
			return flow.SyncCustomerResult{}, err
		}
	}
	f.syncs = append(f.syncs, in)
	if f.syncResult != nil {
		return f.syncResult(len(f.syncs)), nil
	}
	return flow.SyncCustomerResult{Security: flow.Security{HasPIN: true, HasRecovery: true, CanTransact: true}}, nil
}

func (f *fakeActivities) RecordAudit(_ context.Context, in flow.AuditInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audits = append(f.audits, in)
	return nil
}

func (f *fakeActivities) DeliverEvent(ctx context.Context, in flow.DeliverEventInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deliveries = append(f.deliveries, in)
	f.deliveredLocally = append(f.deliveredLocally, activity.GetInfo(ctx).IsLocalActivity)
	if f.deliverErr != nil {
		return f.deliverErr(len(f.deliveries))
	}
	return nil
}

// recordedStatuses lists the statuses RecordFlow was called with.
func (f *fakeActivities) recordedStatuses() []flow.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []flow.Status
	for _, r := range f.records {
		out = append(out, r.Flow.Status)
	}
	return out
}

func (f *fakeActivities) deliveredTypes() []flow.EventType {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []flow.EventType
	for _, d := range f.deliveries {
		out = append(out, d.Event.Type)
	}
	slices.Sort(out)
	return out
}

func retryable(msg string) error {
	return temporal.NewApplicationError(msg, string(flow.CodePlanbokUnavailable))
}

func final(code flow.Code, msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, string(code), nil)
}

// registerWorkflows registers every workflow of the package under its name.
func registerWorkflows(r interface {
	RegisterWorkflowWithOptions(any, workflow.RegisterOptions)
}) {
	for _, reg := range All() {
		r.RegisterWorkflowWithOptions(reg.Fn, workflow.RegisterOptions{Name: reg.Name, DisableAlreadyRegisteredCheck: true})
	}
}

// newEnv returns a test environment with every workflow and the fakes
// registered, starting at t0.
// A logger, when given, receives the SDK's logs instead of quietLogger.
func newEnv(t *testing.T, logger ...log.Logger) (*testsuite.TestWorkflowEnvironment, *fakeActivities) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger())
	if len(logger) > 0 {
		s.SetLogger(logger[0])
	}
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.SetTestTimeout(30 * time.Second)
	f := newFakes(env.Now)
	f.register(env)
	registerWorkflows(env)
	return env, f
}

// parentSignals collects the flow-changed signals a flow sends to its
// customer workflow, when no customer workflow runs in the test.
type parentSignals struct {
	mu    sync.Mutex
	flows []flow.Flow
	// records, when set, counts the flow rows recorded so far; each
	// signal notes it in recordedBefore, which tells the order of the two.
	records        func() int
	recordedBefore []int
}

func (p *parentSignals) mock(env *testsuite.TestWorkflowEnvironment, customerWorkflowID string) {
	env.OnSignalExternalWorkflow(mock.Anything, customerWorkflowID, "", flow.SignalFlowChanged, mock.Anything).
		Return(func(_, _, _, _ string, arg any) error {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.flows = append(p.flows, arg.(flow.Flow))
			if p.records != nil {
				p.recordedBefore = append(p.recordedBefore, p.records())
			}
			return nil
		})
}

func (p *parentSignals) statuses() []flow.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []flow.Status
	for _, f := range p.flows {
		out = append(out, f.Status)
	}
	return out
}

// decode turns an update's or query's result into v.
func decode(t *testing.T, got any, v any) {
	t.Helper()
	switch g := got.(type) {
	case converter.EncodedValue:
		if err := g.Get(v); err != nil {
			t.Fatalf("decode: %v", err)
		}
	default:
		p, err := converter.GetDefaultDataConverter().ToPayload(got)
		if err != nil {
			t.Fatalf("encode %T: %v", got, err)
		}
		if err := converter.GetDefaultDataConverter().FromPayload(p, v); err != nil {
			t.Fatalf("decode %T: %v", got, err)
		}
	}
}

// quietLogger drops the SDK's logs: tests report through t.Errorf, and
// logging to t from workflow goroutines can outlive the test.
func quietLogger() log.Logger {
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func at(d time.Duration) time.Time { return t0.Add(d) }
