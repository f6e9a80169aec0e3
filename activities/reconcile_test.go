package activities

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

var rnow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeWorkflows answers Describe from a map of statuses (absent: not
// found) and GetWorkflow with a map of results.
type fakeWorkflows struct {
	status  map[string]enumspb.WorkflowExecutionStatus
	results map[string]flow.Flow
}

func (f *fakeWorkflows) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	st, ok := f.status[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: id}, Status: st}}, nil
}

func (f *fakeWorkflows) GetWorkflow(_ context.Context, id, _ string) client.WorkflowRun {
	return resultRun{f.results[id]}
}

type resultRun struct{ f flow.Flow }

func (r resultRun) GetID() string                  { return r.f.ID }
func (r resultRun) GetRunID() string               { return "run" }
func (r resultRun) GetFirstExecutionRunID() string { return "run" }
func (r resultRun) Get(_ context.Context, p any) error {
	b, _ := json.Marshal(r.f)
	return json.Unmarshal(b, p)
}
func (r resultRun) GetWithOptions(ctx context.Context, p any, _ client.WorkflowRunGetOptions) error {
	return r.Get(ctx, p)
}

func newReconciler(t *testing.T) (*Reconciler, *store.Store, *fakePlanbok, *fakeWorkflows) {
	t.Helper()
	st, err := store.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pb := &fakePlanbok{}
	wf := &fakeWorkflows{status: map[string]enumspb.WorkflowExecutionStatus{}, results: map[string]flow.Flow{}}
	return &Reconciler{Planbok: pb, Store: st, Temporal: wf, Now: func() time.Time { return rnow }}, st, pb, wf
}

const rc = "66aa000000000000000000c1"

