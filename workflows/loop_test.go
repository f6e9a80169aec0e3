package workflows

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

const testCustomer = "6650c0ffee0000000000cafe"

// notified collects the NotifyApp workflows a test's workflows start.
type notified struct {
	mu     sync.Mutex
	ids    []string
	events []flow.DeliverEventInput
}

func (n *notified) listen(t *testing.T, env *testsuite.TestWorkflowEnvironment) {
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, args converter.EncodedValues) {
		if info.WorkflowType.Name != flow.WorkflowNotifyApp {
			return
		}
		var in flow.DeliverEventInput
		if err := args.Get(&in); err != nil {
			t.Errorf("decode NotifyApp input: %v", err)
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		n.ids = append(n.ids, info.WorkflowExecution.ID)
		n.events = append(n.events, in)
	})
}

func (n *notified) types() []flow.EventType {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []flow.EventType
	for _, e := range n.events {
		out = append(out, e.Event.Type)
	}
	return out
}

func (n *notified) byType(typ flow.EventType) (flow.DeliverEventInput, string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, e := range n.events {
		if e.Event.Type == typ {
			return e, n.ids[i], true
		}
	}
	return flow.DeliverEventInput{}, "", false
}

// flowTest runs one flow workflow of kind in a test environment.
type flowTest struct {
	t      *testing.T
	env    *testsuite.TestWorkflowEnvironment
	fakes  *fakeActivities
	parent *parentSignals
	events *notified
	in     flow.FlowInput
}

func newFlowTest(t *testing.T, kind flow.Kind, logger ...log.Logger) *flowTest {
	env, f := newEnv(t, logger...)
	ft := &flowTest{t: t, env: env, fakes: f, events: &notified{}}
	ft.parent = &parentSignals{records: func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.records)
	}}
	ft.in = flow.FlowInput{
		FlowID:             "flow_test" + strings.ReplaceAll(string(kind), "_", ""),
		CustomerID:         testCustomer,
		Kind:               kind,
		RedirectURL:        "https://app.example/back",
		IdempotencyKey:     "key-1",
		RequestHash:        "hash-1",
		Actor:              "apikey-1",
		CreatedAt:          t0,
		CustomerWorkflowID: flow.CustomerWorkflowID(testCustomer),
	}
	if kind == flow.KindCreateWallets {
		ft.in.Blockchains = []string{"ETH-SEPOLIA", "SOL-DEVNET"}
	}
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: ft.in.FlowID})
	ft.parent.mock(env, ft.in.CustomerWorkflowID)
	ft.events.listen(t, env)
	return ft
}

func (ft *flowTest) challengeID() string { return challengeIDFor(ft.in.FlowID) }

// at runs fn at offset d of virtual time.
func (ft *flowTest) at(d time.Duration, fn func()) { ft.env.RegisterDelayedCallback(fn, d) }

// signal sends a challenge event at offset d.
func (ft *flowTest) signal(d time.Duration, challengeID, webhookID string) {
	ft.at(d, func() {
		ft.env.SignalWorkflow(flow.SignalChallengeEvent, flow.ChallengeEvent{
			ChallengeID: challengeID, Event: "challenge.completed", WebhookID: webhookID, Received: at(d),
		})
	})
}

// statusAt makes Planbok report status from offset d on.
func (ft *flowTest) statusAt(d time.Duration, status string) {
	ft.at(d, func() { ft.fakes.setStatus(status) })
}

// run runs the flow to its end and returns its result.
func (ft *flowTest) run() flow.Flow {
	ft.t.Helper()
	ft.env.ExecuteWorkflow(ft.in.Kind.WorkflowType(), ft.in)
	if !ft.env.IsWorkflowCompleted() {
		ft.t.Fatalf("workflow completed: got false, want true")
	}
	if err := ft.env.GetWorkflowError(); err != nil {
		ft.t.Fatalf("workflow error: got %v, want nil", err)
	}
	var got flow.Flow
	if err := ft.env.GetWorkflowResult(&got); err != nil {
		ft.t.Fatalf("workflow result: %v", err)
	}
	ft.checkForward()
	return got
}

// checkForward checks that recorded statuses only moved forward.
func (ft *flowTest) checkForward() {
	ft.t.Helper()
	st := ft.fakes.recordedStatuses()
	for i := 1; i < len(st); i++ {
		if !st[i-1].CanMoveTo(st[i]) {
			ft.t.Errorf("recorded statuses: got %v, want each a forward move", st)
		}
	}
}

