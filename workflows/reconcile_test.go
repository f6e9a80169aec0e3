package workflows

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

// reconcileWorld is a store and a Planbok for the reconciler's fakes: each
// customer's stored standing and Planbok's truth, the active flow rows
// and how their workflows ended.
type reconcileWorld struct {
	mu      sync.Mutex
	stored  map[string]flow.Standing
	truth   map[string]flow.Standing // absent: 404 at Planbok
	active  map[string]bool          // customers with an active flow
	flows   []flow.Flow              // active flow rows, by id
	outcome map[string]*flow.Flow    // flow id → final flow (nil: still running)
	failFor map[string]bool          // customers whose check always fails
	delay   time.Duration            // real time each check takes
	hold    time.Duration            // the export hold an unlock starts

	// observed
	lists      []flow.ListCustomerIDsInput
	flowLists  []flow.ListActiveFlowsInput
	checks     []string
	repairs    []string
	inFlight   int
	maxFlight  int
	deliveries []flow.DeliverEventInput
}

func newWorld() *reconcileWorld {
	return &reconcileWorld{stored: map[string]flow.Standing{}, truth: map[string]flow.Standing{},
		active: map[string]bool{}, outcome: map[string]*flow.Flow{}, failFor: map[string]bool{}}
}

// registry is what a test environment and a worker both offer.
type registry interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
	RegisterWorkflowWithOptions(any, workflow.RegisterOptions)
}

func (w *reconcileWorld) register(env registry) {
	for name, fn := range map[string]any{
		flow.ActivityListCustomerIDs:   w.ListCustomerIDs,
		flow.ActivityReconcileCustomer: w.ReconcileCustomer,
		flow.ActivityListActiveFlows:   w.ListActiveFlows,
		flow.ActivityRepairFlow:        w.RepairFlow,
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	env.RegisterWorkflowWithOptions(w.notifyApp, workflow.RegisterOptions{Name: flow.WorkflowNotifyApp})
	env.RegisterWorkflowWithOptions(Reconcile, workflow.RegisterOptions{Name: flow.WorkflowReconcile})
}

func (w *reconcileWorld) notifyApp(_ workflow.Context, in flow.DeliverEventInput) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deliveries = append(w.deliveries, in)
	return nil
}

