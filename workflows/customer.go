package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

// Customer is the per-customer entity workflow (registered as
// flow.WorkflowCustomer, id flow.CustomerWorkflowID). Every flow start for a
// customer goes through its start-flow update, one at a time, so two API
// replicas racing cannot start two flows: "one active flow per customer" is
// enforced here, not in the database.
//
// The start path lives here: the API authenticates and validates, then sends
// the start-flow update, and this workflow decides everything else in
// API.md's order (the customer at Planbok, idempotency replay, the active
// flow, the per-customer start quota, the rules) with Planbok calls that
// retry within the start's one budget (flow.StartPlanbokBudget). The quota
// is counted here, once for the whole deployment however many API replicas
// there are.
//
// It also handles customer-level webhooks no flow claimed
// (flow.SignalCustomerEvent), answers flow.QueryActiveFlow, completes after
// being idle for the idle timeout (and never before its quota bucket has
// refilled), and continues as new when its history grows, carrying recent
// idempotency keys and the quota bucket.
func Customer(ctx workflow.Context, in flow.CustomerInput) error {
	wfID := workflow.GetInfo(ctx).WorkflowExecution.ID
	if in.CustomerID == "" {
		in.CustomerID = strings.TrimPrefix(wfID, flow.CustomerWorkflowID(""))
	}
	c := &customerRun{
		ctx:            ctx,
		in:             in,
		wfID:           wfID,
		logger:         log.With(workflow.GetLogger(ctx), "customerId", in.CustomerID),
		flows:          map[string]*flow.Flow{},
		keys:           map[string]keyEntry{},
		quota:          in.Quota,
		flowChanged:    workflow.GetSignalChannel(ctx, flow.SignalFlowChanged),
		customerEvents: workflow.GetSignalChannel(ctx, flow.SignalCustomerEvent),
	}
	for _, rec := range in.RecentKeys {
		if rec.Flow.ID == "" {
			continue
		}
		if _, ok := c.flows[rec.Flow.ID]; !ok {
			f := rec.Flow
			c.flows[f.ID] = &f
		}
		c.remember(rec.Key, rec.RequestHash, rec.Flow.ID)
	}
	// Decided once per run, in its first workflow task: a run recorded
	// before versionLeanCustomer replays the older shape to its end.
	c.lean = workflow.GetVersion(ctx, versionLeanCustomer, workflow.DefaultVersion, 1) >= 1
	c.lastActive = workflow.Now(ctx)
	if err := c.setHandlers(); err != nil {
		return err
	}
	return c.loop()
}

// versionLeanCustomer marks runs whose starts cost the fewest Temporal
// round trips: Preflight, CreateChallenge and the flow's first row are
// local activities of the start itself, so the answer needs no signal from
// the flow workflow, which starts already waiting for the user
// (flow.FlowInput.Challenge) and reports its end by its result; the flow
// id derives from the run and the start's number, not a side effect, so a
// retried workflow task re-sends the same challenge idempotency key; one
// idle timer serves successive idle periods; and customer events re-read
// the customer in a local activity. Runs before it use versionStartPath's
// shapes.
const versionLeanCustomer = "lean-customer"

// keyEntry is an idempotency key: the request it was first used with and
// the flow it answers with.
type keyEntry struct {
	hash   string
	flowID string
}

type customerRun struct {
	ctx    workflow.Context
	in     flow.CustomerInput
	wfID   string
	logger log.Logger

	// flows holds the latest known snapshot of every flow started in this
	// run or carried over by an idempotency key (lookups only).
	flows map[string]*flow.Flow
	// active is the id of the flow holding the customer's slot, or "".
	active string
	// keys maps idempotency keys to their flows (lookups only); keyOrder
	// keeps their arrival order for continue-as-new.
	keys     map[string]keyEntry
	keyOrder []string
	// busy is set while a start is handled: starts run one at a time.
	busy bool
	// starts counts the starts handled in this run.
	starts int
	// quota is the customer's start-quota bucket (workflow time).
	quota flow.QuotaBucket
	// unknown is set when Planbok said the customer does not exist and this
	// run holds nothing for it: the run then completes as soon as it is
	// idle, so ids nobody has cost no hour-long workflow each.
	unknown bool
	// notifySeq numbers app events that have no webhook id to name them.
	notifySeq int

	// lean is set for runs with versionLeanCustomer's shape.
	lean bool
	// lastActive is when the run last had work (its start, a start, a
	// customer event, a flow's end); the idle timeout counts from it.
	lastActive time.Time
	// idleTimer is the lean runs' idle timer, nil when none runs.
	idleTimer workflow.Future

	flowChanged    workflow.ReceiveChannel
	customerEvents workflow.ReceiveChannel
}

