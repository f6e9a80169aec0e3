package workflows

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"time"

	"errors"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"slices"

	"github.com/custodyflows/custodyflows/flow"
)

// The start of a lean customer run (versionLeanCustomer). Everything a
// start decides happens in the start-flow update's own workflow task, as
// local activities: Preflight and CreateChallenge. The flow workflow then
// starts with its challenge and answers nothing back; once it runs, the
// flow's awaiting_user row is written and the update returns. A start that
// costs one Planbok GET and POST thus costs one update, two batches of
// local activities and the child's start, with no signal in between.

// startLean creates the flow of req after the rules passed: its challenge
// and row, then its workflow. The quota is taken before the challenge is
// asked for: a flow that fails there still counted.
func (c *customerRun) startLean(ctx workflow.Context, req flow.StartRequest, deadline time.Time) (flow.StartResult, error) {
	flowID := c.nextFlowID(ctx)
	c.quota = c.quota.Take(req.Quota, workflow.Now(ctx))
	in, snap := c.newFlow(ctx, flowID, req, deadline)
	c.flows[flowID] = snap

	ch, ferr := createChallenge(ctx, c.logger, snap, deadline, true, true)
	now := workflow.Now(ctx)
	snap.UpdatedAt = now
	if ferr != nil {
		// Nothing the user could act on exists: the flow workflow only
		// records this end (row, audit, app event), and the key is free
		// for a retry.
		snap.Status = flow.StatusFailed
		snap.Error = ferr
		snap.CompletedAt = &now
		in.StartError = ferr
	} else {
		setChallenge(ctx, snap, ch)
		snap.Status = flow.StatusAwaitingUser
		ch.ExpiresAt = *snap.ExpiresAt
		in.Challenge = &ch
		c.active = flowID
	}

	if err := c.startChild(ctx, in); err != nil {
		c.logger.Error("Starting the flow workflow failed.", "flowId", flowID, "error", err)
		delete(c.flows, flowID)
		if c.active == flowID {
			c.active = ""
		}
		return refuse(flow.Errorf(flow.CodeInternal, "The flow could not be started.")), nil
	}
	f := *snap
	res := flow.StartResult{Flow: &f, Created: true}
	if ferr != nil {
		res.Refusal = ferr
		return res, nil
	}
	// Written in the task that follows the child's start, never in the
	// task that decided it: that task may still be retried (a worker
	// crash, an update aborted under load) and decide differently, and a
	// row written there would name a flow that never ran. Before the
	// answer: GET /v1/flows/{id} and webhook routing read the store.
	c.recordStart(ctx, f, req, deadline)
	c.remember(req.IdempotencyKey, req.RequestHash, flowID)
	return res, nil
}

// nextFlowID derives the id of the flow the start-flow update of ctx
// creates from what history holds: the run (as first started, so a reset
// or a replay sees the same), the update's id and the start's number.
// Unlike a side effect it is the same when a workflow task is retried after
// a crash, so CreateChallenge sends the same idempotency key (challengeKey)
// and Planbok returns the same challenge.
func (c *customerRun) nextFlowID(ctx workflow.Context) string {
	updateID := ""
	if u := workflow.GetCurrentUpdateInfo(ctx); u != nil {
		updateID = u.ID
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d", workflow.GetInfo(ctx).OriginalRunID, updateID, c.starts))
	return flow.NewFlowID(bytes.NewReader(sum[:]))
}

// recordStart writes the flow's awaiting_user row. A store that stays down
// past the start's budget costs the row, not the start: the flow workflow
// writes its row again when it ends, and the API asks the workflow while
// there is none.
func (c *customerRun) recordStart(ctx workflow.Context, f flow.Flow, req flow.StartRequest, deadline time.Time) {
	opts := localOptions(storeOptions())
	opts.ScheduleToCloseTimeout = max(deadline.Sub(workflow.Now(ctx)), flow.MinPlanbokBudget)
	lctx := workflow.WithLocalActivityOptions(ctx, opts)
	in := flow.RecordFlowInput{Flow: f, IdempotencyKey: req.IdempotencyKey, RequestHash: req.RequestHash}
	if err := workflow.ExecuteLocalActivity(lctx, flow.ActivityRecordFlow, in).Get(lctx, nil); err != nil {
		c.logger.Error("Recording the new flow failed.", "flowId", f.ID, "error", err)
	}
}

// refreshActive reads the active flow's row before a start decides on it. A
// lean flow records its end in the store, then tells the app, and only then
// closes, which is when this run learns of it: an app that starts the next
// flow as soon as it hears must not be refused with flow_in_progress. If
// the store cannot be read, the run's own view decides.
func (c *customerRun) refreshActive(ctx workflow.Context) {
	if c.active == "" {
		return
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 5 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 250 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 2 * time.Second, MaximumAttempts: 3,
		},
	})
	var f *flow.Flow
	if err := workflow.ExecuteLocalActivity(lctx, flow.ActivityReadFlow, flow.ReadFlowInput{FlowID: c.active}).Get(lctx, &f); err != nil {
		c.logger.Warn("Reading the active flow's row failed; deciding on the workflow's view.", "flowId", c.active, "error", err)
		return
	}
	if f != nil && f.ID == c.active {
		c.apply(*f)
	}
}

// startCall runs one Planbok call of a lean start (Preflight,
// CreateChallenge): one attempt as a local activity, which in the usual
// case costs no activity task and keeps the start in one workflow task;
// then, when that attempt failed in a way worth retrying and budget is
// left, the activity itself, retried by Temporal until deadline. Retries
// never run as local activities: those would hold the workflow task, and
// with it the update's acceptance, open while Planbok is failing.
func startCall(ctx workflow.Context, name string, in any, deadline time.Time, out any) error {
	budget := max(deadline.Sub(workflow.Now(ctx)), flow.MinPlanbokBudget)
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: min(flow.PlanbokAttemptTimeout, budget),
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	err := workflow.ExecuteLocalActivity(lctx, name, in).Get(lctx, out)
	var ae *temporal.ApplicationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae) && (ae.NonRetryable() || slices.Contains(finalCodes(), ae.Type())):
		return err
	case deadline.Sub(workflow.Now(ctx)) < flow.MinPlanbokBudget:
		return err
	}
	return execute(ctx, false, startPlanbokOptions(ctx, deadline), name, in).Get(ctx, out)
}
