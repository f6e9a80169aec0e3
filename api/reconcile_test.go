package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/custodyflows/custodyflows/flow"
)

// fakeRuns adds to fakeTemporal the workflow calls of the reconcile
// routes, over a map of runs.
type fakeRuns struct {
	*fakeTemporal
	mu      sync.Mutex
	runs    map[string]*fakeRun
	starts  []client.StartWorkflowOptions
	inputs  []flow.ReconcileInput
	startFn func(id string) error
}

type fakeRun struct {
	typ    string
	status enumspb.WorkflowExecutionStatus
	report flow.ReconcileReport
	// noQuery makes the query fail, like a namespace with no worker.
	noQuery bool
}

func withRuns(e *env) *fakeRuns {
	f := &fakeRuns{fakeTemporal: e.tc, runs: map[string]*fakeRun{}}
	e.srv.temporal = f
	return f
}

func (f *fakeRuns) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, wf any, args ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startFn != nil {
		if err := f.startFn(o.ID); err != nil {
			return nil, err
		}
	}
	f.starts = append(f.starts, o)
	if in, ok := args[0].(flow.ReconcileInput); ok {
		f.inputs = append(f.inputs, in)
	}
	name, _ := wf.(string)
	f.runs[o.ID] = &fakeRun{typ: name, status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		report: flow.ReconcileReport{ID: o.ID, Status: flow.ReconcileRunning, StartedAt: testNow}}
	return nil, nil
}

func (f *fakeRuns) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[id]
	if !ok {
		return nil, serviceerror.NewNotFound("workflow not found")
	}
	info := &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: "run"},
		Type:      &commonpb.WorkflowType{Name: r.typ},
		Status:    r.status,
		StartTime: timestamppb.New(testNow),
	}
	if r.status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		info.CloseTime = timestamppb.New(testNow.Add(time.Minute))
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: info}, nil
}

func (f *fakeRuns) GetWorkflow(_ context.Context, id, _ string) client.WorkflowRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeWorkflowRun{id: id, report: f.runs[id].report}
}

func (f *fakeRuns) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.Contains(req.Query, "ExecutionStatus = 'Running'") || !strings.Contains(req.Query, "TaskQueue = 'tq-reconcile'") {
		return nil, errors.New("unexpected query " + req.Query)
	}
	resp := &workflowservice.ListWorkflowExecutionsResponse{}
	for id, r := range f.runs {
		if r.typ == flow.WorkflowReconcile && r.status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			resp.Executions = append(resp.Executions, &workflowpb.WorkflowExecutionInfo{
				Execution: &commonpb.WorkflowExecution{WorkflowId: id}})
		}
	}
	return resp, nil
}

func (f *fakeRuns) QueryWorkflow(ctx context.Context, id, runID, queryType string, args ...any) (converter.EncodedValue, error) {
	if queryType != flow.QueryReconcileReport {
		return f.fakeTemporal.QueryWorkflow(ctx, id, runID, queryType, args...)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[id]
	if !ok || r.noQuery {
		return nil, serviceerror.NewDeadlineExceeded("no worker answered")
	}
	return fakeValue{r.report}, nil
}

type fakeWorkflowRun struct {
	id     string
	report flow.ReconcileReport
}

func (r fakeWorkflowRun) GetID() string                      { return r.id }
func (r fakeWorkflowRun) GetRunID() string                   { return "run" }
func (r fakeWorkflowRun) GetFirstExecutionRunID() string     { return "run" }
func (r fakeWorkflowRun) Get(_ context.Context, p any) error { return roundTrip(r.report, p) }
func (r fakeWorkflowRun) GetWithOptions(ctx context.Context, p any, _ client.WorkflowRunGetOptions) error {
	return r.Get(ctx, p)
}

func TestReconcile_StartReturnsAnIDThatReads(t *testing.T) {
	e := newEnv(t)
	runs := withRuns(e)
	rec := e.api(http.MethodPost, "/v1/reconcile", "")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST: got %d %s, want 202", rec.Code, rec.Body)
	}
	started := decode[reconcileStarted](t, rec)
	if !flow.ValidReconcileID(started.ID) || started.Status != flow.ReconcileRunning {
		t.Fatalf("POST: got %+v, want a reconcile id and running", started)
	}
	if len(runs.starts) != 1 || runs.starts[0].ID != started.ID || runs.starts[0].TaskQueue != "tq-reconcile" {
		t.Fatalf("started %+v, want one run %s on tq-reconcile", runs.starts, started.ID)
	}
	if runs.inputs[0].NotifyTaskQueue != "tq" {
		t.Errorf("notify task queue: got %q, want the flows' queue tq", runs.inputs[0].NotifyTaskQueue)
	}
	if a := e.st.lastAudit(); a.Action != "reconcile.start" || a.Detail != started.ID {
		t.Errorf("audit: got %+v, want reconcile.start naming the run", a)
	}

	// While it runs: the workflow's query.
	runs.runs[started.ID].report.CustomersChecked = 7
	rec = e.api(http.MethodGet, "/v1/reconcile/"+started.ID, "")
	got := decode[flow.ReconcileReport](t, rec)
	if rec.Code != http.StatusOK || got.ID != started.ID || got.Status != flow.ReconcileRunning || got.CustomersChecked != 7 ||
		got.FinishedAt != nil || got.Corrections == nil {
		t.Fatalf("GET running: got %d %+v", rec.Code, got)
	}

	// Completed: the workflow's result.
	done := testNow.Add(time.Minute)
	runs.runs[started.ID].status = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	runs.runs[started.ID].report = flow.ReconcileReport{ID: started.ID, Status: flow.ReconcileCompleted, StartedAt: testNow,
		FinishedAt: &done, CustomersChecked: 3, CorrectionsTotal: 2, Corrections: []flow.Correction{
			{CustomerID: customerA, Field: flow.FieldHasRecovery, From: false, To: true},
			{CustomerID: customerB, FlowID: "flow_x", Field: flow.FieldFlowStatus, From: "awaiting_user", To: "failed"},
		}}
	rec = e.api(http.MethodGet, "/v1/reconcile/"+started.ID, "")
	got = decode[flow.ReconcileReport](t, rec)
	if got.Status != flow.ReconcileCompleted || got.FinishedAt == nil || len(got.Corrections) != 2 ||
		got.Corrections[0].To != true || got.Corrections[1].To != "failed" {
		t.Fatalf("GET completed: got %+v", got)
	}
	if !strings.Contains(rec.Body.String(), `"from":false,"to":true`) {
		t.Errorf("booleans must stay booleans on the wire: %s", rec.Body)
	}
}

