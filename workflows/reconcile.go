package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

// Defaults of flow.ReconcileInput's zero values. A run replays with the
// defaults it started with (continue-as-new carries them as set values,
// but a chain's first run reads them here), so changing one once
// reconciles run in production needs workflow.GetVersion.
const (
	// DefaultReconcilePageSize keeps one run's history small (a page of
	// 100 customers is about 400 events) while paging rarely.
	DefaultReconcilePageSize = 100
	// DefaultReconcileConcurrency bounds the customers checked at once.
	// The Planbok request rate is bounded by the task queue's activity
	// rate, not by this; it only keeps a slow Planbok from holding many
	// activity slots. With a check taking about 0.4 s end to end, 8 in
	// flight reach Planbok's whole 20 reads/s (4 measured 9/s).
	DefaultReconcileConcurrency = 8
	// DefaultReconcileFlowGrace leaves flow rows written in the last five
	// minutes alone: such a flow is in the middle of its own bookkeeping.
	DefaultReconcileFlowGrace = 5 * time.Minute
)

// reconcileCheckTimeout bounds one customer's check, retries and the wait
// in the rate-limited task queue included. A customer whose check gives up
// is counted as failed and tried again by the next run: one unreachable
// customer never holds the run.
const reconcileCheckTimeout = 10 * time.Minute

func reconcileCheckOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    15 * time.Second,
		ScheduleToCloseTimeout: reconcileCheckTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: finalCodes(),
		},
	}
}

// Reconcile walks every stored flow row still marked active and every
// stored customer, and makes the store agree with Temporal and Planbok
// (registered as flow.WorkflowReconcile). The schedule of
// flow.ReconcileScheduleID runs it; POST /v1/reconcile starts one at once.
//
// It first repairs active flow rows whose workflow has ended or is gone
// (so that customers with a stuck row are not skipped below), then reads
// each customer at Planbok and corrects the stored security flags, sending
// the app the customer.* event of each change it had missed. It handles
// one page of PageSize ids per run, Concurrency at a time, and continues
// as new between pages with its progress (flow.ReconcileState); the
// Planbok request rate is the task queue's (see flow.ReconcileTaskQueue).
// The result, and the flow.QueryReconcileReport query while it runs, is
// the flow.ReconcileReport.
func Reconcile(ctx workflow.Context, in flow.ReconcileInput) (flow.ReconcileReport, error) {
	info := workflow.GetInfo(ctx)
	if in.NotifyTaskQueue == "" {
		in.NotifyTaskQueue = strings.TrimSuffix(info.TaskQueueName, flow.ReconcileTaskQueue(""))
	}
	if in.PageSize <= 0 {
		in.PageSize = DefaultReconcilePageSize
	}
	if in.Concurrency <= 0 {
		in.Concurrency = DefaultReconcileConcurrency
	}
	if in.FlowGrace <= 0 {
		in.FlowGrace = DefaultReconcileFlowGrace
	}
	if in.State == nil {
		in.State = &flow.ReconcileState{
			Phase: flow.ReconcilePhaseFlows,
			Report: flow.ReconcileReport{
				ID:          info.WorkflowExecution.ID,
				Status:      flow.ReconcileRunning,
				StartedAt:   workflow.Now(ctx),
				Corrections: []flow.Correction{},
			},
		}
	}
	r := &reconcileRun{
		in:     in,
		st:     in.State,
		logger: log.With(workflow.GetLogger(ctx), "reconcileId", in.State.Report.ID),
		ctx:    ctx,
	}
	err := workflow.SetQueryHandler(ctx, flow.QueryReconcileReport, func() (flow.ReconcileReport, error) {
		return r.st.Report, nil
	})
	if err != nil {
		return flow.ReconcileReport{}, fmt.Errorf("set query handler: %w", err)
	}

	for {
		switch r.st.Phase {
		case flow.ReconcilePhaseFlows:
			more, err := r.flowsPage(ctx)
			if err != nil {
				return r.fail(err)
			}
			if more {
				return flow.ReconcileReport{}, workflow.NewContinueAsNewError(ctx, flow.WorkflowReconcile, r.in)
			}
			r.st.Phase, r.st.Cursor = flow.ReconcilePhaseCustomers, ""
		case flow.ReconcilePhaseCustomers:
			more, err := r.customersPage(ctx)
			if err != nil {
				return r.fail(err)
			}
			if more {
				return flow.ReconcileReport{}, workflow.NewContinueAsNewError(ctx, flow.WorkflowReconcile, r.in)
			}
			return r.finish(ctx), nil
		default:
			return r.fail(fmt.Errorf("unknown reconcile phase %q", r.st.Phase))
		}
	}
}

