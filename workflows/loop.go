package workflows

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

// The shared challenge loop. Every flow:
//
//  1. records its row in status starting;
//  2. creates its Planbok challenge with an idempotency key fixed for the
//     flow (so retries and crashed workers never create a second one);
//  3. moves to awaiting_user with the challenge's Gateway URL;
//  4. waits for the first of a webhook signal for its challenge, its own
//     poll (PollFirst doubling to PollMax), a cancel, or the challenge's
//     expiresAt, reading Planbok's truth (GetChallenge) on each wake-up;
//  5. ends completed, failed, expired or cancelled: records the row and an
//     audit entry, re-reads the customer, and notifies the app.
//
// Each status change is recorded in the store and signalled to the customer
// workflow, which frees the customer's slot when the flow ends. The
// workflow's result is the final Flow, whatever its status; a workflow error
// means a bug.
//
// Lean flows (versionLean) do the same work with fewer round trips: no row
// for starting (the API asks the workflow until the row exists); store
// writes, CreateChallenge, webhook-triggered reads and SyncCustomer as local
// activities; one AwaitChallenge activity whose retries are the polls, on
// the rate-limited poll queue, instead of a timer and an activity per poll;
// and the app's events delivered by DeliverEvent activities of the flow
// itself (which stays open until they are delivered, after freeing the
// customer's slot) instead of a NotifyApp workflow per event.

