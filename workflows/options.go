package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

// Activity options, one set per kind of work. Each is deliberate: a change
// here changes how long users and the API wait when a dependency fails.

// retryableCodes are the failure types activities use for errors worth
// retrying (429, 5xx, network, timeouts). Every other flow.Code is final.
var retryableCodes = []flow.Code{flow.CodePlanbokUnavailable, flow.CodeRateLimited, flow.CodeInternal}

// finalCodes lists every flow.Code except retryableCodes, so a coded
// activity failure is never retried even if an activity forgets to mark it
// non-retryable.
func finalCodes() []string {
	var out []string
	for _, c := range flow.Codes {
		retryable := false
		for _, r := range retryableCodes {
			if c == r {
				retryable = true
			}
		}
		if !retryable {
			out = append(out, string(c))
		}
	}
	return out
}

// PlanbokCallLimit bounds Preflight and CreateChallenge, all attempts
// included. A start waits for both, one after the other, so twice this must
// stay within the API's request timeout: a Planbok that fails or hangs then
// becomes planbok_unavailable (502), never a timed-out request (503).
const PlanbokCallLimit = 12 * time.Second

// planbokOptions is for Preflight and CreateChallenge, which an API caller
// waits for: up to five attempts of 5 s with 0.5, 1, 2, 4 s of backoff,
// within PlanbokCallLimit.
func planbokOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    5 * time.Second,
		ScheduleToCloseTimeout: PlanbokCallLimit,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        4 * time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: finalCodes(),
		},
	}
}

// getChallengeOptions is for GetChallenge. A failed read never ends a
// flow: the next poll tries again, so a few quick attempts suffice.
func getChallengeOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        2 * time.Second,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: finalCodes(),
		},
	}
}

// syncTimeout bounds SyncCustomer's retries: after a verified challenge the
// customer's new security status is worth waiting for, but not forever; a
// flow whose sync gives up still ends (the next sync corrects the store).
const syncTimeout = time.Hour

// syncOptions is for SyncCustomer: retried with backoff (capped at 5 min)
// for up to syncTimeout.
func syncOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: syncTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Minute,
			NonRetryableErrorTypes: finalCodes(),
		},
	}
}

// storeOptions is for RecordFlow and RecordAudit, writes to the app's own
// database: retried without limit (capped at 30 s apart), because a flow
// whose row is not written is invisible to the API.
func storeOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	}
}

// deliverTimeout is how long an event's delivery keeps retrying: API.md §4
// promises at least three days. Lean flows run DeliverEvent themselves and
// stay open until it is delivered or this passes (the customer's slot is
// freed before); older flows started a NotifyApp workflow per event.
const deliverTimeout = 73 * time.Hour

// deliverOptions is for DeliverEvent: backoff from 1 s doubling to 1 h,
// unlimited attempts within deliverTimeout.
func deliverOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: deliverTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Hour,
		},
	}
}

// PollSchedule is how a flow polls Planbok for its challenge's status, since
// Planbok documents no webhook for several flows and webhooks may be lost.
//
// Flows recorded before versionLean poll with timers: first after PollFirst,
// then doubling up to PollMax (2, 4, 8, 16, 30, 30 … seconds).
//
// Lean flows run one AwaitChallenge activity whose retry policy is the
// schedule (pollOptions): attempts at 0, 2, 6, 14, 30, 62, 126, 254 s, then
// every PollLeanMax (494, 734 … s) until the challenge expires. Each poll is
// one attempt: no timer, no history event. It is quick while the person is
// likely still on the Gateway (the first minute: gaps of at most 32 s) and
// sparse after, so a 15-minute challenge left untouched costs 10 polls, not
// 34. Without webhooks, a completion is seen at the next attempt: at worst
// PollLeanMax later (PollWorstDelay), plus the wait for the poll queue's
// rate budget when more than PollsPerSecond × PollLeanMax flows wait at once.
// A webhook triggers an extra read at once.
const (
	PollFirst = 2 * time.Second
	PollMax   = 30 * time.Second

	// PollLeanFirst, PollLeanBackoff and PollLeanMax shape the retry
	// policy of a lean flow's AwaitChallenge.
	PollLeanFirst   = 2 * time.Second
	PollLeanBackoff = 2.0
	PollLeanMax     = 4 * time.Minute
	// PollWorstDelay is the longest a completion waits for a poll when no
	// webhook comes (and the poll queue has no backlog).
	PollWorstDelay = PollLeanMax
)

