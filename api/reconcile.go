package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/custodyflows/custodyflows/flow"
)

// The reconciler's routes: POST /v1/reconcile starts a run now, GET
// /v1/reconcile/{id} reports one (a run started here or by the schedule).
// A run is a Reconcile workflow whose id is the run's id: Temporal is the
// record of runs, so a run is reported for as long as the namespace keeps
// its history; its corrections stay in the audit log for good.

// ReconcileTemporal is what the reconciler's routes need of Temporal
// besides the Temporal interface. client.Client has it; the routes find it
// on the server's Temporal client, so the flows' interface (and its
// fakes) stays as small as the flows need.
type ReconcileTemporal interface {
	ExecuteWorkflow(ctx context.Context, options client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error)
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	GetWorkflow(ctx context.Context, workflowID, runID string) client.WorkflowRun
	ListWorkflow(ctx context.Context, request *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
}

var _ ReconcileTemporal = client.Client(nil)

// reconcileRoutes adds the reconciler's routes to the authenticated group.
func (s *Server) reconcileRoutes(v1 *gin.RouterGroup) {
	v1.POST("/reconcile", s.startReconcile)
	v1.GET("/reconcile/:reconcileId", s.getReconcile)
}

func (s *Server) reconcileTemporal() (ReconcileTemporal, *apiError) {
	if t, ok := s.temporal.(ReconcileTemporal); ok {
		return t, nil
	}
	return nil, &apiError{code: flow.CodeInternal, cause: errors.New("the Temporal client cannot start or read workflows")}
}

// reconcileStarted is the 202 answer of POST /v1/reconcile.
type reconcileStarted struct {
	ID     string               `json:"id"`
	Status flow.ReconcileStatus `json:"status"`
}

// startReconcile starts a Reconcile workflow now. When one is already
// running (scheduled or asked for), it answers with that run instead of
// starting a second: two runs would only read Planbok twice.
func (s *Server) startReconcile(c *gin.Context) {
	ctx := c.Request.Context()
	tc, aerr := s.reconcileTemporal()
	if aerr != nil {
		s.renderError(c, aerr)
		return
	}
	if id := s.runningReconcile(ctx, tc); id != "" {
		c.JSON(http.StatusAccepted, reconcileStarted{ID: id, Status: flow.ReconcileRunning})
		return
	}
	id := flow.NewReconcileID(nil)
	_, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    id,
		TaskQueue:             flow.ReconcileTaskQueue(s.cfg.TaskQueue),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}, flow.WorkflowReconcile, flow.ReconcileInput{NotifyTaskQueue: s.cfg.TaskQueue})
	if err != nil {
		s.audit(c, "reconcile.start", "", "", "failed", "")
		s.renderError(c, temporalError(fmt.Errorf("start reconcile: %w", err)))
		return
	}
	s.audit(c, "reconcile.start", "", "", "started", id)
	c.JSON(http.StatusAccepted, reconcileStarted{ID: id, Status: flow.ReconcileRunning})
}

// runningReconcile returns the id of a running reconcile of this task
// queue, or "". Visibility lags a little behind starts, so two requests in
// the same instant may still start two runs; each correction is
// conditional on the stored value, so a change is still corrected (and
// told to the app) once.
func (s *Server) runningReconcile(ctx context.Context, tc ReconcileTemporal) string {
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND TaskQueue = '%s'",
		flow.WorkflowReconcile, flow.ReconcileTaskQueue(s.cfg.TaskQueue))
	resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 1})
	if err != nil {
		s.logger.WarnContext(ctx, "list running reconciles", "err", err.Error())
		return ""
	}
	for _, e := range resp.GetExecutions() {
		if id := e.GetExecution().GetWorkflowId(); flow.ValidReconcileID(id) {
			return id
		}
	}
	return ""
}

// getReconcile reports a run: its query while it runs, its result once
// completed. A run that failed (or was terminated) reports what its query
// still knows.
func (s *Server) getReconcile(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("reconcileId")
	notFound := newError(flow.CodeNotFound, "No reconcile run has this id.")
	if !flow.ValidReconcileID(id) {
		s.renderError(c, notFound)
		return
	}
	tc, aerr := s.reconcileTemporal()
	if aerr != nil {
		s.renderError(c, aerr)
		return
	}
	desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		s.renderError(c, notFound)
		return
	}
	if err != nil {
		s.renderError(c, temporalError(fmt.Errorf("describe reconcile: %w", err)))
		return
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetType().GetName() != flow.WorkflowReconcile {
		s.renderError(c, notFound)
		return
	}
	rep := flow.ReconcileReport{ID: id, StartedAt: info.GetStartTime().AsTime().UTC()}
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if err := tc.GetWorkflow(ctx, id, "").Get(ctx, &rep); err != nil {
			s.renderError(c, temporalError(fmt.Errorf("reconcile result: %w", err)))
			return
		}
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		if err := s.queryReport(ctx, id, &rep); err != nil {
			// No worker answered: report what Temporal knows.
			s.logger.InfoContext(ctx, "query reconcile", "reconcileId", id, "err", err.Error())
		}
		rep.Status, rep.FinishedAt = flow.ReconcileRunning, nil
	default:
		if err := s.queryReport(ctx, id, &rep); err != nil {
			s.logger.InfoContext(ctx, "query reconcile", "reconcileId", id, "err", err.Error())
		}
		rep.Status = flow.ReconcileFailed
		if ct := info.GetCloseTime(); ct != nil {
			t := ct.AsTime().UTC()
			rep.FinishedAt = &t
		}
	}
	rep.ID = id
	if rep.Corrections == nil {
		rep.Corrections = []flow.Correction{}
	}
	if rep.MissingAtPlanbok == nil {
		rep.MissingAtPlanbok = []string{}
	}
	c.JSON(http.StatusOK, rep)
}

// queryQuickly bounds a query, which waits for a worker to answer.
const queryQuickly = 5 * time.Second

func (s *Server) queryReport(ctx context.Context, id string, rep *flow.ReconcileReport) error {
	ctx, cancel := context.WithTimeout(ctx, queryQuickly)
	defer cancel()
	v, err := s.temporal.QueryWorkflow(ctx, id, "", flow.QueryReconcileReport)
	if err != nil {
		return err
	}
	var got flow.ReconcileReport
	if err := v.Get(&got); err != nil {
		return err
	}
	if got.ID != "" {
		*rep = got
	}
	return nil
}