func (c *customerRun) setHandlers() error {
	err := workflow.SetQueryHandler(c.ctx, flow.QueryActiveFlow, func() (*flow.Flow, error) {
		if c.active == "" {
			return nil, nil
		}
		f := *c.flows[c.active]
		return &f, nil
	})
	if err != nil {
		return fmt.Errorf("set query handler: %w", err)
	}
	err = workflow.SetUpdateHandlerWithOptions(c.ctx, flow.UpdateStartFlow, c.start,
		workflow.UpdateHandlerOptions{Validator: c.validate})
	if err != nil {
		return fmt.Errorf("set update handler: %w", err)
	}
	// Flow changes are applied as they come, never behind a slow customer
	// event, because a start waits for them.
	workflow.Go(c.ctx, func(ctx workflow.Context) {
		for {
			var f flow.Flow
			c.flowChanged.Receive(ctx, &f)
			c.apply(f)
		}
	})
	return nil
}

// validate rejects malformed start requests before they reach history.
func (c *customerRun) validate(_ workflow.Context, req flow.StartRequest) error {
	switch {
	case !req.Kind.Valid():
		return codedError(flow.Errorf(flow.CodeInvalidRequest, "Unknown flow kind %q.", string(req.Kind)))
	case req.CustomerID != c.in.CustomerID:
		return codedError(flow.Errorf(flow.CodeInvalidRequest, "The request names another customer than this workflow's."))
	case req.RedirectURL == "":
		return codedError(flow.Errorf(flow.CodeInvalidRequest, "redirectUrl is required."))
	}
	return nil
}

// versionStartPath marks starts decided wholly in this workflow: the
// per-customer quota, one Planbok budget per start, and idempotency keys
// released when a flow fails before its challenge exists. Histories before
// it counted no quota (the API did) and kept such keys. Version 2 also
// applies flow changes delivered in the same workflow task before deciding.
const versionStartPath = "start-path-in-workflow"

// applyPendingFlowChanges applies the flow changes already delivered but
// not yet taken by the receiving goroutine (apply is idempotent).
func (c *customerRun) applyPendingFlowChanges() {
	for {
		var f flow.Flow
		if !c.flowChanged.ReceiveAsync(&f) {
			return
		}
		c.apply(f)
	}
}