func TestReconcile_StartWhileRunningAnswersThatRun(t *testing.T) {
	e := newEnv(t)
	runs := withRuns(e)
	runs.runs["reconcile-tq-2026-03-04T10:00:00Z"] = &fakeRun{typ: flow.WorkflowReconcile,
		status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING}
	rec := e.api(http.MethodPost, "/v1/reconcile", "")
	got := decode[reconcileStarted](t, rec)
	if rec.Code != http.StatusAccepted || got.ID != "reconcile-tq-2026-03-04T10:00:00Z" {
		t.Fatalf("got %d %+v, want 202 with the scheduled run", rec.Code, got)
	}
	if len(runs.starts) != 0 {
		t.Fatalf("started %d runs, want none", len(runs.starts))
	}
}

func TestReconcile_Errors(t *testing.T) {
	e := newEnv(t)
	runs := withRuns(e)
	runs.runs["reconcile-not-ours"] = &fakeRun{typ: "SomethingElse", status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING}
	for _, id := range []string{"nope", "reconcile-unknown", "reconcile-not-ours", "reconcile-" + strings.Repeat("a", 201), "reconcile-a%20b"} {
		wantError(t, e.api(http.MethodGet, "/v1/reconcile/"+id, ""), http.StatusNotFound, flow.CodeNotFound)
	}
	wantError(t, e.do(http.MethodPost, "/v1/reconcile", ""), http.StatusUnauthorized, flow.CodeUnauthorized)
	wantError(t, e.do(http.MethodGet, "/v1/reconcile/reconcile-x", ""), http.StatusUnauthorized, flow.CodeUnauthorized)

	runs.startFn = func(string) error { return serviceerror.NewUnavailable("down") }
	rec := e.api(http.MethodPost, "/v1/reconcile", "")
	wantError(t, rec, http.StatusServiceUnavailable, flow.CodeTemporalUnavailable)
	if rec.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

// A run that failed (or was terminated) reads as failed, with what its
// query still knows; without a worker, with what Temporal knows.
func TestReconcile_FailedRun(t *testing.T) {
	e := newEnv(t)
	runs := withRuns(e)
	runs.runs["reconcile-failed"] = &fakeRun{typ: flow.WorkflowReconcile, status: enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED,
		report: flow.ReconcileReport{ID: "reconcile-failed", Status: flow.ReconcileRunning, StartedAt: testNow, CustomersChecked: 4}}
	got := decode[flow.ReconcileReport](t, e.api(http.MethodGet, "/v1/reconcile/reconcile-failed", ""))
	if got.Status != flow.ReconcileFailed || got.CustomersChecked != 4 || got.FinishedAt == nil {
		t.Fatalf("got %+v, want failed with 4 checked and a finish time", got)
	}
	runs.runs["reconcile-failed"].noQuery = true
	got = decode[flow.ReconcileReport](t, e.api(http.MethodGet, "/v1/reconcile/reconcile-failed", ""))
	if got.Status != flow.ReconcileFailed || !got.StartedAt.Equal(testNow) || got.FinishedAt == nil {
		t.Fatalf("without a worker: got %+v, want failed with Temporal's times", got)
	}
}

// A server whose Temporal client cannot start workflows answers 500, not a
// panic.
func TestReconcile_ClientWithoutWorkflowCalls(t *testing.T) {
	e := newEnv(t)
	wantError(t, e.api(http.MethodPost, "/v1/reconcile", ""), http.StatusInternalServerError, flow.CodeInternal)
}