func (w *reconcileWorld) ListCustomerIDs(_ context.Context, in flow.ListCustomerIDsInput) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lists = append(w.lists, in)
	var ids []string
	for id := range w.stored {
		if id > in.After {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if len(ids) > in.Limit {
		ids = ids[:in.Limit]
	}
	return ids, nil
}

func (w *reconcileWorld) ReconcileCustomer(_ context.Context, in flow.ReconcileCustomerInput) (flow.ReconcileCustomerResult, error) {
	w.mu.Lock()
	w.checks = append(w.checks, in.CustomerID)
	w.inFlight++
	w.maxFlight = max(w.maxFlight, w.inFlight)
	delay := w.delay
	w.mu.Unlock()
	time.Sleep(delay) // real time: overlapping calls show the concurrency
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight--
	if w.failFor[in.CustomerID] {
		return flow.ReconcileCustomerResult{}, temporal.NewNonRetryableApplicationError("Planbok is down.", string(flow.CodePlanbokUnavailable), nil)
	}
	if w.active[in.CustomerID] {
		return flow.ReconcileCustomerResult{Skipped: true}, nil
	}
	truth, ok := w.truth[in.CustomerID]
	if !ok {
		return flow.ReconcileCustomerResult{Missing: true, PlanbokCalls: 1}, nil
	}
	stored := w.stored[in.CustomerID]
	var cs []flow.Correction
	for _, f := range []struct {
		name     string
		from, to bool
	}{{flow.FieldHasPIN, stored.HasPIN, truth.HasPIN}, {flow.FieldHasRecovery, stored.HasRecovery, truth.HasRecovery}, {flow.FieldLockedOut, stored.LockedOut, truth.LockedOut}} {
		if f.from != f.to {
			cs = append(cs, flow.Correction{CustomerID: in.CustomerID, Field: f.name, From: f.from, To: f.to})
		}
	}
	w.stored[in.CustomerID] = truth
	sec := flow.Security{HasPIN: truth.HasPIN, HasRecovery: truth.HasRecovery, LockedOut: truth.LockedOut}
	if stored.LockedOut && !truth.LockedOut && w.hold > 0 {
		open := in.At.Add(w.hold)
		sec.LastPINResetAt, sec.ExportAvailableAt = &in.At, &open
	}
	return flow.ReconcileCustomerResult{PlanbokCalls: 1, Corrections: cs, Security: sec}, nil
}

func (w *reconcileWorld) ListActiveFlows(_ context.Context, in flow.ListActiveFlowsInput) ([]flow.Flow, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flowLists = append(w.flowLists, in)
	var out []flow.Flow
	for _, f := range w.flows {
		if f.ID > in.After && f.Status.Active() && f.UpdatedAt.Before(in.UpdatedBefore) {
			out = append(out, f)
		}
	}
	if len(out) > in.Limit {
		out = out[:in.Limit]
	}
	return out, nil
}

func (w *reconcileWorld) RepairFlow(_ context.Context, in flow.RepairFlowInput) (flow.RepairFlowResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.repairs = append(w.repairs, in.Flow.ID)
	final := w.outcome[in.Flow.ID]
	if final == nil {
		return flow.RepairFlowResult{}, nil
	}
	for i := range w.flows {
		if w.flows[i].ID == in.Flow.ID {
			w.flows[i] = *final
		}
	}
	ev := flow.TerminalEventType(final.Status)
	if final.Status == flow.StatusCompleted {
		ev = final.Kind.EventType()
	}
	return flow.RepairFlowResult{
		Correction: &flow.Correction{CustomerID: final.CustomerID, FlowID: final.ID, Field: flow.FieldFlowStatus,
			From: string(in.Flow.Status), To: string(final.Status)},
		Flow: final, Event: ev,
	}, nil
}

// runReconcile runs the Reconcile workflow to its end, following its
// continue-as-new chain run by run, and returns the report and the input
// of each run.
func runReconcile(t *testing.T, w *reconcileWorld, in flow.ReconcileInput) (flow.ReconcileReport, []flow.ReconcileInput) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	var inputs []flow.ReconcileInput
	start := t0
	for run := 0; run < 50; run++ {
		inputs = append(inputs, in)
		env := suite.NewTestWorkflowEnvironment()
		env.SetStartTime(start)
		env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "reconcile-test", TaskQueue: "tq-reconcile"})
		w.register(env)
		env.ExecuteWorkflow(flow.WorkflowReconcile, in)
		if !env.IsWorkflowCompleted() {
			t.Fatalf("run %d did not complete", run)
		}
		err := env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			if can.WorkflowType.Name != flow.WorkflowReconcile {
				t.Fatalf("continued as %q", can.WorkflowType.Name)
			}
			var next flow.ReconcileInput
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
				t.Fatal(err)
			}
			in = next
			start = start.Add(time.Minute)
			continue
		}
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		var rep flow.ReconcileReport
		if err := env.GetWorkflowResult(&rep); err != nil {
			t.Fatal(err)
		}
		return rep, inputs
	}
	t.Fatal("no end after 50 runs")
	return flow.ReconcileReport{}, nil
}

func customerID(i int) string { return fmt.Sprintf("c%02d", i) }