// start handles the start-flow update: it returns an idempotent replay,
// the active flow, a refusal, or the new flow once it waits for the user.
func (c *customerRun) start(ctx workflow.Context, req flow.StartRequest) (flow.StartResult, error) {
	v := workflow.Version(2)
	if !c.lean {
		v = workflow.GetVersion(ctx, versionStartPath, workflow.DefaultVersion, 2)
	}
	// The budget runs from arrival: time spent waiting behind another start
	// of this customer is part of it.
	deadline := workflow.Now(ctx).Add(planbokBudget(req))
	if c.lean {
		c.lastActive = workflow.Now(ctx)
	}
	if err := workflow.Await(ctx, func() bool { return !c.busy }); err != nil {
		return flow.StartResult{}, err
	}
	c.busy = true
	defer func() { c.busy = false }()
	c.starts++
	if v >= 2 {
		// A flow's end may have arrived in this same workflow task, still
		// buffered: the SDK runs update handlers before the goroutine that
		// applies flow changes. Without this, a start right after a cancel
		// answered with the cancelled flow as if it were still active.
		c.applyPendingFlowChanges()
	}
	if c.lean {
		c.refreshActive(ctx)
	}

	if req.IdempotencyKey != "" {
		if k, ok := c.keys[req.IdempotencyKey]; ok {
			if k.hash != req.RequestHash {
				return refuse(flow.Errorf(flow.CodeIdempotencyKeyReused, "This idempotencyKey was used with another request.")), nil
			}
			f := *c.flows[k.flowID]
			return flow.StartResult{Flow: &f}, nil
		}
	}

	if c.active != "" {
		a := c.flows[c.active]
		if a.Kind != req.Kind {
			res := refuse(flow.Errorf(flow.CodeFlowInProgress, "The customer already has a %s flow in progress.", string(a.Kind)))
			res.ActiveFlowID = a.ID
			return res, nil
		}
		if err := workflow.Await(ctx, func() bool { return a.Status != flow.StatusStarting }); err != nil {
			return flow.StartResult{}, err
		}
		c.remember(req.IdempotencyKey, req.RequestHash, a.ID)
		f := *a
		return flow.StartResult{Flow: &f}, nil
	}

	if v >= 1 {
		if wait := c.quota.Wait(req.Quota, workflow.Now(ctx)); wait > 0 {
			res := refuse(flow.Errorf(flow.CodeRateLimited, "Too many flow starts for this customer; try again later."))
			res.RetryAfter = wait
			return res, nil
		}
		if deadline.Sub(workflow.Now(ctx)) < flow.MinPlanbokBudget {
			// Another start of this customer spent the budget on a failing
			// Planbok while this one waited.
			return refuse(unavailable()), nil
		}
	} else {
		deadline = time.Time{}
	}

	if refusal := c.preflight(ctx, req.Kind, deadline); refusal != nil {
		c.unknown = v >= 1 && refusal.Code == flow.CodeCustomerNotFound && len(c.flows) == 0
		return refuse(refusal), nil
	}
	c.unknown = false
	if c.lean {
		return c.startLean(ctx, req, deadline)
	}

	var flowID string
	err := workflow.SideEffect(ctx, func(workflow.Context) any { return flow.NewFlowID(nil) }).Get(&flowID)
	if err != nil {
		return flow.StartResult{}, fmt.Errorf("new flow id: %w", err)
	}
	if v >= 1 {
		// Only flows created count: replays, the active flow and refusals
		// above took nothing.
		c.quota = c.quota.Take(req.Quota, workflow.Now(ctx))
	}
	snap, err := c.startFlow(ctx, flowID, req, deadline)
	if err != nil {
		c.logger.Error("Starting the flow workflow failed.", "flowId", flowID, "error", err)
		return refuse(flow.Errorf(flow.CodeInternal, "The flow could not be started.")), nil
	}
	c.remember(req.IdempotencyKey, req.RequestHash, flowID)

	if err := workflow.Await(ctx, func() bool { return snap.Status != flow.StatusStarting }); err != nil {
		return flow.StartResult{}, err
	}
	f := *snap
	res := flow.StartResult{Flow: &f, Created: true}
	if f.Status == flow.StatusFailed {
		res.Refusal = f.Error
		if res.Refusal == nil {
			res.Refusal = flow.Errorf(flow.CodeInternal, "The flow failed.")
		}
		if v >= 1 && f.ChallengeID == "" {
			// Nothing the user could act on exists: a retry with the same
			// key must start afresh, not get this failure back.
			c.forget(req.IdempotencyKey, flowID)
		}
	}
	return res, nil
}

func refuse(e *flow.Error) flow.StartResult { return flow.StartResult{Refusal: e} }

// planbokBudget is the Planbok budget req carries (the API derived it from
// its request's time), never more than flow.StartPlanbokBudget.
func planbokBudget(req flow.StartRequest) time.Duration {
	if req.PlanbokBudget <= 0 {
		return flow.StartPlanbokBudget
	}
	return min(req.PlanbokBudget, flow.StartPlanbokBudget)
}

// preflight asks Planbok whether a flow of kind may start, and returns the
// refusal, if any. It retries within the start's Planbok budget (until
// deadline; zero: the fixed per-call limit of older histories).
func (c *customerRun) preflight(ctx workflow.Context, kind flow.Kind, deadline time.Time) *flow.Error {
	var pre flow.PreflightResult
	in := flow.PreflightInput{CustomerID: c.in.CustomerID, Kind: kind}
	var err error
	if c.lean {
		err = startCall(ctx, flow.ActivityPreflight, in, deadline, &pre)
	} else {
		err = execute(ctx, false, startPlanbokOptions(ctx, deadline), flow.ActivityPreflight, in).Get(ctx, &pre)
	}
	if err != nil {
		ferr := activityError(err)
		c.logger.Warn("Preflight failed.", "kind", string(kind), "code", string(ferr.Code), "error", err)
		return ferr
	}
	if pre.Refusal != nil {
		return pre.Refusal
	}
	// The rules again, on the standing Planbok reported: the workflow, not
	// the activity, is where starts are decided.
	return flow.Check(kind, pre.Standing)
}