func wantStatus(t *testing.T, got flow.Flow, status flow.Status, code flow.Code) {
	t.Helper()
	if got.Status != status {
		t.Errorf("status: got %q, want %q", got.Status, status)
	}
	var gotCode flow.Code
	if got.Error != nil {
		gotCode = got.Error.Code
	}
	if gotCode != code {
		t.Errorf("error code: got %q, want %q (error %v)", gotCode, code, got.Error)
	}
}

func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func secs(ss ...int) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = time.Duration(s) * time.Second
	}
	return out
}

func TestFlow_VerifiedByWebhook(t *testing.T) {
	for _, kind := range flow.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ft := newFlowTest(t, kind)
			ft.statusAt(61*time.Second, "verified")
			ft.signal(61*time.Second, ft.challengeID(), "wh-1")
			got := ft.run()

			wantStatus(t, got, flow.StatusCompleted, "")
			wantEqual(t, "completedAt", got.CompletedAt, ptr(at(61*time.Second)))
			wantEqual(t, "challengeId", got.ChallengeID, ft.challengeID())
			wantEqual(t, "gatewayUrl", got.GatewayURL, "https://gateway.example/c/"+ft.challengeID())
			wantEqual(t, "expiresAt", got.ExpiresAt, ptr(at(15*time.Minute)))
			wantEqual(t, "blockchains", got.Blockchains, ft.in.Blockchains)
			wantEqual(t, "GetChallenge calls", ft.fakes.gets, secs(2, 6, 14, 30, 60, 61))
			wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusStarting, flow.StatusAwaitingUser, flow.StatusCompleted})
			for _, r := range ft.fakes.records {
				if r.IdempotencyKey != "key-1" || r.RequestHash != "hash-1" {
					t.Errorf("record key/hash: got %q/%q, want key-1/hash-1", r.IdempotencyKey, r.RequestHash)
				}
			}
			wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCompleted})
			// awaiting_user is signalled after it is recorded (the start
			// answers with a recorded flow); completed before (a reader
			// who sees it completed finds the customer's slot free).
			wantEqual(t, "rows recorded before each parent signal", ft.parent.recordedBefore, []int{2, 2})
			wantEqual(t, "syncs", ft.fakes.syncs, []flow.SyncCustomerInput{{CustomerID: testCustomer, Kind: kind, FlowID: ft.in.FlowID, At: at(61 * time.Second)}})
			wantEqual(t, "audits", ft.fakes.audits, []flow.AuditInput{{
				At: at(61 * time.Second), Actor: "apikey-1", Action: "flow." + string(kind),
				CustomerID: testCustomer, FlowID: ft.in.FlowID, Outcome: "completed",
			}})
			ev, id, ok := ft.events.byType(kind.EventType())
			if !ok {
				t.Fatalf("events: got %v, want %s", ft.events.types(), kind.EventType())
			}
			wantEqual(t, "events", ft.events.types(), []flow.EventType{kind.EventType()})
			wantEqual(t, "event id", ev.ID, ft.in.FlowID+"."+string(kind.EventType()))
			wantEqual(t, "notify workflow id", id, flow.NotifyWorkflowID(ev.ID))
			wantEqual(t, "event data", ev.Event.Data, flow.AppEventData{
				CustomerID: testCustomer, FlowID: ft.in.FlowID, Kind: kind, Status: flow.StatusCompleted,
				Security: flow.Security{HasPIN: true, HasRecovery: true, CanTransact: true},
			})
		})
	}
}

func TestFlow_VerifiedByPolling(t *testing.T) {
	for _, kind := range flow.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ft := newFlowTest(t, kind)
			ft.statusAt(61*time.Second, "verified")
			got := ft.run()

			wantStatus(t, got, flow.StatusCompleted, "")
			// Polls at 2, 6, 14, 30, 60, 90 s: the 90 s poll sees it.
			wantEqual(t, "GetChallenge calls", ft.fakes.gets, secs(2, 6, 14, 30, 60, 90))
			wantEqual(t, "completedAt", got.CompletedAt, ptr(at(90*time.Second)))
			wantEqual(t, "events", ft.events.types(), []flow.EventType{kind.EventType()})
		})
	}
}

func TestFlow_PollScheduleCapsAt30s(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	ft.statusAt(5*time.Minute, "verified")
	ft.run()
	want := secs(2, 6, 14, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300)
	wantEqual(t, "GetChallenge calls", ft.fakes.gets, want)
}