// challengeKey is the idempotency key of a flow's create-challenge step,
// derived from the flow id alone so every attempt sends the same key. It is
// shaped like a UUID v4 because Planbok documents idempotency keys as such.
func challengeKey(flowID string) string {
	sum := sha256.Sum256([]byte(flowID + "/challenge"))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// flowRun is the state of one flow workflow.
type flowRun struct {
	ctx    workflow.Context
	def    definition
	in     flow.FlowInput
	f      flow.Flow
	logger log.Logger

	events   workflow.ReceiveChannel // flow.SignalChallengeEvent
	cancelCh workflow.Channel        // one value once a cancel was asked

	// lean is set for flows that run versionLean's shape.
	lean bool
	// started is set for flows whose customer workflow created the
	// challenge and recorded the awaiting_user row (flow.FlowInput's
	// Challenge or StartError): lean, and reporting their end by their
	// result only, never by signal.
	started bool

	cancelRequested bool
	// ending is set once the loop has decided the outcome; a cancel that
	// comes later is refused with flow_finished.
	ending bool
	// seen holds the webhook ids already acted on (lookups only).
	seen map[string]bool
}

func runFlow(ctx workflow.Context, def definition, in flow.FlowInput) (flow.Flow, error) {
	if in.FlowID == "" {
		in.FlowID = workflow.GetInfo(ctx).WorkflowExecution.ID
	}
	if in.Kind == "" {
		in.Kind = def.Kind
	}
	if in.Kind != def.Kind {
		return flow.Flow{}, fmt.Errorf("workflow %s cannot run a %q flow", def.Kind.WorkflowType(), in.Kind)
	}
	if in.CreatedAt.IsZero() {
		in.CreatedAt = workflow.Now(ctx)
	}
	r := &flowRun{
		ctx: ctx,
		def: def,
		in:  in,
		f: flow.Flow{
			ID:          in.FlowID,
			CustomerID:  in.CustomerID,
			Kind:        def.Kind,
			Status:      flow.StatusStarting,
			RedirectURL: in.RedirectURL,
			Blockchains: in.Blockchains,
			CreatedAt:   in.CreatedAt,
			UpdatedAt:   in.CreatedAt,
		},
		logger:   log.With(workflow.GetLogger(ctx), "flowId", in.FlowID, "kind", string(def.Kind)),
		events:   workflow.GetSignalChannel(ctx, flow.SignalChallengeEvent),
		cancelCh: workflow.NewBufferedChannel(ctx, 1),
		seen:     map[string]bool{},
	}
	if err := r.setHandlers(); err != nil {
		return flow.Flow{}, err
	}
	r.run()
	if err := workflow.Await(r.ctx, func() bool { return workflow.AllHandlersFinished(r.ctx) }); err != nil {
		return r.f, err
	}
	// Webhooks that arrive after the end (duplicates, customer events
	// naming this challenge) change nothing: take them so none is left
	// unhandled.
	late := 0
	for r.events.ReceiveAsync(nil) {
		late++
	}
	if late > 0 {
		r.logger.Debug("Ignored challenge events that came after the end.", "count", late)
	}
	return r.f, nil
}

func (r *flowRun) setHandlers() error {
	if err := workflow.SetQueryHandler(r.ctx, flow.QueryFlow, func() (flow.Flow, error) {
		return r.f, nil
	}); err != nil {
		return fmt.Errorf("set query handler: %w", err)
	}
	finished := func() error {
		return codedError(flow.Errorf(flow.CodeFlowFinished, "The flow has already ended."))
	}
	err := workflow.SetUpdateHandlerWithOptions(r.ctx, flow.UpdateCancel,
		func(ctx workflow.Context) (flow.Flow, error) {
			if !r.cancelRequested {
				r.cancelRequested = true
				r.cancelCh.SendAsync(true)
			}
			if err := workflow.Await(ctx, func() bool { return r.f.Status.Terminal() }); err != nil {
				return flow.Flow{}, err
			}
			if r.f.Status != flow.StatusCancelled {
				// The challenge ended on its own while the cancel waited.
				return flow.Flow{}, finished()
			}
			return r.f, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error {
			if r.ending || r.f.Status.Terminal() {
				return finished()
			}
			return nil
		}},
	)
	if err != nil {
		return fmt.Errorf("set cancel handler: %w", err)
	}
	return nil
}

// versionLean marks flows with the lean shape (see the comment at the top
// of this file); histories before it record starting, poll with timers and
// start a NotifyApp workflow per event.
const versionLean = "lean-flow"

func (r *flowRun) run() {
	var ch flow.Challenge
	var ferr *flow.Error
	if r.in.Challenge != nil || r.in.StartError != nil {
		// Decided by the input, which older histories never carry: no
		// version marker needed.
		r.lean, r.started = true, true
		if r.in.Challenge != nil {
			ch = *r.in.Challenge
		} else {
			ferr = r.in.StartError
		}
	} else {
		r.lean = workflow.GetVersion(r.ctx, versionLean, workflow.DefaultVersion, 1) >= 1
		if !r.lean {
			r.record(r.f)
		}
		ch, ferr = createChallenge(r.ctx, r.logger, &r.f, r.in.PlanbokDeadline, false, r.lean)
	}
	if ferr == nil {
		setChallenge(r.ctx, &r.f, ch)
	}
	switch {
	case r.ctx.Err() != nil || r.cancelRequested:
		r.end(flow.StatusCancelled, cancelledError())
		return
	case ferr != nil:
		r.end(flow.StatusFailed, ferr)
		return
	}

	if r.started {
		// The customer workflow recorded this status.
		r.f.Status = flow.StatusAwaitingUser
	} else {
		r.moveTo(flow.StatusAwaitingUser, nil)
	}
	var status flow.Status
	if r.lean {
		status, ferr = r.waitLean()
	} else {
		status, ferr = r.wait()
	}
	r.end(status, ferr)
}

// createChallenge runs CreateChallenge once (with its retries) for f,
// within what the start's Planbok budget left after Preflight (until
// deadline): by startCall for a lean customer's start (started), as a
// local activity in lean flows (local), else as an activity.
func createChallenge(ctx workflow.Context, logger log.Logger, f *flow.Flow, deadline time.Time, started, local bool) (flow.Challenge, *flow.Error) {
	in := flow.CreateChallengeInput{
		FlowID:         f.ID,
		CustomerID:     f.CustomerID,
		Kind:           f.Kind,
		RedirectURL:    f.RedirectURL,
		Blockchains:    f.Blockchains,
		IdempotencyKey: challengeKey(f.ID),
	}
	var ch flow.Challenge
	var err error
	if started {
		err = startCall(ctx, flow.ActivityCreateChallenge, in, deadline, &ch)
	} else {
		err = execute(ctx, local, startPlanbokOptions(ctx, deadline), flow.ActivityCreateChallenge, in).Get(ctx, &ch)
	}
	if err != nil {
		ferr := activityError(err)
		logger.Warn("Create challenge failed.", "code", string(ferr.Code), "error", err)
		return ch, ferr
	}
	if ch.ID == "" {
		logger.Error("Create challenge returned no challenge id.")
		return ch, flow.Errorf(flow.CodePlanbokRejected, "Planbok returned a challenge without an id.")
	}
	return ch, nil
}

// setChallenge copies the challenge into f; a challenge without expiresAt
// is taken to live DefaultChallengeTTL.
func setChallenge(ctx workflow.Context, f *flow.Flow, ch flow.Challenge) {
	f.ChallengeID = ch.ID
	f.GatewayURL = ch.GatewayURL
	expires := ch.ExpiresAt.UTC()
	if ch.ExpiresAt.IsZero() {
		expires = workflow.Now(ctx).Add(DefaultChallengeTTL)
	}
	f.ExpiresAt = &expires
}

// wait waits for the challenge to end, and returns the flow's final status
// and error.
func (r *flowRun) wait() (flow.Status, *flow.Error) {
	ctx, cancelTimers := workflow.WithCancel(r.ctx)
	defer cancelTimers()

	untilExpiry := r.f.ExpiresAt.Sub(workflow.Now(ctx))
	if untilExpiry < time.Second {
		untilExpiry = time.Second
	}
	expiry := workflow.NewTimerWithOptions(ctx, untilExpiry, workflow.TimerOptions{Summary: "challenge expiry"})
	delay := PollFirst
	poll := workflow.NewTimerWithOptions(ctx, delay, workflow.TimerOptions{Summary: "poll"})

	for {
		if r.ctx.Err() != nil {
			// The workflow itself was cancelled (an operator, not the API).
			return flow.StatusCancelled, cancelledError()
		}
		var check, expired, cancelled bool
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(r.events, func(c workflow.ReceiveChannel, _ bool) {
			check = r.takeEvents(c)
		})
		sel.AddReceive(r.cancelCh, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			cancelled = true
		})
		sel.AddFuture(poll, func(f workflow.Future) {
			if f.Get(ctx, nil) != nil {
				return // cancelled
			}
			check = true
			delay = nextPoll(delay)
			poll = workflow.NewTimerWithOptions(ctx, delay, workflow.TimerOptions{Summary: "poll"})
		})
		sel.AddFuture(expiry, func(f workflow.Future) { expired = f.Get(ctx, nil) == nil })
		sel.Select(ctx)

		switch {
		case cancelled:
			return flow.StatusCancelled, cancelledError()
		case expired:
			// A late completion still counts.
			if status, ferr, done := r.check(); done {
				return status, ferr
			}
			return flow.StatusExpired, expiredError()
		case check:
			if status, ferr, done := r.check(); done {
				return status, ferr
			}
		}
	}
}