// startFlow starts the flow workflow as an abandoned child (a flow outlives
// its customer workflow's continue-as-new or completion), takes the
// customer's slot, and returns the flow's snapshot, which the flow's
// signals keep current.
func (c *customerRun) startFlow(ctx workflow.Context, flowID string, req flow.StartRequest, deadline time.Time) (*flow.Flow, error) {
	in, snap := c.newFlow(ctx, flowID, req, deadline)
	c.flows[flowID] = snap
	c.active = flowID
	if err := c.startChild(ctx, in); err != nil {
		delete(c.flows, flowID)
		c.active = ""
		return nil, err
	}
	return snap, nil
}

// newFlow returns the flow workflow's input and the flow's first snapshot
// (status starting).
func (c *customerRun) newFlow(ctx workflow.Context, flowID string, req flow.StartRequest, deadline time.Time) (flow.FlowInput, *flow.Flow) {
	now := workflow.Now(ctx)
	in := flow.FlowInput{
		FlowID:             flowID,
		CustomerID:         c.in.CustomerID,
		Kind:               req.Kind,
		RedirectURL:        req.RedirectURL,
		Blockchains:        req.Blockchains,
		IdempotencyKey:     req.IdempotencyKey,
		RequestHash:        req.RequestHash,
		Actor:              req.Actor,
		CreatedAt:          now,
		CustomerWorkflowID: c.wfID,
		PlanbokDeadline:    deadline,
	}
	snap := &flow.Flow{
		ID:          flowID,
		CustomerID:  in.CustomerID,
		Kind:        in.Kind,
		Status:      flow.StatusStarting,
		RedirectURL: in.RedirectURL,
		Blockchains: in.Blockchains,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	return in, snap
}

// startChild starts the flow workflow of in, waits until it runs, and
// takes its result when it ends.
func (c *customerRun) startChild(ctx workflow.Context, in flow.FlowInput) error {
	opts := workflow.ChildWorkflowOptions{
		WorkflowID:            in.FlowID,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}
	fut := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), in.Kind.WorkflowType(), in)
	if err := fut.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		return err
	}
	c.logger.Info("Flow started.", "flowId", in.FlowID, "kind", string(in.Kind))
	workflow.Go(ctx, func(ctx workflow.Context) {
		var res flow.Flow
		err := fut.Get(ctx, &res)
		c.flowEnded(in.FlowID, res, err)
	})
	return nil
}

// apply takes a flow's status change; status only moves forward, and a
// flow that ended frees the customer's slot.
func (c *customerRun) apply(f flow.Flow) {
	snap, ok := c.flows[f.ID]
	if !ok {
		c.logger.Warn("Ignoring a change of an unknown flow.", "flowId", f.ID)
		return
	}
	if !snap.Status.CanMoveTo(f.Status) {
		return
	}
	*snap = f
	if f.Status.Terminal() && c.active == f.ID {
		c.active = ""
	}
}

// flowEnded takes a flow workflow's result. A flow normally reports its end
// by signal first; one that ended without doing so (a bug, or an operator
// terminated it) is marked failed, so the customer's slot is never held
// forever.
func (c *customerRun) flowEnded(flowID string, res flow.Flow, err error) {
	if err == nil && res.ID == flowID {
		c.apply(res)
	}
	snap := c.flows[flowID]
	if snap == nil || snap.Status.Terminal() {
		return
	}
	c.logger.Error("The flow workflow ended without a final status.", "flowId", flowID, "error", err)
	now := workflow.Now(c.ctx)
	snap.Status = flow.StatusFailed
	snap.Error = flow.Errorf(flow.CodeInternal, "The flow ended unexpectedly.")
	snap.UpdatedAt = now
	snap.CompletedAt = &now
	if c.active == flowID {
		c.active = ""
	}
}

// remember maps an idempotency key to a flow, keeping the first use.
func (c *customerRun) remember(key, hash, flowID string) {
	if key == "" {
		return
	}
	if _, ok := c.keys[key]; ok {
		return
	}
	c.keys[key] = keyEntry{hash: hash, flowID: flowID}
	c.keyOrder = append(c.keyOrder, key)
}

// forget releases key if it still names flowID.
func (c *customerRun) forget(key, flowID string) {
	if k, ok := c.keys[key]; !ok || k.flowID != flowID {
		return
	}
	delete(c.keys, key)
	c.keyOrder = slices.DeleteFunc(c.keyOrder, func(k string) bool { return k == key })
}