func TestFlow_Failed(t *testing.T) {
	for _, kind := range flow.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ft := newFlowTest(t, kind)
			ft.statusAt(20*time.Second, "failed")
			ft.signal(20*time.Second, ft.challengeID(), "wh-1")
			got := ft.run()

			wantStatus(t, got, flow.StatusFailed, flow.CodeChallengeFailed)
			// completedAt is when the flow ended, whatever the end, as
			// the store keeps it.
			wantEqual(t, "completedAt", got.CompletedAt, ptr(at(20*time.Second)))
			wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusStarting, flow.StatusAwaitingUser, flow.StatusFailed})
			wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusFailed})
			// A failed flow syncs without a kind: nothing was set up.
			wantEqual(t, "syncs", ft.fakes.syncs, []flow.SyncCustomerInput{{CustomerID: testCustomer, FlowID: ft.in.FlowID, At: at(20 * time.Second)}})
			wantEqual(t, "audit outcome", ft.fakes.audits[0].Outcome, "failed")
			wantEqual(t, "audit detail", ft.fakes.audits[0].Detail, "challenge_failed")
			wantEqual(t, "events", ft.events.types(), []flow.EventType{flow.EventFlowFailed})
		})
	}
}

func TestFlow_FailedLocksOut(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	locked := flow.Security{HasPIN: true, HasRecovery: true, LockedOut: true}
	ft.fakes.syncResult = func(int) flow.SyncCustomerResult {
		return flow.SyncCustomerResult{Security: locked, LockedOutNow: true}
	}
	ft.statusAt(20*time.Second, "failed")
	ft.signal(20*time.Second, ft.challengeID(), "wh-1")
	got := ft.run()

	wantStatus(t, got, flow.StatusFailed, flow.CodeChallengeFailed)
	wantEqual(t, "events", ft.events.types(), []flow.EventType{flow.EventFlowFailed, flow.EventLockedOut})
	ev, id, _ := ft.events.byType(flow.EventLockedOut)
	wantEqual(t, "lockout security", ev.Event.Data.Security, locked)
	wantEqual(t, "lockout workflow id", id, "notify-"+ft.in.FlowID+".customer.locked_out")
}

func TestFlow_Expired(t *testing.T) {
	for _, kind := range flow.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ft := newFlowTest(t, kind)
			got := ft.run()

			wantStatus(t, got, flow.StatusExpired, flow.CodeChallengeExpired)
			wantEqual(t, "updatedAt", got.UpdatedAt, at(15*time.Minute))
			wantEqual(t, "completedAt", got.CompletedAt, ptr(at(15*time.Minute)))
			gets := ft.fakes.gets
			if n := len(gets); n < 2 || gets[n-1] != 15*time.Minute {
				t.Errorf("last GetChallenge: got %v, want one at 15m", gets)
			}
			wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusStarting, flow.StatusAwaitingUser, flow.StatusExpired})
			wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusExpired})
			wantEqual(t, "events", ft.events.types(), []flow.EventType{flow.EventFlowExpired})
		})
	}
}

func TestFlow_CompletedAtExpiryCheck(t *testing.T) {
	ft := newFlowTest(t, flow.KindResetPIN)
	// Expiry at 15m10s falls between the polls at 15m00s and 15m30s.
	ft.fakes.challengeTTL = 15*time.Minute + 10*time.Second
	ft.statusAt(15*time.Minute+5*time.Second, "verified")
	got := ft.run()

	wantStatus(t, got, flow.StatusCompleted, "")
	wantEqual(t, "completedAt", got.CompletedAt, ptr(at(15*time.Minute+10*time.Second)))
}

func TestFlow_ChallengeGoneExpires(t *testing.T) {
	ft := newFlowTest(t, flow.KindRecovery)
	ft.statusAt(40*time.Second, flow.ChallengeGone)
	got := ft.run()

	wantStatus(t, got, flow.StatusExpired, flow.CodeChallengeExpired)
	wantEqual(t, "updatedAt", got.UpdatedAt, at(60*time.Second))
}

// cancel sends the cancel update at offset d and stores its outcome.
type cancelOutcome struct {
	rejected error
	result   flow.Flow
	err      error
	done     bool
}