// waitLean is wait for lean flows: the polls are the attempts of one
// AwaitChallenge activity (see PollSchedule), which times out at the
// challenge's expiry; a webhook triggers a read at once.
func (r *flowRun) waitLean() (flow.Status, *flow.Error) {
	ctx, stop := workflow.WithCancel(r.ctx)
	// Cancels the poll when the flow ends another way.
	defer stop()

	untilExpiry := func() time.Duration {
		d := r.f.ExpiresAt.Sub(workflow.Now(ctx))
		if d < time.Second {
			d = time.Second
		}
		return d
	}
	in := flow.GetChallengeInput{CustomerID: r.f.CustomerID, ChallengeID: r.f.ChallengeID}
	opts := pollOptions(workflow.GetInfo(ctx).TaskQueueName, untilExpiry())
	poll := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), flow.ActivityAwaitChallenge, in)
	// expiry is a timer to the challenge's expiry, used only when the poll
	// stopped early (a final error): the flow then waits for webhooks.
	var expiry workflow.Future

	for {
		if r.ctx.Err() != nil {
			return flow.StatusCancelled, cancelledError()
		}
		var check, expired, cancelled bool
		var polled *flow.ChallengeStatus
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(r.events, func(c workflow.ReceiveChannel, _ bool) {
			check = r.takeEvents(c)
		})
		sel.AddReceive(r.cancelCh, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			cancelled = true
		})
		if poll != nil {
			sel.AddFuture(poll, func(f workflow.Future) {
				poll = nil
				var st flow.ChallengeStatus
				err := f.Get(ctx, &st)
				var te *temporal.TimeoutError
				switch {
				case err == nil:
					polled = &st
				case ctx.Err() != nil:
					// Cancelled with the workflow.
				case errors.As(err, &te):
					expired = true
				default:
					r.logger.Warn("Polling the challenge stopped; waiting for webhooks until it expires.", "error", err)
					expiry = workflow.NewTimerWithOptions(ctx, untilExpiry(), workflow.TimerOptions{Summary: "challenge expiry"})
				}
			})
		}
		if expiry != nil {
			sel.AddFuture(expiry, func(f workflow.Future) { expired = f.Get(ctx, nil) == nil })
		}
		sel.Select(ctx)

		switch {
		case cancelled:
			return flow.StatusCancelled, cancelledError()
		case polled != nil:
			if status, ferr, done := r.statusOf(*polled); done {
				return status, ferr
			}
			// Not an end (AwaitChallenge ends only on one): wait for
			// webhooks until the expiry.
			if expiry == nil {
				expiry = workflow.NewTimerWithOptions(ctx, untilExpiry(), workflow.TimerOptions{Summary: "challenge expiry"})
			}
		case expired:
			// A late completion still counts.
			if status, ferr, done := r.check(); done {
				return status, ferr
			}
			return flow.StatusExpired, expiredError()
		case check:
			if status, ferr, done := r.check(); done {
				return status, ferr
			}
		}
	}
}

