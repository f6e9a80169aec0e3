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

// deliverTimeout is how long NotifyApp keeps retrying one event: API.md §4
// promises at least three days.
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
// Planbok documents no webhook for several flows and webhooks may be lost:
// first after PollFirst, then doubling up to PollMax (2, 4, 8, 16, 30, 30 …
// seconds), until the challenge ends or expires. A webhook signal triggers
// an extra read but does not reset the schedule.
const (
	PollFirst = 2 * time.Second
	PollMax   = 30 * time.Second
)

// nextPoll returns the poll delay after d.
func nextPoll(d time.Duration) time.Duration {
	if d *= 2; d > PollMax {
		return PollMax
	}
	return d
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