func (ft *flowTest) cancel(d time.Duration, id string) *cancelOutcome {
	out := &cancelOutcome{}
	ft.at(d, func() {
		ft.env.UpdateWorkflow(flow.UpdateCancel, id, &testsuite.TestUpdateCallback{
			OnReject: func(err error) { out.rejected = err; out.done = true },
			OnComplete: func(v any, err error) {
				out.done = true
				out.err = err
				if err == nil {
					decode(ft.t, v, &out.result)
				}
			},
		})
	})
	return out
}

func TestFlow_Cancelled(t *testing.T) {
	for _, kind := range flow.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ft := newFlowTest(t, kind)
			var queried flow.Flow
			ft.at(5*time.Second, func() {
				v, err := ft.env.QueryWorkflow(flow.QueryFlow)
				if err != nil {
					t.Errorf("query: %v", err)
					return
				}
				decode(t, v, &queried)
			})
			out := ft.cancel(10*time.Second, "cancel-1")
			got := ft.run()

			wantStatus(t, queried, flow.StatusAwaitingUser, "")
			wantEqual(t, "queried challengeId", queried.ChallengeID, ft.challengeID())
			wantStatus(t, got, flow.StatusCancelled, flow.CodeCancelled)
			wantEqual(t, "updatedAt", got.UpdatedAt, at(10*time.Second))
			if !out.done || out.rejected != nil || out.err != nil {
				t.Fatalf("cancel update: got done=%v rejected=%v err=%v, want a result", out.done, out.rejected, out.err)
			}
			wantStatus(t, out.result, flow.StatusCancelled, flow.CodeCancelled)
			wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusStarting, flow.StatusAwaitingUser, flow.StatusCancelled})
			wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCancelled})
			wantEqual(t, "events", ft.events.types(), []flow.EventType{flow.EventFlowCancelled})
		})
	}
}

func TestFlow_CancelWhileEndingRefused(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	// The sync after verification fails three times (1 s, 2 s, 4 s of
	// backoff), so the flow is ending from 61 s to 68 s.
	ft.fakes.syncErr = func(call int) error {
		if call <= 3 {
			return retryable("Planbok answered 503.")
		}
		return nil
	}
	ft.statusAt(61*time.Second, "verified")
	ft.signal(61*time.Second, ft.challengeID(), "wh-1")
	out := ft.cancel(63*time.Second, "cancel-1")
	got := ft.run()

	wantStatus(t, got, flow.StatusCompleted, "")
	wantEqual(t, "completedAt", got.CompletedAt, ptr(at(61*time.Second)))
	wantEqual(t, "updatedAt", got.UpdatedAt, at(68*time.Second))
	var appErr *temporal.ApplicationError
	if !errors.As(out.rejected, &appErr) || appErr.Type() != string(flow.CodeFlowFinished) {
		t.Fatalf("cancel: got rejected=%v err=%v, want rejected with type flow_finished", out.rejected, out.err)
	}
	if !strings.Contains(out.rejected.Error(), string(flow.CodeFlowFinished)) {
		t.Errorf("cancel rejection message: got %q, want it to contain flow_finished", out.rejected.Error())
	}
}

func TestFlow_SyncGivesUpFlowStillEnds(t *testing.T) {
	ft := newFlowTest(t, flow.KindExportPrivateKeys)
	ft.fakes.syncErr = func(int) error { return retryable("Planbok answered 503.") }
	ft.statusAt(61*time.Second, "verified")
	ft.signal(61*time.Second, ft.challengeID(), "wh-1")
	got := ft.run()

	// The test environment caps unlimited retries at 10 attempts; a real
	// server retries for syncTimeout.
	wantStatus(t, got, flow.StatusCompleted, "")
	if ft.fakes.syncCalls < 2 {
		t.Errorf("SyncCustomer calls: got %d, want retries", ft.fakes.syncCalls)
	}
	wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusStarting, flow.StatusAwaitingUser, flow.StatusCompleted})
	wantEqual(t, "events", ft.events.types(), []flow.EventType{flow.EventPrivateKeysExported})
}

func TestFlow_IgnoresOtherAndDuplicateSignals(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	ft.signal(20*time.Second, "ch-someone-else", "wh-0")
	ft.signal(21*time.Second, ft.challengeID(), "wh-1")
	ft.signal(22*time.Second, ft.challengeID(), "wh-1")
	ft.signal(23*time.Second, "ch-someone-else", "wh-2")
	ft.statusAt(40*time.Second, "verified")
	ft.signal(40*time.Second, ft.challengeID(), "wh-3")
	ft.signal(40*time.Second, ft.challengeID(), "wh-3")
	got := ft.run()

	wantStatus(t, got, flow.StatusCompleted, "")
	wantEqual(t, "GetChallenge calls", ft.fakes.gets, secs(2, 6, 14, 21, 30, 40))
	wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusStarting, flow.StatusAwaitingUser, flow.StatusCompleted})
	wantEqual(t, "events", ft.events.types(), []flow.EventType{flow.EventPINUpdated})
}