// takeEvents drains the challenge-event channel and reports whether any
// event asks for a fresh read: events for other challenges and webhooks
// already acted on change nothing.
func (r *flowRun) takeEvents(c workflow.ReceiveChannel) bool {
	wake := false
	for {
		var ev flow.ChallengeEvent
		if !c.ReceiveAsync(&ev) {
			return wake
		}
		switch {
		case ev.ChallengeID != r.f.ChallengeID:
			r.logger.Info("Ignoring an event for another challenge.", "event", ev.Event, "webhookId", ev.WebhookID)
		case ev.WebhookID != "" && r.seen[ev.WebhookID]:
			r.logger.Info("Ignoring a duplicate event.", "event", ev.Event, "webhookId", ev.WebhookID)
		default:
			if ev.WebhookID != "" {
				r.seen[ev.WebhookID] = true
			}
			wake = true
		}
	}
}

// check reads the challenge at Planbok. done reports whether the challenge
// ended; a failed read is logged and the flow keeps waiting.
func (r *flowRun) check() (status flow.Status, ferr *flow.Error, done bool) {
	in := flow.GetChallengeInput{CustomerID: r.f.CustomerID, ChallengeID: r.f.ChallengeID}
	var st flow.ChallengeStatus
	// In lean flows a local activity: a person may be waiting for the
	// result, and webhooks are bounded by completions, not by waiting
	// flows, so this read stays outside the poll queue's budget.
	if err := execute(r.ctx, r.lean, getChallengeOptions(), flow.ActivityGetChallenge, in).Get(r.ctx, &st); err != nil {
		r.logger.Warn("Reading the challenge failed; waiting for the next poll.", "error", err)
		return "", nil, false
	}
	return r.statusOf(st)
}

// statusOf maps a challenge status to the flow's end; done is false while
// the challenge is pending (or its status unknown).
func (r *flowRun) statusOf(st flow.ChallengeStatus) (status flow.Status, ferr *flow.Error, done bool) {
	switch st.Status {
	case "verified":
		return flow.StatusCompleted, nil, true
	case "failed":
		return flow.StatusFailed, flow.Errorf(flow.CodeChallengeFailed, "The user did not complete the challenge: Planbok reports it failed."), true
	case flow.ChallengeGone:
		return flow.StatusExpired, expiredError(), true
	case "pending":
		return "", nil, false
	}
	r.logger.Warn("Unknown challenge status; waiting.", "status", st.Status)
	return "", nil, false
}