// reconcileRun is the state of one run of the Reconcile workflow.
type reconcileRun struct {
	in     flow.ReconcileInput
	st     *flow.ReconcileState
	logger log.Logger
	// ctx is the workflow's context, for the metrics handler.
	ctx workflow.Context
}

// flowsPage repairs one page of active flow rows; more reports a full page.
func (r *reconcileRun) flowsPage(ctx workflow.Context) (more bool, err error) {
	var page []flow.Flow
	sctx := workflow.WithActivityOptions(ctx, storeOptions())
	in := flow.ListActiveFlowsInput{
		After:         r.st.Cursor,
		UpdatedBefore: r.st.Report.StartedAt.Add(-r.in.FlowGrace),
		Limit:         r.in.PageSize,
	}
	if err := workflow.ExecuteActivity(sctx, flow.ActivityListActiveFlows, in).Get(ctx, &page); err != nil {
		return false, fmt.Errorf("list active flows: %w", err)
	}
	results := make([]flow.RepairFlowResult, len(page))
	failed := make([]bool, len(page))
	r.forEach(ctx, len(page), func(ctx workflow.Context, i int) {
		actx := workflow.WithActivityOptions(ctx, reconcileCheckOptions())
		in := flow.RepairFlowInput{Flow: page[i], RunID: r.st.Report.ID, At: workflow.Now(ctx)}
		if err := workflow.ExecuteActivity(actx, flow.ActivityRepairFlow, in).Get(ctx, &results[i]); err != nil {
			r.logger.Warn("Repairing a flow row failed; the next run tries again.", "flowId", page[i].ID, "error", err)
			failed[i] = true
			return
		}
		res := results[i]
		if res.Flow != nil && res.Event != "" {
			// The flow's own event id: Temporal refuses it when the flow
			// (or an earlier repair) already sent it.
			r.notify(ctx, res.Flow.ID+"."+string(res.Event), flow.AppEvent{
				Type:      res.Event,
				Timestamp: workflow.Now(ctx),
				Data: flow.AppEventData{CustomerID: res.Flow.CustomerID, FlowID: res.Flow.ID, Kind: res.Flow.Kind,
					Status: res.Flow.Status, Security: res.Security},
			})
		}
	})
	for i, res := range results {
		r.st.Report.FlowsChecked++
		if !failed[i] && res.Correction != nil {
			r.addCorrection(*res.Correction)
		}
	}
	if len(page) > 0 {
		r.st.Cursor = page[len(page)-1].ID
	}
	return len(page) == r.in.PageSize, nil
}

// customersPage checks one page of customers; more reports a full page.
func (r *reconcileRun) customersPage(ctx workflow.Context) (more bool, err error) {
	var ids []string
	sctx := workflow.WithActivityOptions(ctx, storeOptions())
	in := flow.ListCustomerIDsInput{After: r.st.Cursor, Limit: r.in.PageSize}
	if err := workflow.ExecuteActivity(sctx, flow.ActivityListCustomerIDs, in).Get(ctx, &ids); err != nil {
		return false, fmt.Errorf("list customers: %w", err)
	}
	results := make([]flow.ReconcileCustomerResult, len(ids))
	failed := make([]bool, len(ids))
	r.forEach(ctx, len(ids), func(ctx workflow.Context, i int) {
		actx := workflow.WithActivityOptions(ctx, reconcileCheckOptions())
		in := flow.ReconcileCustomerInput{CustomerID: ids[i], RunID: r.st.Report.ID, At: workflow.Now(ctx)}
		if err := workflow.ExecuteActivity(actx, flow.ActivityReconcileCustomer, in).Get(ctx, &results[i]); err != nil {
			r.logger.Warn("Checking a customer failed; the next run tries again.", "customerId", ids[i], "error", err)
			failed[i] = true
			return
		}
		for _, c := range results[i].Corrections {
			ev := c.EventType()
			if ev == "" {
				continue
			}
			events := []flow.EventType{ev}
			if ev == flow.EventPINReset && results[i].Security.ExportAvailableAt != nil {
				// A reset made elsewhere starts the export hold too.
				events = append(events, flow.EventExportHoldStarted)
			}
			for _, ev := range events {
				r.notify(ctx, r.st.Report.ID+"."+c.CustomerID+"."+string(ev), flow.AppEvent{
					Type:      ev,
					Timestamp: workflow.Now(ctx),
					Data:      flow.AppEventData{CustomerID: c.CustomerID, Security: results[i].Security},
				})
			}
		}
	})
	checked, calls := 0, 0
	for i, res := range results {
		calls += res.PlanbokCalls
		switch {
		case failed[i]:
			r.st.Report.CustomersFailed++
			r.count("custodyflows_reconcile_customers_failed", 1)
		case res.Skipped:
			r.st.Report.CustomersSkipped++
		case res.Missing:
			checked++
			if len(r.st.Report.MissingAtPlanbok) < flow.MaxReportedCorrections {
				r.st.Report.MissingAtPlanbok = append(r.st.Report.MissingAtPlanbok, ids[i])
			}
			r.count("custodyflows_reconcile_customers_missing", 1)
		default:
			checked++
			for _, c := range res.Corrections {
				r.addCorrection(c)
			}
		}
	}
	r.st.Report.CustomersChecked += checked
	r.st.Report.PlanbokCalls += calls
	r.count("custodyflows_reconcile_customers_checked", checked)
	r.count("custodyflows_reconcile_planbok_calls", calls)
	if len(ids) > 0 {
		r.st.Cursor = ids[len(ids)-1]
	}
	return len(ids) == r.in.PageSize, nil
}

