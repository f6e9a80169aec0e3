package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/custodyflows/custodyflows/activities"
	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/workflows"
)

// Defaults of the reconciler.
const (
	// DefaultReconcileEvery is the production interval of the reconcile
	// schedule: an hour bounds how long a missed webhook or a change made
	// outside custodyflows stays wrong in the store, at one Planbok read
	// per customer per hour.
	DefaultReconcileEvery = time.Hour
	// DefaultReconcileReadsPerSecond is the reconciler's Planbok budget: a
	// quarter of Planbok's 20 GET/s per organisation, leaving the rest to
	// the flows' polls and preflights. At this rate a run reads 18,000
	// customers an hour.
	DefaultReconcileReadsPerSecond = 5
)

// ScheduleNotePaused is the note of a reconcile schedule paused because
// the interval is 0; a schedule paused with another note was paused by an
// operator and is left paused.
const ScheduleNotePaused = "paused by custodyflows: --reconcile-every is 0"

// ReconcileOptions configures StartReconciler.
type ReconcileOptions struct {
	// TaskQueue is the flows' task queue (flow.DefaultTaskQueue when
	// empty); the reconciler polls flow.ReconcileTaskQueue(TaskQueue).
	TaskQueue string
	// Every is the schedule's interval; 0 pauses the schedule (runs can
	// still be started through the API).
	Every time.Duration
	// ReadsPerSecond caps the reconciler's activities, and so its Planbok
	// reads, per second across every worker of the task queue
	// (DefaultReconcileReadsPerSecond when 0).
	ReadsPerSecond float64
	// Activities holds the reconciler's dependencies (required).
	Activities *activities.Reconciler
	// Logger receives the schedule's changes (slog.Default when nil).
	Logger *slog.Logger
}

// reconcileRegistrations lists the reconciler's activities with their
// registered names. Registered names: do not change.
func reconcileRegistrations(r *activities.Reconciler) []registration {
	return []registration{
		{flow.ActivityListCustomerIDs, r.ListCustomerIDs},
		{flow.ActivityReconcileCustomer, r.ReconcileCustomer},
		{flow.ActivityListActiveFlows, r.ListActiveFlows},
		{flow.ActivityRepairFlow, r.RepairFlow},
	}
}

func reconcileWorkflows() []workflows.Registration {
	return []workflows.Registration{{Name: flow.WorkflowReconcile, Fn: workflows.Reconcile}}
}