func TestReconcileCustomer_CorrectsOnceWithAudit(t *testing.T) {
	r, st, pb, _ := newReconciler(t)
	ctx := context.Background()
	if _, err := st.UpdateSecurity(ctx, rc, store.SecurityUpdate{HasPIN: true, SyncedAt: rnow.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	pb.customer = &planbok.Customer{ID: rc, Status: planbok.CustomerActive, HasPIN: true, HasRecovery: true}
	in := flow.ReconcileCustomerInput{CustomerID: rc, RunID: "reconcile-one", At: rnow}
	res, err := r.ReconcileCustomer(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	want := flow.Correction{CustomerID: rc, Field: flow.FieldHasRecovery, From: false, To: true}
	if len(res.Corrections) != 1 || res.Corrections[0] != want || res.PlanbokCalls != 1 || !res.Security.HasRecovery {
		t.Fatalf("got %+v, want one hasRecovery correction", res)
	}
	c, _ := st.FindCustomerByID(ctx, rc)
	if !c.Security.HasRecovery || c.Security.RecoverySetAt == nil || !c.Security.RecoverySetAt.Equal(rnow) {
		t.Fatalf("stored: got %+v", c.Security)
	}
	audit, _ := st.FindAudit(ctx, store.AuditFilter{CustomerID: rc})
	if len(audit) != 1 || audit[0].Actor != "reconcile-one" || audit[0].Action != AuditReconcileCorrect {
		t.Fatalf("audit: got %+v, want one row by the run", audit)
	}

	// A retry of the same step (its result was lost) answers with what the
	// first attempt did, without reading Planbok again.
	pb.errGet = &planbok.Error{Op: "get customer", StatusCode: 503}
	res, err = r.ReconcileCustomer(ctx, in)
	if err != nil || len(res.Corrections) != 1 || res.Corrections[0] != want {
		t.Fatalf("retry: got %+v, %v; want the same correction", res, err)
	}
	// Another run finds nothing to correct.
	pb.errGet = nil
	res, err = r.ReconcileCustomer(ctx, flow.ReconcileCustomerInput{CustomerID: rc, RunID: "reconcile-two", At: rnow})
	if err != nil || len(res.Corrections) != 0 || res.PlanbokCalls != 1 {
		t.Fatalf("second run: got %+v, %v; want nothing", res, err)
	}
	if audit, _ := st.FindAudit(ctx, store.AuditFilter{CustomerID: rc}); len(audit) != 1 {
		t.Fatalf("audit rows: got %d, want still 1", len(audit))
	}
}

func TestReconcileCustomer_SkipsMissingFails(t *testing.T) {
	r, st, pb, _ := newReconciler(t)
	ctx := context.Background()
	if err := st.EnsureCustomer(ctx, rc); err != nil {
		t.Fatal(err)
	}

	// Planbok does not know it: reported, the row stays.
	res, err := r.ReconcileCustomer(ctx, flow.ReconcileCustomerInput{CustomerID: rc, RunID: "reconcile-x"})
	if err != nil || !res.Missing {
		t.Fatalf("404: got %+v, %v; want missing", res, err)
	}
	if _, err := st.FindCustomerByID(ctx, rc); err != nil {
		t.Fatalf("the customer row is gone: %v", err)
	}

	// Planbok failing: a retryable planbok_unavailable.
	pb.errGet = &planbok.Error{Op: "get customer", StatusCode: 503}
	_, err = r.ReconcileCustomer(ctx, flow.ReconcileCustomerInput{CustomerID: rc, RunID: "reconcile-x"})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != string(flow.CodePlanbokUnavailable) || appErr.NonRetryable() {
		t.Fatalf("503: got %v, want a retryable planbok_unavailable", err)
	}

	// An active flow: left to it, Planbok not asked (it would fail).
	f := &flow.Flow{ID: "flow_a", CustomerID: rc, Kind: flow.KindRecovery, Status: flow.StatusAwaitingUser, CreatedAt: rnow, UpdatedAt: rnow}
	if err := st.UpsertFlow(ctx, f, store.FlowMeta{}); err != nil {
		t.Fatal(err)
	}
	res, err = r.ReconcileCustomer(ctx, flow.ReconcileCustomerInput{CustomerID: rc, RunID: "reconcile-x"})
	if err != nil || !res.Skipped || res.PlanbokCalls != 0 {
		t.Fatalf("active flow: got %+v, %v; want skipped", res, err)
	}
}

func TestRepairFlow_ByHowTheWorkflowEnded(t *testing.T) {
	r, st, _, wf := newReconciler(t)
	ctx := context.Background()
	old := rnow.Add(-time.Hour)
	put := func(id string) flow.Flow {
		f := flow.Flow{ID: id, CustomerID: rc, Kind: flow.KindRecovery, Status: flow.StatusAwaitingUser, ChallengeID: "ch-" + id,
			CreatedAt: old, UpdatedAt: old}
		if err := st.UpsertFlow(ctx, &f, store.FlowMeta{}); err != nil {
			t.Fatal(err)
		}
		return f
	}
	running, completed, terminated, gone := put("flow_run"), put("flow_done"), put("flow_term"), put("flow_gone")
	wf.status["flow_run"] = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	wf.status["flow_done"] = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	wf.status["flow_term"] = enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED
	done := old.Add(time.Minute)
	final := completed
	final.Status, final.UpdatedAt, final.CompletedAt = flow.StatusCompleted, done, &done
	wf.results["flow_done"] = final

	repair := func(f flow.Flow) flow.RepairFlowResult {
		t.Helper()
		res, err := r.RepairFlow(ctx, flow.RepairFlowInput{Flow: f, RunID: "reconcile-r", At: rnow})
		if err != nil {
			t.Fatalf("repair %s: %v", f.ID, err)
		}
		return res
	}
	if res := repair(running); res.Correction != nil {
		t.Fatalf("running: got %+v, want nothing", res)
	}
	res := repair(completed)
	if res.Correction == nil || res.Correction.To != "completed" || res.Event != flow.EventRecoverySetup {
		t.Fatalf("completed: got %+v", res)
	}
	if g, _ := st.FindFlowByID(ctx, "flow_done"); g.Status != flow.StatusCompleted || !g.CompletedAt.Equal(done) {
		t.Fatalf("completed row: got %+v", g)
	}
	for _, f := range []flow.Flow{terminated, gone} {
		res := repair(f)
		if res.Correction == nil || res.Correction.To != "failed" || res.Event != flow.EventFlowFailed {
			t.Fatalf("%s: got %+v", f.ID, res)
		}
		g, _ := st.FindFlowByID(ctx, f.ID)
		if g.Status != flow.StatusFailed || g.Error == nil || g.Error.Code != flow.CodeFlowOutcomeUnknown {
			t.Fatalf("%s row: got %+v", f.ID, g)
		}
	}
	// A retry after the write answers with the same repair.
	res = repair(gone)
	if res.Correction == nil || res.Correction.FlowID != "flow_gone" || res.Flow.Status != flow.StatusFailed {
		t.Fatalf("retry: got %+v", res)
	}
	audit, _ := st.FindAudit(ctx, store.AuditFilter{CustomerID: rc})
	if len(audit) != 3 {
		t.Fatalf("audit rows: got %d, want 3 (one per repair)", len(audit))
	}
}

// An unlock found at Planbok is a PIN reset made elsewhere: lastPinResetAt
// is set and, with a hold, the status reports when export opens again.
func TestReconcileCustomer_UnlockStartsTheExportHold(t *testing.T) {
	r, st, pb, _ := newReconciler(t)
	r.ExportHold = 24 * time.Hour
	ctx := context.Background()
	if _, err := st.UpdateSecurity(ctx, rc, store.SecurityUpdate{HasPIN: true, HasRecovery: true, LockedOut: true, SyncedAt: rnow.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	pb.customer = &planbok.Customer{ID: rc, Status: planbok.CustomerActive, HasPIN: true, HasRecovery: true}
	res, err := r.ReconcileCustomer(ctx, flow.ReconcileCustomerInput{CustomerID: rc, RunID: "reconcile-u", At: rnow})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Corrections) != 1 || res.Corrections[0].EventType() != flow.EventPINReset {
		t.Fatalf("corrections: got %+v, want the unlock", res.Corrections)
	}
	sec := res.Security
	if sec.LastPINResetAt == nil || !sec.LastPINResetAt.Equal(rnow) || sec.ExportAvailableAt == nil || !sec.ExportAvailableAt.Equal(rnow.Add(24*time.Hour)) {
		t.Fatalf("security: got %+v, want the reset now and export open in 24h", sec)
	}
}