// recentKeys returns the newest maxRecentKeys keys, oldest first.
func (c *customerRun) recentKeys() []flow.IdempotencyRecord {
	order := c.keyOrder
	if len(order) > maxRecentKeys {
		order = order[len(order)-maxRecentKeys:]
	}
	out := make([]flow.IdempotencyRecord, 0, len(order))
	for _, key := range order {
		k := c.keys[key]
		out = append(out, flow.IdempotencyRecord{Key: key, RequestHash: k.hash, Flow: *c.flows[k.flowID]})
	}
	return out
}

// idle reports whether the workflow has nothing to do: no active flow, no
// running handler.
func (c *customerRun) idle() bool {
	return c.active == "" && !c.busy && workflow.AllHandlersFinished(c.ctx)
}

func (c *customerRun) continueAsNewDue() bool {
	return c.starts >= maxStartsPerRun || workflow.GetInfo(c.ctx).GetContinueAsNewSuggested()
}

// idleTimeout is how long to wait idle before completing: the configured
// idle timeout, but never less than the quota bucket needs to refill, so a
// run that completes forgets nothing a new run would not know.
func (c *customerRun) idleTimeout() time.Duration {
	if c.unknown && len(c.flows) == 0 && c.quota.Full(workflow.Now(c.ctx)) == 0 {
		return 0
	}
	return max(c.idleSetting(), c.quota.Full(workflow.Now(c.ctx)))
}

// idleSetting is the configured idle timeout (DefaultIdleTimeout unless the
// input sets one).
func (c *customerRun) idleSetting() time.Duration {
	if c.in.IdleTimeout > 0 {
		return c.in.IdleTimeout
	}
	return DefaultIdleTimeout
}

// loop handles customer events one at a time, and completes or continues
// as new once idle.
func (c *customerRun) loop() error {
	ctx := c.ctx
	for {
		var ev flow.CustomerEvent
		if c.customerEvents.ReceiveAsync(&ev) {
			c.handleEvent(ev)
			c.lastActive = workflow.Now(ctx)
			continue
		}
		if !c.idle() {
			err := workflow.Await(ctx, func() bool { return c.idle() || c.customerEvents.Len() > 0 })
			if err != nil {
				return err
			}
			c.lastActive = workflow.Now(ctx)
			continue
		}
		if c.continueAsNewDue() {
			if c.drain() {
				continue
			}
			c.logger.Info("Continuing as new.", "starts", c.starts)
			next := flow.CustomerInput{CustomerID: c.in.CustomerID, IdleTimeout: c.in.IdleTimeout, RecentKeys: c.recentKeys(), Quota: c.quota}
			return workflow.NewContinueAsNewError(ctx, flow.WorkflowCustomer, next)
		}
		if c.lean {
			done, err := c.waitIdle()
			if err != nil {
				return err
			}
			if !done {
				continue
			}
			c.logger.Info("Idle; completing.")
			return nil
		}
		// An explicit timer, cancelled when work comes, so an idle period
		// that ends early leaves no timer behind.
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		idle := workflow.NewTimerWithOptions(timerCtx, c.idleTimeout(), workflow.TimerOptions{Summary: "idle"})
		err := workflow.Await(ctx, func() bool {
			return idle.IsReady() || !c.idle() || c.customerEvents.Len() > 0 || c.continueAsNewDue()
		})
		timedOut := idle.IsReady()
		cancelTimer()
		if err != nil {
			return err
		}
		if !timedOut || c.drain() {
			continue
		}
		c.logger.Info("Idle; completing.")
		return nil
	}
}

// waitIdle is the lean runs' idle wait: it reports done once the run has
// been idle for idleDue. One timer serves successive idle periods: work
// that comes before it fires leaves it running (a cancelled and restarted
// timer would cost an action per flow), and when it fires early for the
// latest idle period, a new one covers the rest.
func (c *customerRun) waitIdle() (done bool, err error) {
	ctx := c.ctx
	due := c.idleDue()
	if !workflow.Now(ctx).Before(due) {
		return !c.drain(), nil
	}
	if c.idleTimer == nil {
		c.idleTimer = workflow.NewTimerWithOptions(ctx, due.Sub(workflow.Now(ctx)), workflow.TimerOptions{Summary: "idle"})
	}
	timer := c.idleTimer
	err = workflow.Await(ctx, func() bool {
		return timer.IsReady() || !c.idle() || c.customerEvents.Len() > 0 || c.continueAsNewDue()
	})
	if err != nil || !timer.IsReady() {
		return false, err
	}
	c.idleTimer = nil
	if c.drain() || workflow.Now(ctx).Before(c.idleDue()) {
		return false, nil
	}
	return true, nil
}