// Seven customers, pages of three: three runs, each continuing as new with
// the cursor and the report so far; every customer checked once.
func TestReconcile_PagesWithContinueAsNew(t *testing.T) {
	w := newWorld()
	for i := 1; i <= 7; i++ {
		w.stored[customerID(i)] = flow.Standing{HasPIN: true}
		w.truth[customerID(i)] = flow.Standing{HasPIN: true}
	}
	w.truth["c02"] = flow.Standing{HasPIN: true, HasRecovery: true} // recovery set up elsewhere
	w.truth["c06"] = flow.Standing{HasPIN: true, LockedOut: true}   // locked out, webhook lost
	delete(w.truth, "c07")                                          // gone at Planbok

	rep, inputs := runReconcile(t, w, flow.ReconcileInput{NotifyTaskQueue: "tq", PageSize: 3, Concurrency: 2})

	if len(inputs) != 3 {
		t.Fatalf("runs: got %d, want 3", len(inputs))
	}
	if inputs[1].State.Cursor != "c03" || inputs[2].State.Cursor != "c06" || inputs[1].State.Phase != flow.ReconcilePhaseCustomers {
		t.Fatalf("carried state: got %+v then %+v", inputs[1].State, inputs[2].State)
	}
	if inputs[2].State.Report.CustomersChecked != 6 || len(inputs[2].State.Report.Corrections) != 2 {
		t.Fatalf("progress carried into run 3: got %+v", inputs[2].State.Report)
	}
	var afters []string
	for _, l := range w.lists {
		afters = append(afters, l.After)
	}
	if !slices.Equal(afters, []string{"", "c03", "c06"}) {
		t.Fatalf("pages after: got %v", afters)
	}
	checks := slices.Clone(w.checks)
	slices.Sort(checks)
	if !slices.Equal(checks, []string{"c01", "c02", "c03", "c04", "c05", "c06", "c07"}) {
		t.Fatalf("checked: got %v, want each customer once", w.checks)
	}

	if rep.ID != "reconcile-test" || rep.Status != flow.ReconcileCompleted || !rep.StartedAt.Equal(t0) ||
		rep.FinishedAt == nil || !rep.FinishedAt.After(t0) {
		t.Fatalf("report: got %+v, want completed, started at the first run's start", rep)
	}
	if rep.CustomersChecked != 7 || rep.PlanbokCalls != 7 || rep.CorrectionsTotal != 2 ||
		!slices.Equal(rep.MissingAtPlanbok, []string{"c07"}) {
		t.Fatalf("report counts: got %+v", rep)
	}
	want := []flow.Correction{
		{CustomerID: "c02", Field: flow.FieldHasRecovery, From: false, To: true},
		{CustomerID: "c06", Field: flow.FieldLockedOut, From: false, To: true},
	}
	if fmt.Sprint(rep.Corrections) != fmt.Sprint(want) {
		t.Fatalf("corrections: got %v, want %v", rep.Corrections, want)
	}

	// One app event per correction, with ids that name the run.
	var events []string
	for _, d := range w.deliveries {
		events = append(events, d.ID+" "+string(d.Event.Type))
		if !d.Event.Data.Security.HasPIN {
			t.Errorf("event %s: security %+v, want the corrected status", d.ID, d.Event.Data.Security)
		}
	}
	slices.Sort(events)
	wantEvents := []string{
		"reconcile-test.c02.customer.recovery_setup customer.recovery_setup",
		"reconcile-test.c06.customer.locked_out customer.locked_out",
	}
	if !slices.Equal(events, wantEvents) {
		t.Fatalf("events: got %v, want %v", events, wantEvents)
	}

	// A second run finds nothing to change.
	w.deliveries, w.checks = nil, nil
	rep, _ = runReconcile(t, w, flow.ReconcileInput{NotifyTaskQueue: "tq", PageSize: 3, Concurrency: 2})
	if rep.CorrectionsTotal != 0 || len(w.deliveries) != 0 || rep.CustomersChecked != 7 {
		t.Fatalf("second run: got %+v and %d events, want nothing changed", rep, len(w.deliveries))
	}
}

