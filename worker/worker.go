// Package worker wires the custodyflows Temporal worker: it registers every
// workflow and activity under its fixed name (the flow.Workflow* and
// flow.Activity* constants), builds the client options shared by the api
// and worker commands (payload encryption, failure encryption, slog
// logging, metrics), and exports the SDK's metrics to Prometheus.
//
// Registered names are part of the history contract: a golden file
// (testdata/names.golden) lists them so a rename takes a deliberate edit.
package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/activities"
	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/workflows"
)

// Defaults for Options' tuning fields. They are sized for one worker
// process against Planbok's rate limits (10 POST/s, 20 GET/s per
// organisation) and a SQLite store with a single writer: the SDK's default
// of 1000 concurrent activities would only queue up on those.
const (
	DefaultMaxConcurrentActivities    = 64
	DefaultMaxConcurrentWorkflowTasks = 64
	// DefaultStopTimeout lets running activities (10-15 s timeouts)
	// finish on Stop before their contexts are cancelled.
	DefaultStopTimeout = 15 * time.Second
	// DefaultPollsPerSecond caps challenge polls for the whole deployment
	// (flow.PollTaskQueue): half of Planbok's 20 GET/s, so the reads a
	// start needs (preflight, the API's customer reads) and the syncs after
	// a completion always find room, however many flows wait. Polls beyond
	// it wait in the queue: detection gets slower, starts do not.
	DefaultPollsPerSecond = 10
	// DefaultMaxConcurrentPolls bounds polls running at once in one worker.
	DefaultMaxConcurrentPolls = 16
)

// Options configures New.
type Options struct {
	// TaskQueue is the queue to poll (flow.DefaultTaskQueue when empty).
	TaskQueue string
	// Activities holds the activities' dependencies (required).
	Activities *activities.Activities
	// Logger receives worker-level errors (slog.Default when nil). The
	// SDK's own logging goes to the client's logger (see ClientOptions).
	Logger *slog.Logger

	// MaxConcurrentActivities bounds activities running at once
	// (DefaultMaxConcurrentActivities when 0).
	MaxConcurrentActivities int
	// MaxConcurrentWorkflowTasks bounds workflow tasks running at once
	// (DefaultMaxConcurrentWorkflowTasks when 0).
	MaxConcurrentWorkflowTasks int
	// ActivitiesPerSecond, when positive, caps activity starts per second
	// across every worker of the task queue (a server-side limit), e.g. to
	// stay under Planbok's rate limits when running many workers.
	ActivitiesPerSecond float64
	// StopTimeout is how long Stop waits for running activities
	// (DefaultStopTimeout when 0).
	StopTimeout time.Duration
	// PollsPerSecond caps challenge polls per second across every worker
	// of the deployment, enforced by the server on the poll task queue
	// (DefaultPollsPerSecond when 0). Workers of one deployment must agree.
	PollsPerSecond float64
}

// SetWorkflowCacheSize bounds the workflow executions this process keeps
// in memory between their workflow tasks: the SDK's sticky cache, one per
// process, shared by every Temporal worker in it (an embedded Temporal
// server's own system workers included). size 0 leaves the SDK's default,
// 10,000. Flows mostly wait on people, so a smaller cache trades memory
// (about 60 KB per cached flow or customer workflow: its coroutine stacks
// and replay state) for a replay of a short history when an evicted
// workflow's next task comes.
//
// The SDK sizes the cache when the process's first worker is created and
// ignores later changes, so call this before anything starts a worker.
func SetWorkflowCacheSize(size int) {
	if size > 0 {
		sdkworker.SetStickyWorkflowCacheSize(size)
	}
}

// registration is one activity method with its registered name.
type registration struct {
	Name string
	Fn   any
}

// activityRegistrations lists every activity method of a with its
// registered name. Registered names: do not change.
func activityRegistrations(a *activities.Activities) []registration {
	return []registration{
		{flow.ActivityPreflight, a.Preflight},
		{flow.ActivityCreateChallenge, a.CreateChallenge},
		{flow.ActivityGetChallenge, a.GetChallenge},
		{flow.ActivityRecordFlow, a.RecordFlow},
		{flow.ActivityReadFlow, a.ReadFlow},
		{flow.ActivitySyncCustomer, a.SyncCustomer},
		{flow.ActivityRecordAudit, a.RecordAudit},
		{flow.ActivityDeliverEvent, a.DeliverEvent},
		{flow.ActivityAwaitChallenge, a.AwaitChallenge},
	}
}

// pollRegistrations lists the activities of the poll task queue.
func pollRegistrations(a *activities.Activities) []registration {
	return []registration{{flow.ActivityAwaitChallenge, a.AwaitChallenge}}
}

// Names returns the registered workflow and activity type names, in
// registration order (the reconciler's, on their own task queue, last).
// MessageNames lists signals, queries and updates.
func Names() (workflowNames, activityNames []string) {
	for _, r := range append(workflows.All(), reconcileWorkflows()...) {
		workflowNames = append(workflowNames, r.Name)
	}
	for _, r := range append(activityRegistrations(&activities.Activities{}), reconcileRegistrations(&activities.Reconciler{})...) {
		activityNames = append(activityNames, r.Name)
	}
	return workflowNames, activityNames
}