// LegacyPolls returns when a flow recorded before versionLean polls, as
// offsets from awaiting_user, within ttl (for benchmarks and docs).
func LegacyPolls(ttl time.Duration) []time.Duration {
	var out []time.Duration
	for at, d := PollFirst, PollFirst; at < ttl; d = nextPoll(d) {
		out = append(out, at)
		at += nextPoll(d)
	}
	return out
}

// nextPoll returns the poll delay after d (flows before versionLean).
func nextPoll(d time.Duration) time.Duration {
	if d *= 2; d > PollMax {
		return PollMax
	}
	return d
}

// pollOptions is for a lean flow's AwaitChallenge: on the poll task queue
// (rate-limited for the whole deployment, see flow.PollTaskQueue), retried
// on the poll schedule until the challenge's expiry, when the activity
// times out and the flow reads the challenge one last time.
func pollOptions(taskQueue string, untilExpiry time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		TaskQueue:              flow.PollTaskQueue(taskQueue),
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: untilExpiry,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        PollLeanFirst,
			BackoffCoefficient:     PollLeanBackoff,
			MaximumInterval:        PollLeanMax,
			NonRetryableErrorTypes: finalCodes(),
		},
	}
}

// PollAttempts returns when AwaitChallenge's attempts start, as offsets
// from the first, within ttl: what pollOptions' retry policy does, for
// tests, benchmarks and docs.
func PollAttempts(ttl time.Duration) []time.Duration {
	out := []time.Duration{0}
	at, d := time.Duration(0), PollLeanFirst
	for {
		at += min(d, PollLeanMax)
		if at >= ttl {
			return out
		}
		out = append(out, at)
		d = min(time.Duration(float64(d)*PollLeanBackoff), PollLeanMax)
	}
}

// Local activity options for lean flows. Store writes and reads a person
// waits for run as local activities: no activity task round trip through
// the server, and all local activities of one workflow task cost one
// history marker each and one billed action together.

// localOptions turns activity options into local activity options with the
// same timeouts and retries. For store writes that means retried without
// limit; backoffs past a minute become workflow timers (the SDK's local
// retry threshold).
func localOptions(o workflow.ActivityOptions) workflow.LocalActivityOptions {
	return workflow.LocalActivityOptions{
		StartToCloseTimeout: o.StartToCloseTimeout, ScheduleToCloseTimeout: o.ScheduleToCloseTimeout, RetryPolicy: o.RetryPolicy,
	}
}

// execute runs activity name with opts: as a local activity with the same
// timeouts and retries when local is set (the lean shapes), else as an
// activity (histories recorded before them).
func execute(ctx workflow.Context, local bool, opts workflow.ActivityOptions, name string, in any) workflow.Future {
	if local {
		return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, localOptions(opts)), name, in)
	}
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), name, in)
}

// DefaultChallengeTTL is assumed when Planbok returns a challenge without
// expiresAt (Planbok's challenges live 15 minutes).
const DefaultChallengeTTL = 15 * time.Minute

// DefaultIdleTimeout is how long a customer workflow stays open with nothing
// to do before it completes (flow.CustomerInput.IdleTimeout overrides it).
const DefaultIdleTimeout = time.Hour

// maxStartsPerRun bounds a customer workflow's history: after this many
// handled starts it continues as new at the next idle moment.
const maxStartsPerRun = 200

// maxRecentKeys is how many idempotency keys continue-as-new carries.
const maxRecentKeys = 100