// Customers are checked at most Concurrency at a time, and more than one
// at a time.
func TestReconcile_BoundedConcurrency(t *testing.T) {
	w := newWorld()
	for i := 1; i <= 12; i++ {
		w.stored[customerID(i)] = flow.Standing{}
		w.truth[customerID(i)] = flow.Standing{}
	}
	w.delay = 30 * time.Millisecond
	rep, _ := runReconcile(t, w, flow.ReconcileInput{PageSize: 100, Concurrency: 3})
	if rep.CustomersChecked != 12 {
		t.Fatalf("checked %d, want 12", rep.CustomersChecked)
	}
	if w.maxFlight != 3 {
		t.Fatalf("checks in flight at once: got at most %d, want 3", w.maxFlight)
	}
}

// Customers with an active flow are left to it; a customer whose check
// keeps failing is counted and does not stop the run.
func TestReconcile_SkipsActiveFlowsAndSurvivesFailures(t *testing.T) {
	w := newWorld()
	for i := 1; i <= 4; i++ {
		w.stored[customerID(i)] = flow.Standing{}
		w.truth[customerID(i)] = flow.Standing{HasPIN: true}
	}
	w.active["c01"] = true
	w.failFor["c02"] = true
	rep, _ := runReconcile(t, w, flow.ReconcileInput{PageSize: 10})
	if rep.CustomersSkipped != 1 || rep.CustomersFailed != 1 || rep.CustomersChecked != 2 || rep.CorrectionsTotal != 2 {
		t.Fatalf("got %+v, want 1 skipped, 1 failed, 2 checked and corrected", rep)
	}
	if len(w.deliveries) != 2 {
		t.Fatalf("events: got %d, want 2 (pin_setup of c03 and c04)", len(w.deliveries))
	}
}

// Active flow rows are compared with Temporal first, page by page: a row
// whose workflow ended is repaired and the flow's own event id is used for
// the app; a running one is left; recent rows are not listed.
func TestReconcile_RepairsFlowRows(t *testing.T) {
	w := newWorld()
	old := t0.Add(-time.Hour)
	for i := 1; i <= 3; i++ {
		w.flows = append(w.flows, flow.Flow{ID: fmt.Sprintf("flow_%d", i), CustomerID: "c01", Kind: flow.KindRecovery,
			Status: flow.StatusAwaitingUser, UpdatedAt: old})
	}
	done := old.Add(time.Minute)
	w.outcome["flow_1"] = &flow.Flow{ID: "flow_1", CustomerID: "c01", Kind: flow.KindRecovery, Status: flow.StatusCompleted,
		UpdatedAt: done, CompletedAt: &done}
	w.outcome["flow_3"] = &flow.Flow{ID: "flow_3", CustomerID: "c01", Kind: flow.KindRecovery, Status: flow.StatusFailed,
		Error: flow.Errorf(flow.CodeFlowOutcomeUnknown, "gone"), UpdatedAt: t0, CompletedAt: &done}
	w.stored["c01"] = flow.Standing{HasPIN: true, HasRecovery: true}
	w.truth["c01"] = flow.Standing{HasPIN: true, HasRecovery: true}

	rep, inputs := runReconcile(t, w, flow.ReconcileInput{NotifyTaskQueue: "tq", PageSize: 2})

	if len(inputs) != 2 || inputs[1].State.Phase != flow.ReconcilePhaseFlows || inputs[1].State.Cursor != "flow_2" {
		t.Fatalf("runs: got %d, second with %+v; want a second flows page after flow_2", len(inputs), inputs[len(inputs)-1].State)
	}
	if !w.flowLists[0].UpdatedBefore.Equal(t0.Add(-DefaultReconcileFlowGrace)) {
		t.Errorf("updatedBefore: got %s, want the start minus the grace", w.flowLists[0].UpdatedBefore)
	}
	if rep.FlowsChecked != 3 || rep.CorrectionsTotal != 2 || rep.CustomersChecked != 1 {
		t.Fatalf("report: got %+v, want 3 flows checked, 2 repaired, then 1 customer", rep)
	}
	want := []flow.Correction{
		{CustomerID: "c01", FlowID: "flow_1", Field: flow.FieldFlowStatus, From: "awaiting_user", To: "completed"},
		{CustomerID: "c01", FlowID: "flow_3", Field: flow.FieldFlowStatus, From: "awaiting_user", To: "failed"},
	}
	if fmt.Sprint(rep.Corrections) != fmt.Sprint(want) {
		t.Fatalf("corrections: got %v, want %v", rep.Corrections, want)
	}
	var ids []string
	for _, d := range w.deliveries {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"flow_1.customer.recovery_setup", "flow_3.flow.failed"}) {
		t.Fatalf("event ids: got %v, want the flows' own", ids)
	}
}