func expiredError() *flow.Error {
	return flow.Errorf(flow.CodeChallengeExpired, "The challenge expired before the user completed it.")
}

func cancelledError() *flow.Error {
	return flow.Errorf(flow.CodeCancelled, "The flow was cancelled.")
}

// end moves the flow to its terminal status and does what follows: the
// customer's new security status, the audit row and the app's events.
func (r *flowRun) end(status flow.Status, ferr *flow.Error) {
	if r.lean {
		r.endLean(status, ferr)
		return
	}
	r.ending = true
	if r.ctx.Err() != nil {
		// The workflow was cancelled: finish the bookkeeping anyway.
		r.ctx, _ = workflow.NewDisconnectedContext(r.ctx)
	}
	at := workflow.Now(r.ctx)
	var res flow.SyncCustomerResult
	if status == flow.StatusCompleted {
		// Sync first, so that when the store shows the flow completed it
		// also shows the security status the flow produced.
		res = r.sync(flow.SyncCustomerInput{CustomerID: r.f.CustomerID, Kind: r.f.Kind, FlowID: r.f.ID, At: at})
	}
	// completedAt is when the flow ended, whatever the end (API.md): the
	// same in the store's rows and in the workflow's own view.
	r.f.CompletedAt = &at
	r.moveTo(status, ferr)
	r.logger.Info("Flow ended.", "flow", r.def.Summary, "status", string(status))
	r.audit()
	if status != flow.StatusCompleted {
		// No Kind: nothing was set up, but a failed challenge may have
		// locked the customer out (the fifth wrong PIN), and the app's
		// event carries the current security status.
		res = r.sync(flow.SyncCustomerInput{CustomerID: r.f.CustomerID, FlowID: r.f.ID, At: at})
	}

	event := flow.TerminalEventType(status)
	if status == flow.StatusCompleted {
		event = r.f.Kind.EventType()
	}
	r.notify(event, res.Security)
	if flow.StartsExportHold(r.f.Kind, status, res.Security) &&
		workflow.GetVersion(r.ctx, versionExportHoldEvent, workflow.DefaultVersion, 1) == 1 {
		r.notify(flow.EventExportHoldStarted, res.Security)
	}
	if res.LockedOutNow {
		r.notify(flow.EventLockedOut, res.Security)
	}
}

// endLean is end for lean flows. The sync runs first whatever the status,
// in the same workflow task as the read that decided the end; the slot is
// freed, then the end recorded with its audit row (one workflow task), then
// the app's events delivered by the flow itself.
func (r *flowRun) endLean(status flow.Status, ferr *flow.Error) {
	r.ending = true
	if r.ctx.Err() != nil {
		// The workflow was cancelled: finish the bookkeeping anyway.
		r.ctx, _ = workflow.NewDisconnectedContext(r.ctx)
	}
	at := workflow.Now(r.ctx)
	in := flow.SyncCustomerInput{CustomerID: r.f.CustomerID, FlowID: r.f.ID, At: at}
	if status == flow.StatusCompleted {
		// Kind sets the timestamp the flow produced; other ends set none,
		// but a failed challenge may have locked the customer out (the
		// fifth wrong PIN), and the app's event carries the security status.
		in.Kind = r.f.Kind
	}
	// completedAt is when the flow ended, whatever the end (API.md).
	r.f.CompletedAt = &at
	res := r.sync(in)
	r.moveTo(status, ferr)
	r.logger.Info("Flow ended.", "flow", r.def.Summary, "status", string(status))
	r.audit()

	event := flow.TerminalEventType(status)
	if status == flow.StatusCompleted {
		event = r.f.Kind.EventType()
	}
	events := []flow.EventType{event}
	if flow.StartsExportHold(r.f.Kind, status, res.Security) {
		events = append(events, flow.EventExportHoldStarted)
	}
	if res.LockedOutNow {
		events = append(events, flow.EventLockedOut)
	}
	r.deliver(events, res.Security)
}