func TestFlow_GetChallengeErrorsDontEndFlow(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	ft.fakes.getErr = func(now time.Time) error {
		if now.Before(at(65 * time.Second)) {
			return retryable("Planbok answered 502.")
		}
		return nil
	}
	ft.statusAt(30*time.Second, "verified")
	ft.signal(30*time.Second, ft.challengeID(), "wh-1")
	got := ft.run()

	wantStatus(t, got, flow.StatusCompleted, "")
	wantEqual(t, "completedAt", got.CompletedAt, ptr(at(90*time.Second)))
	// The read at 60 s fails three times (60, 60.5, 61.5 s).
	if n := len(ft.fakes.gets); n < 10 {
		t.Errorf("GetChallenge calls: got %d (%v), want retries of each failed read", n, ft.fakes.gets)
	}
}

func TestFlow_CreateChallengeRetriedSendsSameKey(t *testing.T) {
	ft := newFlowTest(t, flow.KindCreateWallets)
	ft.fakes.createErr = func(call int) error {
		if call <= 2 {
			return retryable("Planbok answered 429.")
		}
		return nil
	}
	ft.statusAt(time.Minute, "verified")
	got := ft.run()

	wantStatus(t, got, flow.StatusCompleted, "")
	if n := len(ft.fakes.creates); n != 3 {
		t.Fatalf("CreateChallenge calls: got %d, want 3", n)
	}
	want := challengeKey(ft.in.FlowID)
	for i, c := range ft.fakes.creates {
		if c.IdempotencyKey != want {
			t.Errorf("call %d idempotency key: got %q, want %q", i+1, c.IdempotencyKey, want)
		}
		wantEqual(t, "blockchains", c.Blockchains, ft.in.Blockchains)
		wantEqual(t, "redirectUrl", c.RedirectURL, ft.in.RedirectURL)
	}
}

func TestChallengeKey_StableUUIDShape(t *testing.T) {
	a, b := challengeKey("flow_a"), challengeKey("flow_a")
	if a != b {
		t.Errorf("key: got %q then %q, want the same", a, b)
	}
	if c := challengeKey("flow_b"); c == a {
		t.Errorf("keys of two flows: got %q twice, want different", a)
	}
	if len(a) != 36 || a[14] != '4' || !strings.ContainsRune("89ab", rune(a[19])) {
		t.Errorf("key shape: got %q, want a UUID v4", a)
	}
}

func TestFlow_PlanbokUnavailable(t *testing.T) {
	ft := newFlowTest(t, flow.KindInitialize)
	ft.fakes.createErr = func(int) error { return retryable("Planbok answered 503.") }
	got := ft.run()

	wantStatus(t, got, flow.StatusFailed, flow.CodePlanbokUnavailable)
	wantEqual(t, "CreateChallenge calls", len(ft.fakes.creates), 5)
	// Backoff 0.5 + 1 + 2 + 4 s.
	wantEqual(t, "updatedAt", got.UpdatedAt, at(7500*time.Millisecond))
	wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusStarting, flow.StatusFailed})
	wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusFailed})
	wantEqual(t, "GetChallenge calls", len(ft.fakes.gets), 0)
	wantEqual(t, "events", ft.events.types(), []flow.EventType{flow.EventFlowFailed})
}

func TestFlow_PlanbokFinalError(t *testing.T) {
	for _, code := range []flow.Code{flow.CodeCustomerLockedOut, flow.CodePINRequired, flow.CodePlanbokRejected} {
		t.Run(string(code), func(t *testing.T) {
			ft := newFlowTest(t, flow.KindExportPrivateKeys)
			ft.fakes.createErr = func(int) error { return final(code, "Planbok refused: 4xx.") }
			got := ft.run()

			wantStatus(t, got, flow.StatusFailed, code)
			wantEqual(t, "message", got.Error.Message, "Planbok refused: 4xx.")
			wantEqual(t, "CreateChallenge calls", len(ft.fakes.creates), 1)
			wantEqual(t, "updatedAt", got.UpdatedAt, t0)
			wantEqual(t, "events", ft.events.types(), []flow.EventType{flow.EventFlowFailed})
		})
	}
}