// idleDue is when an idle lean run completes: the idle timeout after its
// last work, and never before its quota bucket has refilled; at once for a
// customer Planbok does not know and this run holds nothing for.
func (c *customerRun) idleDue() time.Time {
	now := workflow.Now(c.ctx)
	refill := c.quota.Full(now)
	if c.unknown && len(c.flows) == 0 && refill == 0 {
		return now
	}
	due := c.lastActive.Add(c.idleSetting())
	if full := now.Add(refill); full.After(due) {
		due = full
	}
	return due
}

// drain applies every flow change still buffered and reports whether work
// is left (a customer event, an active flow or a running handler), so the
// workflow never ends with a signal unread.
func (c *customerRun) drain() bool {
	for {
		var f flow.Flow
		if !c.flowChanged.ReceiveAsync(&f) {
			break
		}
		c.apply(f)
	}
	return c.customerEvents.Len() > 0 || !c.idle()
}

// handleEvent re-reads the customer after a customer-level webhook and
// tells the app when this made the customer locked out.
func (c *customerRun) handleEvent(ev flow.CustomerEvent) {
	if ev.CustomerID != "" && ev.CustomerID != c.in.CustomerID {
		c.logger.Warn("Ignoring an event for another customer.", "event", ev.Event, "webhookId", ev.WebhookID)
		return
	}
	at := ev.Received
	if at.IsZero() {
		at = workflow.Now(c.ctx)
	}
	var res flow.SyncCustomerResult
	// The webhook names the sync, so a retried task that runs it again is
	// still told that it locked the customer out.
	in := flow.SyncCustomerInput{CustomerID: c.in.CustomerID, Event: ev.Event, At: at, WebhookID: ev.WebhookID}
	if err := execute(c.ctx, c.lean, syncOptions(), flow.ActivitySyncCustomer, in).Get(c.ctx, &res); err != nil {
		c.logger.Warn("Syncing the customer after an event failed.", "event", ev.Event, "error", err)
		return
	}
	if !res.LockedOutNow {
		return
	}
	// The event id names the webhook that caused it, so the same webhook
	// signalled twice notifies once.
	source := ev.WebhookID
	if source == "" {
		c.notifySeq++
		source = fmt.Sprintf("%s.%d", workflow.GetInfo(c.ctx).WorkflowExecution.RunID, c.notifySeq)
	}
	eventID := flow.CustomerWorkflowID(c.in.CustomerID) + "." + source + "." + string(flow.EventLockedOut)
	startNotify(c.ctx, c.logger, "", eventID, flow.AppEvent{
		Type:      flow.EventLockedOut,
		Timestamp: workflow.Now(c.ctx),
		Data:      flow.AppEventData{CustomerID: c.in.CustomerID, Security: res.Security},
	})
}

// startPlanbokOptions is for the Planbok calls of a start (Preflight here,
// CreateChallenge in the flow): attempts of at most
// flow.PlanbokAttemptTimeout, backing off 250 ms doubling to 2 s, as many
// as fit before deadline, so a Planbok that fails now and then costs a
// start nothing and one that keeps failing answers planbok_unavailable
// when the budget ends, before the API's request does. A zero deadline
// (histories from before the budget) keeps the fixed per-call limit.
func startPlanbokOptions(ctx workflow.Context, deadline time.Time) workflow.ActivityOptions {
	if deadline.IsZero() {
		return planbokOptions()
	}
	budget := max(deadline.Sub(workflow.Now(ctx)), flow.MinPlanbokBudget)
	return workflow.ActivityOptions{
		StartToCloseTimeout:    min(flow.PlanbokAttemptTimeout, budget),
		ScheduleToCloseTimeout: budget,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    250 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    2 * time.Second,
			// The budget ends the attempts (about 15 fit in 24 s); a
			// number, not 0, because "unlimited" means 10 in the SDK's
			// test environment.
			MaximumAttempts:        100,
			NonRetryableErrorTypes: finalCodes(),
		},
	}
}
