package api

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// quota is the per-customer start quota: one token bucket per customer.
// Memory stays bounded: a limiter idle long enough to have refilled
// completely is indistinguishable from a new one, so sweeping it loses
// nothing; a hard cap bounds the map even under a flood of customer ids.
type quota struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	limiters  map[string]*quotaEntry
	lastSweep time.Time
}

type quotaEntry struct {
	lim      *rate.Limiter
	lastUsed time.Time
}

const (
	quotaSweepEvery = time.Minute
	quotaMaxEntries = 100_000
)

func newQuota(limit rate.Limit, burst int) *quota {
	return &quota{limit: limit, burst: burst, limiters: map[string]*quotaEntry{}}
}

// take takes one start from customerID's bucket at now. When the bucket is
// empty it takes nothing and returns how long until a start is allowed.
// refund gives the start back when it created nothing (the active flow
// answered again, a refusal): only new flows count against the quota.
func (q *quota) take(customerID string, now time.Time) (refund func(), ok bool, retryAfter time.Duration) {
	if q.limit == rate.Inf {
		return func() {}, true, 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sweep(now)
	e := q.limiters[customerID]
	if e == nil {
		e = &quotaEntry{lim: rate.NewLimiter(q.limit, q.burst)}
		q.limiters[customerID] = e
	}
	e.lastUsed = now
	r := e.lim.ReserveN(now, 1)
	if !r.OK() {
		return nil, false, time.Hour
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now) // give the token back: this start is refused
		return nil, false, d
	}
	// Cancelling at the reservation's own time restores its token.
	return func() { r.CancelAt(now) }, true, 0
}

// sweep drops limiters that have refilled completely. Callers hold q.mu.
func (q *quota) sweep(now time.Time) {
	if now.Sub(q.lastSweep) < quotaSweepEvery && len(q.limiters) < quotaMaxEntries {
		return
	}
	q.lastSweep = now
	refill := q.refillTime()
	for id, e := range q.limiters {
		if now.Sub(e.lastUsed) >= refill {
			delete(q.limiters, id)
		}
	}
	// Still over the cap: drop arbitrary entries. Those customers get a
	// fresh bucket, which errs on the side of allowing starts.
	for id := range q.limiters {
		if len(q.limiters) < quotaMaxEntries {
			break
		}
		delete(q.limiters, id)
	}
}

// refillTime is how long an empty bucket takes to fill up.
func (q *quota) refillTime() time.Duration {
	if q.limit <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(float64(q.burst) / float64(q.limit) * float64(time.Second))
}

func (q *quota) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.limiters)
}

// retryAfterSeconds rounds d up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}