func TestFlow_WrongKindIsABug(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	in := ft.in
	in.Kind = flow.KindResetPIN
	ft.env.ExecuteWorkflow(flow.WorkflowUpdatePIN, in)
	if err := ft.env.GetWorkflowError(); err == nil {
		t.Errorf("workflow error: got nil, want an error")
	}
}

func TestNextPoll_Schedule(t *testing.T) {
	var got []time.Duration
	for d := PollFirst; len(got) < 7; d = nextPoll(d) {
		got = append(got, d)
	}
	wantEqual(t, "schedule", got, secs(2, 4, 8, 16, 30, 30, 30))
}

func TestActivityError_Codes(t *testing.T) {
	tests := []struct {
		err  error
		want flow.Code
	}{
		{final(flow.CodeCustomerLockedOut, "locked"), flow.CodeCustomerLockedOut},
		{final(flow.CodePlanbokRejected, "bad"), flow.CodePlanbokRejected},
		{retryable("503"), flow.CodePlanbokUnavailable},
		{temporal.NewApplicationError("boom", "SomeGoError"), flow.CodePlanbokUnavailable},
		{errors.New("plain"), flow.CodePlanbokUnavailable},
		{final(flow.CodeInternal, "secret detail"), flow.CodeInternal},
	}
	for _, tt := range tests {
		got := activityError(tt.err)
		if got.Code != tt.want {
			t.Errorf("activityError(%v): got %q, want %q", tt.err, got.Code, tt.want)
		}
		if got.Code == flow.CodeInternal && strings.Contains(got.Message, "secret") {
			t.Errorf("internal message: got %q, want no detail", got.Message)
		}
	}
}

func TestFinalCodes_ExcludeRetryable(t *testing.T) {
	got := finalCodes()
	for _, c := range retryableCodes {
		if slices.Contains(got, string(c)) {
			t.Errorf("final codes: got %v, want without %q", got, c)
		}
	}
	wantEqual(t, "count", len(got), len(flow.Codes)-len(retryableCodes))
}

func ptr[T any](v T) *T { return &v }

func TestFlow_CancelWhileStarting(t *testing.T) {
	ft := newFlowTest(t, flow.KindResetPIN)
	ft.fakes.createErr = func(call int) error {
		if call == 1 {
			return retryable("Planbok answered 503.")
		}
		return nil
	}
	out := ft.cancel(100*time.Millisecond, "cancel-1")
	got := ft.run()

	wantStatus(t, got, flow.StatusCancelled, flow.CodeCancelled)
	wantStatus(t, out.result, flow.StatusCancelled, flow.CodeCancelled)
	wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusStarting, flow.StatusCancelled})
	wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusCancelled})
	wantEqual(t, "GetChallenge calls", len(ft.fakes.gets), 0)
}

func TestFlow_WorkflowCancelledByOperator(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	ft.at(10*time.Second, func() { ft.env.CancelWorkflow() })
	got := ft.run()

	wantStatus(t, got, flow.StatusCancelled, flow.CodeCancelled)
	wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusStarting, flow.StatusAwaitingUser, flow.StatusCancelled})
	wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCancelled})
	wantEqual(t, "events", ft.events.types(), []flow.EventType{flow.EventFlowCancelled})
}

// A webhook that arrives while the flow is ending is taken, not left
// unhandled (which the SDK warns about and which loses it silently).
func TestFlow_LateSignalIsTaken(t *testing.T) {
	logs := &syncBuffer{}
	ft := newFlowTest(t, flow.KindUpdatePIN, log.NewStructuredLogger(slog.New(slog.NewTextHandler(logs, nil))))
	ft.statusAt(30*time.Second, "verified")
	ft.signal(30*time.Second, ft.challengeID(), "wh-1")
	ft.fakes.onSync = func(int) {
		// SyncCustomer runs as the flow ends: a duplicate webhook lands now.
		ft.env.SignalWorkflow(flow.SignalChallengeEvent, flow.ChallengeEvent{
			ChallengeID: ft.challengeID(), Event: "customer.pin_updated", WebhookID: "wh-2", Received: at(30 * time.Second),
		})
	}
	got := ft.run()

	wantStatus(t, got, flow.StatusCompleted, "")
	if strings.Contains(logs.String(), "unhandled signals") {
		t.Fatalf("the flow ended with a signal unhandled:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the SDK's logging goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
