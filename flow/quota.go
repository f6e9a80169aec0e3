package flow

import "time"

// Quota is the per-customer start quota: a token bucket of Burst starts
// that refills one start every Every. The zero Quota is no quota.
type Quota struct {
	Every time.Duration `json:"every,omitempty"`
	Burst int           `json:"burst,omitempty"`
}

// Off reports whether q limits nothing.
func (q Quota) Off() bool { return q.Every <= 0 || q.Burst <= 0 }

// QuotaBucket is the state of a customer's start quota. The customer
// workflow keeps it and carries it across continue-as-new. It counts in
// whole nanoseconds of workflow time, so the arithmetic replays exactly and
// has no rounding at the edges.
type QuotaBucket struct {
	// Debt is how long the bucket needs, from At, to be full again: each
	// start adds Every, time pays it off.
	Debt time.Duration `json:"debt,omitempty"`
	At   time.Time     `json:"at,omitzero"`
	// Limit is the quota of the last start taken; Full refills under it.
	Limit Quota `json:"limit,omitzero"`
}

// refilled returns the bucket at now.
func (b QuotaBucket) refilled(now time.Time) QuotaBucket {
	if elapsed := now.Sub(b.At); elapsed > 0 {
		b.Debt -= elapsed
	}
	b.At = now
	b.Debt = max(b.Debt, 0)
	return b
}

// Wait returns how long, from now, until the bucket has a start to give
// under q: 0 when it has one now.
func (b QuotaBucket) Wait(q Quota, now time.Time) time.Duration {
	if q.Off() {
		return 0
	}
	b = b.refilled(now)
	return max(0, b.Debt+q.Every-time.Duration(q.Burst)*q.Every)
}

// Take returns the bucket after one start at now under q. It does not
// check Wait: the caller does, before it creates the flow.
func (b QuotaBucket) Take(q Quota, now time.Time) QuotaBucket {
	if q.Off() {
		return QuotaBucket{}
	}
	b = b.refilled(now)
	b.Debt += q.Every
	b.Limit = q
	return b
}

// Full returns how long, from now, until the bucket is full again: after
// that it is indistinguishable from a new one, so its owner may forget it.
func (b QuotaBucket) Full(now time.Time) time.Duration {
	return b.refilled(now).Debt
}
