package workflows

import (
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

// A lean start creates the challenge and the awaiting_user row itself,
// before it answers; the flow workflow starts waiting and never writes a
// starting row.
func TestCustomerLean_StartCreatesChallengeAndRowBeforeAnswering(t *testing.T) {
	ct := newCustomerTest(t)
	out := &startOutcome{}
	recordsAtAnswer := -1
	ct.env.RegisterDelayedCallback(func() {
		ct.env.UpdateWorkflow(flow.UpdateStartFlow, "start-1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { out.done, out.rejected = true, err },
			OnComplete: func(v any, err error) {
				ct.fakes.mu.Lock()
				recordsAtAnswer = len(ct.fakes.records)
				ct.fakes.mu.Unlock()
				out.done, out.err = true, err
				if err == nil {
					decode(t, v, &out.res)
				}
			},
		}, request(flow.KindInitialize, "key-1", "hash-1"))
	}, 0)
	ct.verifyAt(time.Minute, out.flowID)
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	f := out.created(t)
	wantStatus(t, f, flow.StatusAwaitingUser, "")
	wantEqual(t, "challengeId", f.ChallengeID, challengeIDFor(f.ID))
	wantEqual(t, "rows written before the answer", recordsAtAnswer, 1)
	wantEqual(t, "rows", ct.fakes.recordedStatuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCompleted})
	if len(ct.fakes.creates) != 1 || ct.fakes.creates[0].FlowID != f.ID || ct.fakes.creates[0].IdempotencyKey != challengeKey(f.ID) {
		t.Errorf("creates: got %+v, want one for %s with its challenge key", ct.fakes.creates, f.ID)
	}
	if len(ct.fakes.audits) != 1 || ct.fakes.audits[0].DedupeKey != f.ID+".end" {
		t.Errorf("audits: got %+v, want one keyed %s.end (written once if its task is retried)", ct.fakes.audits, f.ID)
	}
	r := ct.fakes.records[0]
	if r.IdempotencyKey != "key-1" || r.RequestHash != "hash-1" || r.Flow.GatewayURL == "" || r.Flow.ExpiresAt == nil {
		t.Errorf("first row: got %+v, want key, hash, gateway URL and expiry", r)
	}
}

// The flow id derives from the run, the update and the start's number: a
// second start gets another id, and no side effect is recorded for it.
func TestCustomerLean_FlowIDsDifferPerStart(t *testing.T) {
	ct := newCustomerTest(t)
	first := ct.start(0, request(flow.KindInitialize, "key-1", "hash-1"))
	ct.verifyAt(time.Minute, first.flowID)
	second := ct.start(2*time.Minute, request(flow.KindRecovery, "key-2", "hash-2"))
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	a, b := first.created(t), second.created(t)
	if a.ID == b.ID || !flow.ValidFlowID(a.ID) || !flow.ValidFlowID(b.ID) {
		t.Errorf("flow ids: got %q and %q, want two different valid ids", a.ID, b.ID)
	}
}

// A lean flow records its end, tells the app, and only then closes: a
// start in between is decided on the stored row, not refused with
// flow_in_progress. Without such a row the active flow still holds the
// slot.
func TestCustomerLean_StartReadsTheActiveFlowsRow(t *testing.T) {
	for _, ended := range []bool{true, false} {
		name := "row says active"
		if ended {
			name = "row says completed"
		}
		t.Run(name, func(t *testing.T) {
			ct := newCustomerTest(t)
			// A flow workflow that stays open (delivering events, say).
			ct.env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in flow.FlowInput) (flow.Flow, error) {
				if err := workflow.Sleep(ctx, 2*time.Hour); err != nil {
					return flow.Flow{}, err
				}
				return flow.Flow{}, errors.New("closed without a status")
			}, workflow.RegisterOptions{Name: flow.WorkflowRecovery, DisableAlreadyRegisteredCheck: true})
			first := ct.start(0, request(flow.KindRecovery, "key-1", "hash-1"))
			if ended {
				ct.env.RegisterDelayedCallback(func() {
					now := ct.env.Now()
					ct.fakes.mu.Lock()
					defer ct.fakes.mu.Unlock()
					row := ct.fakes.records[len(ct.fakes.records)-1].Flow
					row.Status, row.UpdatedAt, row.CompletedAt = flow.StatusCompleted, now, &now
					ct.fakes.records = append(ct.fakes.records, flow.RecordFlowInput{Flow: row})
				}, time.Minute)
			}
			second := ct.start(2*time.Minute, request(flow.KindUpdatePIN, "key-2", "hash-2"))
			if err := ct.run(); err != nil {
				t.Fatalf("workflow error: got %v, want nil", err)
			}
			id := first.created(t).ID
			wantEqual(t, "rows read", ct.fakes.reads, []string{id})
			if ended {
				wantStatus(t, second.created(t), flow.StatusAwaitingUser, "")
				return
			}
			second.refusal(t, flow.CodeFlowInProgress)
			wantEqual(t, "activeFlowId", second.res.ActiveFlowID, id)
		})
	}
}