// deliver sends the app's events, each by a DeliverEvent activity retried
// for deliverTimeout (at least three days), and waits for them all: the
// workflow must stay open for its activities to keep retrying. The flow has
// already freed the customer's slot and recorded its end, so a dead notify
// URL only keeps this workflow open.
func (r *flowRun) deliver(events []flow.EventType, sec flow.Security) {
	var ins []flow.DeliverEventInput
	for _, event := range events {
		if event != "" {
			ins = append(ins, flow.DeliverEventInput{ID: r.f.ID + "." + string(event), Event: r.appEvent(event, sec)})
		}
	}
	if r.started {
		ins = r.deliverNow(ins)
	}
	ctx := workflow.WithActivityOptions(r.ctx, deliverOptions())
	futs := make([]workflow.Future, len(ins))
	for i, in := range ins {
		futs[i] = workflow.ExecuteActivity(ctx, flow.ActivityDeliverEvent, in)
	}
	for i, f := range futs {
		if err := f.Get(ctx, nil); err != nil {
			r.logger.Error("The app never accepted an event.", "eventId", ins[i].ID, "error", err)
		}
	}
}

// deliverNow tries each event once, at once, as local activities of the
// workflow task that ended the flow, and returns those the app did not
// take: an app that answers within deliverNowTimeout costs no activity
// task and no further workflow task. The rest are retried by DeliverEvent
// activities for deliverTimeout; an app that refused one for good (410)
// is not asked again.
func (r *flowRun) deliverNow(ins []flow.DeliverEventInput) []flow.DeliverEventInput {
	ctx := workflow.WithLocalActivityOptions(r.ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: deliverNowTimeout,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	futs := make([]workflow.Future, len(ins))
	for i, in := range ins {
		futs[i] = workflow.ExecuteLocalActivity(ctx, flow.ActivityDeliverEvent, in)
	}
	var rest []flow.DeliverEventInput
	for i, f := range futs {
		err := f.Get(ctx, nil)
		var ae *temporal.ApplicationError
		switch {
		case err == nil:
		case errors.As(err, &ae) && ae.NonRetryable():
			r.logger.Error("The app refused an event for good.", "eventId", ins[i].ID, "error", err)
		default:
			rest = append(rest, ins[i])
		}
	}
	return rest
}

// deliverNowTimeout bounds the first, local attempt to deliver an app event.
const deliverNowTimeout = 5 * time.Second

func (r *flowRun) appEvent(event flow.EventType, sec flow.Security) flow.AppEvent {
	return flow.AppEvent{
		Type:      event,
		Timestamp: workflow.Now(r.ctx),
		Data: flow.AppEventData{
			CustomerID: r.f.CustomerID,
			FlowID:     r.f.ID,
			Kind:       r.f.Kind,
			Status:     r.f.Status,
			Security:   sec,
		},
	}
}

// moveTo records the flow in status next (status only moves forward), then
// tells the customer workflow.
func (r *flowRun) moveTo(next flow.Status, ferr *flow.Error) {
	if !r.f.Status.CanMoveTo(next) {
		r.logger.Error("Refusing a backward status change.", "from", string(r.f.Status), "to", string(next))
		return
	}
	f := r.f
	f.Status = next
	f.UpdatedAt = workflow.Now(r.ctx)
	f.Error = ferr
	if next.Terminal() && (r.lean || workflow.GetVersion(r.ctx, versionFreeSlotFirst, workflow.DefaultVersion, 1) == 1) {
		// Free the customer's slot before anyone can see the flow ended
		// (query or store): a start that follows a "completed" read must
		// not be refused with flow_in_progress.
		r.signalParent(f)
		r.f = f
		r.record(f)
		return
	}
	r.record(f)
	r.f = f
	r.signalParent(f)
}

// versionFreeSlotFirst marks flows that signal the customer workflow before
// recording their end (histories before it recorded first).
const versionFreeSlotFirst = "free-slot-before-recording-end"

// versionExportHoldEvent marks flows that send customer.export_hold_started
// after a completed reset under an export hold.
const versionExportHoldEvent = "export-hold-started-event"

// record writes f to the store's flow index.
func (r *flowRun) record(f flow.Flow) {
	in := flow.RecordFlowInput{Flow: f, IdempotencyKey: r.in.IdempotencyKey, RequestHash: r.in.RequestHash}
	if err := r.storeWrite(flow.ActivityRecordFlow, in); err != nil {
		// Only a non-retryable error (a bug) gets here; the flow goes on.
		r.logger.Error("Recording the flow failed.", "status", string(f.Status), "error", err)
	}
}

// storeWrite runs a store-writing activity, locally in lean flows.
func (r *flowRun) storeWrite(name string, in any) error {
	return execute(r.ctx, r.lean, storeOptions(), name, in).Get(r.ctx, nil)
}

// signalParent sends the flow to its customer workflow. A customer
// workflow that no longer runs needs no news.
func (r *flowRun) signalParent(f flow.Flow) {
	if r.in.CustomerWorkflowID == "" || r.started {
		return
	}
	err := workflow.SignalExternalWorkflow(r.ctx, r.in.CustomerWorkflowID, "", flow.SignalFlowChanged, f).Get(r.ctx, nil)
	if err != nil {
		r.logger.Info("Signalling the customer workflow failed.", "error", err)
	}
}

func (r *flowRun) audit() {
	detail := ""
	if r.f.Error != nil {
		detail = string(r.f.Error.Code)
	}
	actor := r.in.Actor
	if actor == "" {
		actor = "system"
	}
	in := flow.AuditInput{
		At:         r.f.UpdatedAt,
		Actor:      actor,
		Action:     "flow." + string(r.f.Kind),
		CustomerID: r.f.CustomerID,
		FlowID:     r.f.ID,
		Outcome:    string(r.f.Status),
		Detail:     detail,
	}
	if r.started {
		// The end's local activities run again when the task that ran
		// them is retried (events that came meanwhile refuse its
		// completion): one row all the same.
		in.DedupeKey = r.f.ID + ".end"
	}
	if err := r.storeWrite(flow.ActivityRecordAudit, in); err != nil {
		r.logger.Error("Recording the audit row failed.", "error", err)
	}
}

// sync re-reads the customer. When Planbok stays unavailable past
// syncTimeout it gives up: the flow still ends, and the next sync corrects
// the stored status.
func (r *flowRun) sync(in flow.SyncCustomerInput) flow.SyncCustomerResult {
	var res flow.SyncCustomerResult
	if err := execute(r.ctx, r.lean, syncOptions(), flow.ActivitySyncCustomer, in).Get(r.ctx, &res); err != nil {
		r.logger.Warn("Syncing the customer failed; the flow ends anyway.", "error", err)
		return flow.SyncCustomerResult{}
	}
	return res
}

func (r *flowRun) notify(event flow.EventType, sec flow.Security) {
	if event == "" {
		return
	}
	startNotify(r.ctx, r.logger, "", r.f.ID+"."+string(event), r.appEvent(event, sec))
}

// startNotify starts the NotifyApp workflow that delivers one event, and
// waits only until it has started: a dead notify URL never blocks the
// caller. The workflow id comes from the event id, so a second start of the
// same event is refused by Temporal, which is fine.
// taskQueue "" is the caller's own queue.
func startNotify(ctx workflow.Context, logger log.Logger, taskQueue, eventID string, ev flow.AppEvent) {
	opts := workflow.ChildWorkflowOptions{
		WorkflowID:            flow.NotifyWorkflowID(eventID),
		TaskQueue:             taskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}
	in := flow.DeliverEventInput{ID: eventID, Event: ev}
	fut := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, opts), flow.WorkflowNotifyApp, in)
	err := fut.GetChildWorkflowExecution().Get(ctx, nil)
	switch {
	case err == nil:
	case temporal.IsWorkflowExecutionAlreadyStartedError(err):
		logger.Info("App event already sent.", "eventId", eventID)
	default:
		logger.Error("Starting the app event delivery failed.", "eventId", eventID, "error", err)
	}
}
