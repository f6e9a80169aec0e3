package flow

import (
	"fmt"
	"time"
)

// The time budget of a start. One number, StartTimeout, is how long a
// start may take from the API's point of view; everything else derives
// from it, so the parts cannot drift apart:
//
//	StartTimeout (API request)      30 s
//	├─ StartAdmitTimeout             5 s  Temporal must accept the start-flow update
//	└─ StartPlanbokBudget           24 s  every Planbok call of the start, retries included
//	   (StartTimeout − StartReserve)       Preflight, then CreateChallenge, each attempt
//	                                       at most PlanbokAttemptTimeout
//
// The reserve covers the Temporal round trips and store writes around the
// Planbok calls. Because the Planbok budget ends before the request does,
// a Planbok that keeps failing or hangs answers 502 planbok_unavailable
// from the workflow, never a timed-out request (503); and a start the
// workflow keeps working on after the API gave up is still counted by the
// workflow's quota, never refunded.
const (
	// StartTimeout is the API's time limit for a start request.
	StartTimeout = 30 * time.Second
	// StartReserve is the part of StartTimeout kept for Temporal and the
	// store.
	StartReserve = 6 * time.Second
	// StartPlanbokBudget bounds the Planbok calls of one start, retries
	// included, counted from when the customer workflow receives it.
	StartPlanbokBudget = StartTimeout - StartReserve
	// StartAdmitTimeout bounds how long the API waits for Temporal to
	// accept a start: an unreachable Temporal, or no worker on the task
	// queue, answers 503 temporal_unavailable within it instead of holding
	// the caller for the whole StartTimeout.
	StartAdmitTimeout = 5 * time.Second
	// PlanbokAttemptTimeout bounds one attempt of a Planbok call.
	PlanbokAttemptTimeout = 5 * time.Second
	// MinPlanbokBudget is the least budget worth starting a Planbok call
	// with; a start left with less (it waited behind another start of the
	// same customer) answers planbok_unavailable at once.
	MinPlanbokBudget = time.Second
)

// PlanbokBudget returns the Planbok budget of a start whose API request
// has remaining time left (0 = unknown): StartPlanbokBudget, or less when
// the request has less time than StartTimeout (a shorter configured
// request timeout), keeping StartReserve for Temporal, and never less
// than MinPlanbokBudget.
func PlanbokBudget(remaining time.Duration) time.Duration {
	if remaining <= 0 {
		return StartPlanbokBudget
	}
	return max(MinPlanbokBudget, min(StartPlanbokBudget, remaining-StartReserve))
}

// Planbok's rate limits per organisation (planbok-notes.md), and how one
// deployment shares its reads. Polls and the reconciler run on task queues
// of their own whose activity rate the Temporal server caps for every
// worker at once (--poll-rate, --reconcile-rate); starts are never capped
// by custodyflows, and their reads (Preflight, the syncs after a flow)
// keep StartReadsReserved per second to themselves, so however many flows
// wait, a start's read never waits behind a poll. A start past Planbok's
// limits (10 POST/s) is retried within its budget (StartPlanbokBudget).
const (
	PlanbokReadsPerSecond = 20
	// StartReadsReserved is the part of PlanbokReadsPerSecond the capped
	// readers (polls and the reconciler together) must leave free.
	StartReadsReserved = 5
)

// CheckReadBudget reports whether polls at pollRate and the reconciler at
// reconcileRate (reads per second each) leave StartReadsReserved of
// Planbok's reads to starts.
func CheckReadBudget(pollRate, reconcileRate float64) error {
	if used := pollRate + reconcileRate; used > PlanbokReadsPerSecond-StartReadsReserved {
		return fmt.Errorf("polls (%g/s) and the reconciler (%g/s) would take %g of Planbok's %d reads per second, leaving starts less than %d/s: lower --poll-rate or --reconcile-rate",
			pollRate, reconcileRate, used, PlanbokReadsPerSecond, StartReadsReserved)
	}
	return nil
}