// A failed CreateChallenge answers the refusal with the failed flow at
// once; its workflow only records that end, and the key is free again.
func TestCustomerLean_ChallengeFailureEndsTheFlowAtOnce(t *testing.T) {
	ct := newCustomerTest(t)
	ct.fakes.createErr = func(int) error {
		return temporal.NewNonRetryableApplicationError("refused", string(flow.CodePlanbokRejected), nil)
	}
	first := ct.start(0, request(flow.KindInitialize, "key-1", "hash-1"))
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	first.refusal(t, flow.CodePlanbokRejected)
	f := first.created(t)
	wantStatus(t, f, flow.StatusFailed, flow.CodePlanbokRejected)
	if f.CompletedAt == nil {
		t.Error("completedAt: got nil, want the failure's time")
	}
	wantEqual(t, "rows", ct.fakes.recordedStatuses(), []flow.Status{flow.StatusFailed})
	wantEqual(t, "audits", len(ct.fakes.audits), 1)
	if len(ct.fakes.deliveries) != 1 || ct.fakes.deliveries[0].Event.Type != flow.EventFlowFailed {
		t.Errorf("deliveries: got %+v, want one flow.failed", ct.fakes.deliveries)
	}
}

// The app's events go out in the task that ends the flow; one the app did
// not take is retried by a DeliverEvent activity, one it refused for good
// (410) is not.
func TestCustomerLean_EventsDeliveredAtOnceThenRetried(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first error
		local []bool // per attempt: a local activity?
	}{
		{"taken", nil, []bool{true}},
		{"app down", temporal.NewApplicationError("503", "notify_failed"), []bool{true, false}},
		{"gone", temporal.NewNonRetryableApplicationError("410", "notify_gone", nil), []bool{true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := newCustomerTest(t)
			ct.fakes.deliverErr = func(call int) error {
				if call == 1 {
					return tc.first
				}
				return nil
			}
			out := ct.start(0, request(flow.KindRecovery, "key-1", "hash-1"))
			ct.verifyAt(time.Minute, out.flowID)
			if err := ct.run(); err != nil {
				t.Fatalf("workflow error: got %v, want nil", err)
			}
			wantEqual(t, "delivery attempts, local or not", ct.fakes.deliveredLocally, tc.local)
			for _, d := range ct.fakes.deliveries {
				if d.Event.Type != flow.EventRecoverySetup || d.ID != out.flowID()+"."+string(flow.EventRecoverySetup) {
					t.Errorf("delivery: got %s %s, want %s for the flow", d.ID, d.Event.Type, flow.EventRecoverySetup)
				}
			}
		})
	}
}

// One idle timer serves a lean run's idle periods: three flows within the
// hour cost at most two timers (the first, and one for the rest of the
// hour after the last flow), where the older shape restarts it after each.
// The run still completes an idle timeout after its last work.
func TestCustomerLean_OneIdleTimerAcrossFlows(t *testing.T) {
	ct := newCustomerTest(t)
	var timers []time.Duration
	ct.env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { timers = append(timers, d) })
	kinds := []flow.Kind{flow.KindInitialize, flow.KindRecovery, flow.KindUpdatePIN}
	for i, kind := range kinds {
		at := time.Duration(5*(i+1)) * time.Minute
		out := ct.start(at, request(kind, "", ""))
		ct.verifyAt(at+time.Minute, out.flowID)
	}
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	lastWork := 16 * time.Minute
	if ended := ct.env.Now().Sub(t0); ended < lastWork+DefaultIdleTimeout || ended > lastWork+DefaultIdleTimeout+time.Minute {
		t.Errorf("completed after %v, want the idle timeout (%v) after the last work at %v", ended, DefaultIdleTimeout, lastWork)
	}
	if len(timers) > 2 {
		t.Errorf("timers: got %v, want at most 2", timers)
	}
}

// verifyAt has the user complete the flow's challenge at offset d, and a
// webhook tell the flow; the status is pending until then.
func (ct *customerTest) verifyAt(d time.Duration, flowID func() string) {
	ct.env.RegisterDelayedCallback(func() { ct.fakes.setStatus("verified") }, d)
	ct.signalFlow(d, flowID, "")
	ct.env.RegisterDelayedCallback(func() { ct.fakes.setStatus("") }, d+time.Second)
}