// An unlock found at Planbok (a PIN reset made elsewhere) sends
// customer.pin_reset and, when it started an export hold,
// customer.export_hold_started.
func TestReconcile_UnlockElsewhereTellsTheHold(t *testing.T) {
	for _, hold := range []time.Duration{0, 24 * time.Hour} {
		w := newWorld()
		w.hold = hold
		w.stored["c01"] = flow.Standing{HasPIN: true, HasRecovery: true, LockedOut: true}
		w.truth["c01"] = flow.Standing{HasPIN: true, HasRecovery: true}
		runReconcile(t, w, flow.ReconcileInput{})
		var types []string
		for _, d := range w.deliveries {
			types = append(types, string(d.Event.Type))
		}
		slices.Sort(types)
		want := []string{"customer.pin_reset"}
		if hold > 0 {
			want = append(want, "customer.export_hold_started")
			slices.Sort(want)
		}
		if !slices.Equal(types, want) {
			t.Errorf("hold %s: events %v, want %v", hold, types, want)
		}
	}
}

// The report can be queried while the run goes on.
func TestReconcile_QueryWhileRunning(t *testing.T) {
	w := newWorld()
	for i := 1; i <= 4; i++ {
		w.stored[customerID(i)] = flow.Standing{}
		w.truth[customerID(i)] = flow.Standing{}
	}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	w.register(env)
	var mid flow.ReconcileReport
	env.SetOnActivityCompletedListener(func(info *activity.Info, _ converter.EncodedValue, _ error) {
		if info.ActivityType.Name != flow.ActivityReconcileCustomer || mid.ID != "" {
			return
		}
		v, err := env.QueryWorkflow(flow.QueryReconcileReport)
		if err != nil {
			t.Errorf("query: %v", err)
			return
		}
		if err := v.Get(&mid); err != nil {
			t.Error(err)
		}
	})
	env.ExecuteWorkflow(flow.WorkflowReconcile, flow.ReconcileInput{Concurrency: 1})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if mid.Status != flow.ReconcileRunning || mid.FinishedAt != nil || !mid.StartedAt.Equal(t0) {
		t.Fatalf("query mid-run: got %+v, want running since t0", mid)
	}
}

// Recorded histories of the Reconcile workflow (reconcile_record_test.go;
// one file per run of a continue-as-new chain) keep replaying: a change
// that would break running reconciles needs workflow.GetVersion.
func TestReplay_ReconcileHistories(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", flow.WorkflowReconcile+".*.json"))
	if err != nil || len(paths) < 2 {
		t.Fatalf("recorded histories: got %v (%v), want the runs of a chain", paths, err)
	}
	for _, path := range paths {
		r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DisableRegistrationAliasing: true})
		if err != nil {
			t.Fatal(err)
		}
		r.RegisterWorkflowWithOptions(Reconcile, workflow.RegisterOptions{Name: flow.WorkflowReconcile})
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		// The run's id names its app events, so the replay needs the
		// recorded one (the replayer's default is "ReplayId").
		opts := worker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{ID: "reconcile-record"}}
		if err := r.ReplayWorkflowHistoryWithOptions(quietLogger(), h, opts); err != nil {
			t.Errorf("replay %s: got %v, want nil", path, err)
		}
	}
}