// MessageNames returns the signal, query and update names the workflows
// handle: like type names, they are part of the history contract.
func MessageNames() (signals, queries, updates []string) {
	signals = []string{flow.SignalChallengeEvent, flow.SignalCustomerEvent, flow.SignalFlowChanged}
	queries = []string{flow.QueryFlow, flow.QueryActiveFlow}
	updates = []string{flow.UpdateStartFlow, flow.UpdateCancel}
	return signals, queries, updates
}

// New returns a worker (not started) polling opts.TaskQueue with every
// workflow of workflows.All and every activity registered under its fixed
// name, with registration aliasing disabled so that nothing is ever
// reachable under a Go function name. The caller starts it (Start or Run)
// and stops it gracefully with Stop.
//
// The returned worker also polls flow.PollTaskQueue(opts.TaskQueue), where
// flows run their challenge polls (AwaitChallenge) under the server-enforced
// opts.PollsPerSecond; Start, Run and Stop act on both.
func New(c client.Client, opts Options) (sdkworker.Worker, error) {
	if c == nil {
		return nil, errors.New("worker: nil client")
	}
	if opts.Activities == nil {
		return nil, errors.New("worker: Options.Activities is required")
	}
	if opts.TaskQueue == "" {
		opts.TaskQueue = flow.DefaultTaskQueue
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	w := sdkworker.New(c, opts.TaskQueue, workerOptions(opts, logger))
	if err := register(w, workflows.All(), activityRegistrations(opts.Activities)); err != nil {
		return nil, err
	}
	polls := sdkworker.New(c, flow.PollTaskQueue(opts.TaskQueue), pollWorkerOptions(opts, logger))
	if err := register(polls, nil, pollRegistrations(opts.Activities)); err != nil {
		return nil, err
	}
	return &pair{Worker: w, polls: polls}, nil
}

// pair is the main worker with the poll queue's worker: registration goes
// to the main one, Start, Run and Stop to both.
type pair struct {
	sdkworker.Worker
	polls sdkworker.Worker
}

func (p *pair) Start() error {
	if err := p.polls.Start(); err != nil {
		return err
	}
	if err := p.Worker.Start(); err != nil {
		p.polls.Stop()
		return err
	}
	return nil
}

func (p *pair) Run(interruptCh <-chan any) error {
	if err := p.Start(); err != nil {
		return err
	}
	<-interruptCh
	p.Stop()
	return nil
}

func (p *pair) Stop() {
	p.Worker.Stop()
	p.polls.Stop()
}

func pollWorkerOptions(opts Options, logger *slog.Logger) sdkworker.Options {
	rate := opts.PollsPerSecond
	if rate <= 0 {
		rate = DefaultPollsPerSecond
	}
	return sdkworker.Options{
		MaxConcurrentActivityExecutionSize: DefaultMaxConcurrentPolls,
		TaskQueueActivitiesPerSecond:       rate,
		WorkerStopTimeout:                  orDuration(opts.StopTimeout, DefaultStopTimeout),
		DisableWorkflowWorker:              true,
		DisableRegistrationAliasing:        true,
		OnFatalError: func(err error) {
			logger.Error("temporal poll worker stopped on a fatal error", "taskQueue", flow.PollTaskQueue(opts.TaskQueue), "err", err)
		},
	}
}

func orDuration(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

func workerOptions(opts Options, logger *slog.Logger) sdkworker.Options {
	o := sdkworker.Options{
		MaxConcurrentActivityExecutionSize:     orInt(opts.MaxConcurrentActivities, DefaultMaxConcurrentActivities),
		MaxConcurrentWorkflowTaskExecutionSize: orInt(opts.MaxConcurrentWorkflowTasks, DefaultMaxConcurrentWorkflowTasks),
		TaskQueueActivitiesPerSecond:           opts.ActivitiesPerSecond,
		WorkerStopTimeout:                      opts.StopTimeout,
		DisableRegistrationAliasing:            true,
		OnFatalError: func(err error) {
			logger.Error("temporal worker stopped on a fatal error", "taskQueue", opts.TaskQueue, "err", err)
		},
	}
	if o.WorkerStopTimeout <= 0 {
		o.WorkerStopTimeout = DefaultStopTimeout
	}
	return o
}

func orInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// register registers wfs and acts on r under their names. It refuses empty
// or duplicate names up front and turns the SDK's registration panics
// (e.g. a function of the wrong shape) into an error, so a bad
// registration fails start-up with a message instead of a stack trace.
func register(r sdkworker.Registry, wfs []workflows.Registration, acts []registration) (err error) {
	if err := checkNames("workflow", wfs, func(x workflows.Registration) (string, any) { return x.Name, x.Fn }); err != nil {
		return err
	}
	if err := checkNames("activity", acts, func(x registration) (string, any) { return x.Name, x.Fn }); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("worker: register: %v", p)
		}
	}()
	for _, wf := range wfs {
		r.RegisterWorkflowWithOptions(wf.Fn, workflow.RegisterOptions{Name: wf.Name})
	}
	for _, a := range acts {
		r.RegisterActivityWithOptions(a.Fn, activity.RegisterOptions{Name: a.Name})
	}
	return nil
}

func checkNames[T any](what string, items []T, get func(T) (string, any)) error {
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		name, fn := get(it)
		switch {
		case name == "":
			return fmt.Errorf("worker: a %s has no name", what)
		case fn == nil:
			return fmt.Errorf("worker: %s %q has no function", what, name)
		case seen[name]:
			return fmt.Errorf("worker: %s %q registered twice", what, name)
		}
		seen[name] = true
	}
	return nil
}