// NewReconciler returns a worker (not started) for the reconciler's task
// queue: the Reconcile workflow and its activities, with the task queue's
// activity rate set to opts.ReadsPerSecond. The rate is enforced by the
// Temporal server for the whole queue, so it holds however many workers
// run; a rate limiter inside the process would multiply with them.
func NewReconciler(c client.Client, opts ReconcileOptions) (sdkworker.Worker, error) {
	if c == nil {
		return nil, errors.New("worker: nil client")
	}
	if opts.Activities == nil {
		return nil, errors.New("worker: ReconcileOptions.Activities is required")
	}
	if opts.TaskQueue == "" {
		opts.TaskQueue = flow.DefaultTaskQueue
	}
	rate := opts.ReadsPerSecond
	if rate <= 0 {
		rate = DefaultReconcileReadsPerSecond
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	tq := flow.ReconcileTaskQueue(opts.TaskQueue)
	w := sdkworker.New(c, tq, sdkworker.Options{
		MaxConcurrentActivityExecutionSize:     2 * workflows.DefaultReconcileConcurrency,
		MaxConcurrentWorkflowTaskExecutionSize: 4,
		TaskQueueActivitiesPerSecond:           rate,
		WorkerStopTimeout:                      DefaultStopTimeout,
		DisableRegistrationAliasing:            true,
		OnFatalError: func(err error) {
			logger.Error("temporal worker stopped on a fatal error", "taskQueue", tq, "err", err)
		},
	})
	if err := register(w, reconcileWorkflows(), reconcileRegistrations(opts.Activities)); err != nil {
		return nil, err
	}
	return w, nil
}

// ScheduleClient is the part of the Temporal client EnsureReconcileSchedule
// uses.
type ScheduleClient interface {
	ScheduleClient() client.ScheduleClient
}

// EnsureReconcileSchedule makes the reconcile schedule of opts.TaskQueue
// match opts.Every, so every worker can call it at start: the first
// creates the schedule, the others (and restarts) find it and update it
// only when the interval or the action differ.
//
// The schedule never runs two reconciles at once (overlap policy skip)
// and does not catch up on runs missed while Temporal was down beyond one
// interval. Every = 0 pauses an existing schedule, with
// ScheduleNotePaused, rather than deleting it (and creates none): the
// Schedules page keeps showing it and why it is off, and its recent runs
// stay listed. A later non-zero interval unpauses a schedule paused that
// way; one an operator paused stays paused.
func EnsureReconcileSchedule(ctx context.Context, c ScheduleClient, opts ReconcileOptions) error {
	if opts.Every < 0 {
		return fmt.Errorf("reconcile interval must not be negative, got %s", opts.Every)
	}
	if opts.TaskQueue == "" {
		opts.TaskQueue = flow.DefaultTaskQueue
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	id := flow.ReconcileScheduleID(opts.TaskQueue)
	sc := c.ScheduleClient()
	if opts.Every == 0 {
		return pauseReconcileSchedule(ctx, sc.GetHandle(ctx, id), logger)
	}
	action := reconcileAction(opts.TaskQueue)
	every := opts.Every
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err := sc.Create(ctx, client.ScheduleOptions{
		ID:            id,
		Spec:          spec,
		Action:        action,
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: every,
	})
	switch {
	case err == nil:
		logger.Info("reconcile schedule created", "scheduleId", id, "every", opts.Every.String())
		return nil
	case !errors.Is(err, temporal.ErrScheduleAlreadyRunning):
		return fmt.Errorf("create reconcile schedule %s: %w", id, err)
	}

	h := sc.GetHandle(ctx, id)
	changed := false
	err = h.Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			if sameInterval(s.Spec, every) && sameAction(s.Action, action) &&
				s.Policy != nil && s.Policy.Overlap == enumspb.SCHEDULE_OVERLAP_POLICY_SKIP {
				return nil, temporal.ErrSkipScheduleUpdate
			}
			changed = true
			s.Spec = &spec
			s.Action = action
			if s.Policy == nil {
				s.Policy = &client.SchedulePolicies{}
			}
			s.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
			s.Policy.CatchupWindow = every
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return fmt.Errorf("update reconcile schedule %s: %w", id, err)
	}
	if changed {
		logger.Info("reconcile schedule updated", "scheduleId", id, "every", opts.Every.String())
	}
	desc, err := h.Describe(ctx)
	if err != nil {
		return fmt.Errorf("describe reconcile schedule %s: %w", id, err)
	}
	st := desc.Schedule.State
	switch {
	case st == nil || !st.Paused:
	case st.Note == ScheduleNotePaused:
		if err := h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: "unpaused by custodyflows: --reconcile-every is " + opts.Every.String()}); err != nil {
			return fmt.Errorf("unpause reconcile schedule %s: %w", id, err)
		}
		logger.Info("reconcile schedule unpaused", "scheduleId", id, "every", opts.Every.String())
	default:
		logger.Warn("reconcile schedule is paused by an operator; left paused", "scheduleId", id, "note", st.Note)
	}
	return nil
}

// pauseReconcileSchedule pauses the schedule, if there is one: with the
// interval 0 there is nothing to create.
func pauseReconcileSchedule(ctx context.Context, h client.ScheduleHandle, logger *slog.Logger) error {
	desc, err := h.Describe(ctx)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return nil
	case err != nil:
		return fmt.Errorf("describe reconcile schedule %s: %w", h.GetID(), err)
	case desc.Schedule.State != nil && desc.Schedule.State.Paused:
		return nil
	}
	if err := h.Pause(ctx, client.SchedulePauseOptions{Note: ScheduleNotePaused}); err != nil {
		return fmt.Errorf("pause reconcile schedule %s: %w", h.GetID(), err)
	}
	logger.Info("reconcile schedule paused", "scheduleId", h.GetID())
	return nil
}

// reconcileAction is what the schedule starts: a Reconcile workflow on
// the reconciler's task queue whose events go to the flows' queue.
func reconcileAction(taskQueue string) *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{
		ID:        flow.ReconcileScheduleID(taskQueue),
		Workflow:  flow.WorkflowReconcile,
		Args:      []any{flow.ReconcileInput{NotifyTaskQueue: taskQueue}},
		TaskQueue: flow.ReconcileTaskQueue(taskQueue),
	}
}

func sameInterval(spec *client.ScheduleSpec, every time.Duration) bool {
	return spec != nil && len(spec.Intervals) == 1 && spec.Intervals[0].Every == every &&
		spec.Intervals[0].Offset == 0 && len(spec.Calendars) == 0 && len(spec.CronExpressions) == 0
}

// sameAction compares the parts of the action custodyflows sets. A
// described action's workflow is its type name and its arguments are
// encoded payloads, so the arguments are not compared: they never change
// without a change of this file, and then the workflow type's input is
// what matters, which only grows.
func sameAction(a client.ScheduleAction, want *client.ScheduleWorkflowAction) bool {
	got, ok := a.(*client.ScheduleWorkflowAction)
	if !ok {
		return false
	}
	name, _ := got.Workflow.(string)
	return got.ID == want.ID && name == want.Workflow && got.TaskQueue == want.TaskQueue
}
