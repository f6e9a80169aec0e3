package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/custodyflows/custodyflows/activities"
	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox"
	"github.com/custodyflows/custodyflows/store"
	"github.com/custodyflows/custodyflows/worker"
)

// withReconcile sets the reconcile schedule's interval. Tests use a year,
// so the schedule exists but never fires during a test (interval
// schedules fire at multiples of the interval since the epoch).
func withReconcile(every time.Duration) stackOption {
	return func(c *devConfig) { c.Reconcile.Every = every }
}

const testReconcileEvery = 365 * 24 * time.Hour

// reconcileRun starts a run through the API and waits for its report.
func (s *stack) reconcileRun(limit time.Duration) flow.ReconcileReport {
	s.t.Helper()
	r := s.api.do(http.MethodPost, "/v1/reconcile", nil)
	if r.Status != http.StatusAccepted {
		s.t.Fatalf("POST /v1/reconcile: got %d %s, want 202", r.Status, r.Body)
	}
	var started struct{ ID, Status string }
	r.decode(s.t, &started)
	if started.ID == "" || started.Status != "running" {
		s.t.Fatalf("POST /v1/reconcile: got %s", r.Body)
	}
	return s.waitReconcile(started.ID, limit)
}

func (s *stack) waitReconcile(id string, limit time.Duration) flow.ReconcileReport {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	var rep flow.ReconcileReport
	for time.Now().Before(deadline) {
		r := s.api.do(http.MethodGet, "/v1/reconcile/"+id, nil)
		if r.Status != http.StatusOK {
			s.t.Fatalf("GET /v1/reconcile/%s: got %d %s", id, r.Status, r.Body)
		}
		r.decode(s.t, &rep)
		if rep.Status != flow.ReconcileRunning {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rep.Status != flow.ReconcileCompleted || rep.ID != id || rep.FinishedAt == nil {
		s.t.Fatalf("reconcile %s: got %+v, want completed", id, rep)
	}
	return rep
}

// stored reads the customer's security status from the app database.
func (s *stack) stored(customerID string) flow.Security {
	s.t.Helper()
	c, err := s.Store.FindCustomerByID(context.Background(), customerID)
	if err != nil {
		s.t.Fatal(err)
	}
	return c.Security
}

func (s *stack) reconcileAudit(customerID string) []*store.AuditEntry {
	s.t.Helper()
	rows, err := s.Store.FindAudit(context.Background(), store.AuditFilter{CustomerID: customerID})
	if err != nil {
		s.t.Fatal(err)
	}
	var out []*store.AuditEntry
	for _, a := range rows {
		if strings.HasPrefix(a.Action, "reconcile.") {
			out = append(out, a)
		}
	}
	return out
}

// With every webhook dropped, a recovery set up outside custodyflows is
// found by a reconcile run: the stored status is corrected, the app gets
// one event and the audit log one row; a second run changes nothing.
func TestDev_ReconcileFindsWhatWebhooksMissed(t *testing.T) {
	s := startStack(t, withReconcile(testReconcileEvery))
	ctx := context.Background()

	// The schedule exists, never overlapping runs.
	desc, err := s.Client.ScheduleClient().GetHandle(ctx, flow.ReconcileScheduleID(flow.DefaultTaskQueue)).Describe(ctx)
	if err != nil {
		t.Fatalf("describe the reconcile schedule: %v", err)
	}
	if sp := desc.Schedule.Spec; len(sp.Intervals) != 1 || sp.Intervals[0].Every != testReconcileEvery ||
		desc.Schedule.Policy.Overlap != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP || desc.Schedule.State.Paused {
		t.Fatalf("schedule: got spec %+v policy %+v state %+v", sp, desc.Schedule.Policy, desc.Schedule.State)
	}

	// A customer with a PIN and no recovery, through custodyflows.
	cust := s.api.createCustomer("Reconcile Me", "user-reconcile")
	f, _ := s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
	s.complete(f.ChallengeID, map[string]any{"pin": testPIN, "recovery": nil})
	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	if sec := s.stored(cust.ID); !sec.HasPIN || sec.HasRecovery {
		t.Fatalf("after initialize: got %+v, want a PIN without recovery", sec)
	}
	s.events.waitFor(flow.EventPINSetup, cust.ID, f.ID, 20*time.Second)

	// Behind custodyflows' back, with every webhook lost.
	if err := s.helper.SetFaults(ctx, sandbox.Faults{WebhookDropRate: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = s.helper.ExternalFlow(ctx, cust.ID, sandbox.ExternalFlowInput{Task: planbok.TaskRecovery,
		CompleteInput: sandbox.CompleteInput{PIN: testPIN, Recovery: &sandbox.RecoveryInput{Method: "security_questions", Answers: testAnswers}}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // a webhook, were one sent, would have arrived
	// The API shows Planbok's flags live; the store is what the
	// reconciler corrects (and what timestamps and events come from).
	if sec := s.stored(cust.ID); sec.HasRecovery || sec.RecoverySetAt != nil {
		t.Fatalf("the change reached the store without the reconciler: %+v", sec)
	}

	rep := s.reconcileRun(60 * time.Second)
	want := flow.Correction{CustomerID: cust.ID, Field: flow.FieldHasRecovery, From: false, To: true}
	if rep.CustomersChecked != 1 || rep.CorrectionsTotal != 1 || len(rep.Corrections) != 1 || rep.Corrections[0] != want {
		t.Fatalf("first run: got %+v, want one customer checked and %+v", rep, want)
	}
	if sec := s.stored(cust.ID); !sec.HasRecovery || !sec.CanTransact || sec.RecoverySetAt == nil {
		t.Fatalf("stored after the run: got %+v, want recovery set and canTransact", sec)
	}
	if sec := s.api.customer(cust.ID).Security; sec.RecoverySetAt == nil {
		t.Fatalf("API after the run: got %+v, want recoverySetAt", sec)
	}
	ev := s.events.waitFor(flow.EventRecoverySetup, cust.ID, "", 20*time.Second)
	if !ev.Event.Data.Security.HasRecovery || !strings.HasPrefix(ev.ID, rep.ID+".") {
		t.Fatalf("event: got %+v, want the corrected status, named after the run", ev)
	}
	if audit := s.reconcileAudit(cust.ID); len(audit) != 1 || audit[0].Actor != rep.ID || audit[0].Action != activities.AuditReconcileCorrect {
		t.Fatalf("audit: got %+v, want one correction row by %s", audit, rep.ID)
	}

	rep2 := s.reconcileRun(60 * time.Second)
	if rep2.ID == rep.ID || rep2.CustomersChecked != 1 || rep2.CorrectionsTotal != 0 || len(rep2.Corrections) != 0 {
		t.Fatalf("second run: got %+v, want a new run that changes nothing", rep2)
	}
	time.Sleep(time.Second) // room for a wrong second event to arrive
	if n, _ := s.events.count(flow.EventRecoverySetup, cust.ID); n != 1 {
		t.Fatalf("recovery_setup events: got %d, want 1", n)
	}
	if audit := s.reconcileAudit(cust.ID); len(audit) != 1 {
		t.Fatalf("audit after the second run: got %d rows, want 1", len(audit))
	}

	// While a run goes on (Planbok slowed down), a second POST answers
	// with that run instead of starting another.
	if err := s.helper.SetFaults(ctx, sandbox.Faults{WebhookDropRate: 1, APILatencyMs: 4000}); err != nil {
		t.Fatal(err)
	}
	first := s.api.do(http.MethodPost, "/v1/reconcile", nil)
	var running struct{ ID string }
	first.decode(t, &running)
	query := "WorkflowType = 'Reconcile' AND ExecutionStatus = 'Running' AND TaskQueue = '" + flow.ReconcileTaskQueue(flow.DefaultTaskQueue) + "'"
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := s.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatalf("list running reconciles: %v", err)
		}
		if len(resp.Executions) > 0 {
			break
		}
	}
	second := s.api.do(http.MethodPost, "/v1/reconcile", nil)
	var again struct{ ID string }
	second.decode(t, &again)
	if second.Status != http.StatusAccepted || again.ID != running.ID {
		t.Fatalf("POST during a run: got %d %s, want 202 with %s", second.Status, second.Body, running.ID)
	}
	s.waitReconcile(running.ID, 60*time.Second)
	if err := s.helper.SetFaults(ctx, sandbox.Faults{WebhookDropRate: 1}); err != nil {
		t.Fatal(err)
	}

	// The worker's metrics count the runs.
	resp, err := http.Get(s.APIURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"custodyflows_reconcile_customers_checked_total", `custodyflows_reconcile_corrections_total{`,
		"custodyflows_reconcile_duration_seconds_bucket"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics has no %s", m)
		}
	}
}

// A flow whose workflow was terminated keeps an awaiting_user row; a run
// marks it failed with flow_outcome_unknown and tells the app.
func TestDev_ReconcileRepairsAFlowRowLeftBehind(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	cust := s.api.createCustomer("Left Behind", "user-left-behind")
	f, _ := s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
	if err := s.Client.TerminateWorkflow(ctx, f.ID, "", "test: an operator ends the flow"); err != nil {
		t.Fatal(err)
	}
	if got := s.api.flow(f.ID); got.Status != flow.StatusAwaitingUser {
		t.Fatalf("row after terminate: got %s, want awaiting_user (nobody wrote its end)", got.Status)
	}

	// A run with no grace, so the fresh row is looked at (the API's runs
	// leave rows younger than five minutes alone).
	run, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: flow.NewReconcileID(nil), TaskQueue: flow.ReconcileTaskQueue(flow.DefaultTaskQueue),
	}, flow.WorkflowReconcile, flow.ReconcileInput{NotifyTaskQueue: flow.DefaultTaskQueue, FlowGrace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	rep := s.waitReconcile(run.GetID(), 60*time.Second)
	if rep.FlowsChecked != 1 || rep.CorrectionsTotal != 1 || rep.Corrections[0].FlowID != f.ID || rep.Corrections[0].To != "failed" {
		t.Fatalf("report: got %+v, want the flow repaired", rep)
	}
	got := s.api.flow(f.ID)
	if got.Status != flow.StatusFailed || got.Error == nil || got.Error.Code != flow.CodeFlowOutcomeUnknown || got.CompletedAt == nil {
		t.Fatalf("row: got %+v, want failed with flow_outcome_unknown", got)
	}
	ev := s.events.waitFor(flow.EventFlowFailed, cust.ID, f.ID, 20*time.Second)
	mustEqual(t, "event id", ev.ID, f.ID+"."+string(flow.EventFlowFailed))
	if s.api.customer(cust.ID).ActiveFlow != nil {
		t.Fatal("the customer still shows an active flow")
	}
}

// Workers call EnsureReconcileSchedule at every start: a second call
// changes nothing, a new interval updates the schedule, 0 pauses it with a
// note and a later interval unpauses it; a schedule an operator paused
// stays paused.
func TestDev_ReconcileScheduleFollowsTheInterval(t *testing.T) {
	s := startStack(t, withReconcile(testReconcileEvery))
	ctx := context.Background()
	h := s.Client.ScheduleClient().GetHandle(ctx, flow.ReconcileScheduleID(flow.DefaultTaskQueue))
	ensure := func(every time.Duration) *client.ScheduleDescription {
		t.Helper()
		opts := worker.ReconcileOptions{Every: every, Logger: slog.New(slog.DiscardHandler)}
		if err := worker.EnsureReconcileSchedule(ctx, s.Client, opts); err != nil {
			t.Fatalf("ensure %s: %v", every, err)
		}
		d, err := h.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// The schedule's action runs: a triggered run completes and reads
	// through the API under the schedule's run id.
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	var runID string
	for deadline := time.Now().Add(20 * time.Second); runID == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		d, err := h.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if a := d.Info.RecentActions; len(a) > 0 && a[0].StartWorkflowResult != nil {
			runID = a[0].StartWorkflowResult.WorkflowID
		}
	}
	if !strings.HasPrefix(runID, flow.ReconcileScheduleID(flow.DefaultTaskQueue)+"-") {
		t.Fatalf("triggered run: got id %q", runID)
	}
	s.waitReconcile(runID, 60*time.Second)

	first, _ := h.Describe(ctx)
	again := ensure(testReconcileEvery)
	if !again.Info.LastUpdateAt.Equal(first.Info.LastUpdateAt) {
		t.Errorf("the same interval updated the schedule (%s → %s)", first.Info.LastUpdateAt, again.Info.LastUpdateAt)
	}
	if d := ensure(2 * testReconcileEvery); d.Schedule.Spec.Intervals[0].Every != 2*testReconcileEvery || d.Schedule.State.Paused {
		t.Fatalf("new interval: got %+v %+v", d.Schedule.Spec.Intervals, d.Schedule.State)
	}
	if d := ensure(0); !d.Schedule.State.Paused || d.Schedule.State.Note != worker.ScheduleNotePaused {
		t.Fatalf("0: got %+v, want paused with the note", d.Schedule.State)
	}
	if d := ensure(testReconcileEvery); d.Schedule.State.Paused {
		t.Fatalf("interval again: got %+v, want unpaused", d.Schedule.State)
	}
	if err := h.Pause(ctx, client.SchedulePauseOptions{Note: "incident 42"}); err != nil {
		t.Fatal(err)
	}
	if d := ensure(testReconcileEvery); !d.Schedule.State.Paused || d.Schedule.State.Note != "incident 42" {
		t.Fatalf("operator's pause: got %+v, want left paused", d.Schedule.State)
	}
}
