package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/custodyflows/custodyflows/activities"
	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/worker"
)

// reconcileConfig configures the reconciler in `worker` and `dev`.
type reconcileConfig struct {
	Every time.Duration
	Rate  float64
}

func (r *reconcileConfig) register(fs *flag.FlagSet) {
	fs.DurationVar(&r.Every, "reconcile-every", worker.DefaultReconcileEvery,
		"interval of the reconcile schedule, which re-reads every stored customer at Planbok and repairs flow rows; 0 pauses it")
	fs.Float64Var(&r.Rate, "reconcile-rate", worker.DefaultReconcileReadsPerSecond,
		"Planbok reads per second the reconciler may make, across all workers (Planbok allows 20 GET/s per organisation)")
}

// registerPollRate registers --poll-rate: the deployment-wide cap on
// challenge polls, enforced by the Temporal server on the polls' task queue.
func registerPollRate(fs *flag.FlagSet, rate *float64) {
	fs.Float64Var(rate, "poll-rate", worker.DefaultPollsPerSecond,
		"challenge polls per second across all workers (Planbok allows 20 GET/s per organisation); give every worker the same value")
}

func validatePollRate(rate float64) error { return planbokReadRate("poll-rate", rate) }

// planbokReadRate checks a reads-per-second flag against Planbok's GET
// limit (flow.PlanbokReadsPerSecond).
func planbokReadRate(name string, rate float64) error {
	if rate <= 0 || rate > flow.PlanbokReadsPerSecond {
		return fmt.Errorf("--%s must be above 0 and at most %d (Planbok's GET limit), got %g", name, flow.PlanbokReadsPerSecond, rate)
	}
	return nil
}

// minReconcileEvery keeps runs from following each other back to back: a
// run over many customers takes minutes at the default rate.
const minReconcileEvery = time.Minute

func (r reconcileConfig) validate() error {
	var errs []error
	if r.Every != 0 {
		if err := durationAtLeast("reconcile-every", r.Every, minReconcileEvery); err != nil {
			errs = append(errs, fmt.Errorf("%w (or 0 for no schedule)", err))
		}
	}
	if err := planbokReadRate("reconcile-rate", r.Rate); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reconciler is the running reconcile worker and, while the schedule could
// not be made to match the settings yet, the goroutine that keeps trying.
type reconciler struct {
	w      sdkworker.Worker
	cancel context.CancelFunc
	done   chan struct{}
}

// Stop stops trying to set the schedule, then stops the worker.
func (r *reconciler) Stop() {
	r.cancel()
	<-r.done
	r.w.Stop()
}

// scheduleRetry bounds the wait between attempts to set the schedule.
const scheduleRetry = 30 * time.Second

// startReconciler starts the worker of the reconciler's task queue and
// makes the reconcile schedule match cfg. The schedule is a convenience,
// not a condition of serving flows: when Temporal refuses it at first (a
// namespace registered moments ago is not yet known to every frontend),
// the worker runs and the schedule is set in the background, with backoff.
// The caller stops the reconciler.
func startReconciler(ctx context.Context, cfg reconcileConfig, c client.Client, pb activities.CustomerReader,
	st activities.ReconcileStore, taskQueue string, exportHold time.Duration, logger *slog.Logger) (*reconciler, error) {
	opts := worker.ReconcileOptions{
		TaskQueue:      taskQueue,
		Every:          cfg.Every,
		ReadsPerSecond: cfg.Rate,
		Activities: &activities.Reconciler{Planbok: pb, Store: st, Temporal: c, ExportHold: exportHold,
			Now: time.Now, Logger: logger},
		Logger: logger,
	}
	w, err := worker.NewReconciler(c, opts)
	if err != nil {
		return nil, fmt.Errorf("reconcile worker: %w", err)
	}
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start reconcile worker: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &reconciler{w: w, cancel: cancel, done: make(chan struct{})}
	err = worker.EnsureReconcileSchedule(rctx, c, opts)
	if err == nil {
		close(r.done)
		return r, nil
	}
	logger.Warn("reconcile schedule not set yet; trying again in the background", "err", err.Error())
	go func() {
		defer close(r.done)
		wait := time.Second
		for {
			select {
			case <-rctx.Done():
				return
			case <-time.After(wait):
			}
			err := worker.EnsureReconcileSchedule(rctx, c, opts)
			if err == nil {
				return
			}
			if rctx.Err() != nil {
				return
			}
			wait = min(2*wait, scheduleRetry)
			logger.Warn("reconcile schedule not set yet", "err", err.Error(), "retryIn", wait.String())
		}
	}()
	return r, nil
}