// forEach runs fn for 0..n-1, at most r.in.Concurrency at a time, and
// returns when all are done.
func (r *reconcileRun) forEach(ctx workflow.Context, n int, fn func(ctx workflow.Context, i int)) {
	sem := workflow.NewSemaphore(ctx, int64(r.in.Concurrency))
	wg := workflow.NewWaitGroup(ctx)
	for i := 0; i < n; i++ {
		if err := sem.Acquire(ctx, 1); err != nil {
			break // the workflow is cancelled
		}
		wg.Add(1)
		workflow.Go(ctx, func(ctx workflow.Context) {
			defer wg.Done()
			defer sem.Release(1)
			fn(ctx, i)
		})
	}
	wg.Wait(ctx)
}

func (r *reconcileRun) addCorrection(c flow.Correction) {
	r.st.Report.CorrectionsTotal++
	if len(r.st.Report.Corrections) < flow.MaxReportedCorrections {
		r.st.Report.Corrections = append(r.st.Report.Corrections, c)
	}
	r.countTagged("custodyflows_reconcile_corrections", "kind", c.Field)
}

// Metrics go through the SDK's workflow metrics handler, which the worker
// exports to Prometheus with its own; it records nothing while a history
// is replayed, so a count is never doubled by a worker restart.
func (r *reconcileRun) count(name string, n int) {
	if n > 0 {
		workflow.GetMetricsHandler(r.ctx).Counter(name).Inc(int64(n))
	}
}

func (r *reconcileRun) countTagged(name, key, value string) {
	workflow.GetMetricsHandler(r.ctx).WithTags(map[string]string{key: value}).Counter(name).Inc(1)
}

func (r *reconcileRun) finish(ctx workflow.Context) flow.ReconcileReport {
	now := workflow.Now(ctx)
	rep := r.st.Report
	rep.Status, rep.FinishedAt = flow.ReconcileCompleted, &now
	r.st.Report = rep
	workflow.GetMetricsHandler(ctx).Timer("custodyflows_reconcile_duration").Record(now.Sub(rep.StartedAt))
	r.logger.Info("Reconcile finished.", "customersChecked", rep.CustomersChecked,
		"corrections", rep.CorrectionsTotal, "missing", len(rep.MissingAtPlanbok), "failed", rep.CustomersFailed,
		"planbokCalls", rep.PlanbokCalls, "flowsChecked", rep.FlowsChecked)
	return rep
}

func (r *reconcileRun) fail(err error) (flow.ReconcileReport, error) {
	r.st.Report.Status = flow.ReconcileFailed
	r.logger.Error("Reconcile failed.", "error", err)
	return flow.ReconcileReport{}, err
}

// notify starts the NotifyApp workflow of one event on the flows' task
// queue (the reconciler's own queue has no NotifyApp worker), and waits
// only until it has started.
func (r *reconcileRun) notify(ctx workflow.Context, eventID string, ev flow.AppEvent) {
	startNotify(ctx, r.logger, r.in.NotifyTaskQueue, eventID, ev)
}
