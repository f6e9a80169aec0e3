package flow

import "time"

// Standing is what the rules need to know about a customer, read from
// Planbok's current record.
type Standing struct {
	HasPIN      bool
	HasRecovery bool
	LockedOut   bool
}

// CanTransact is Planbok's rule: no wallets and no signing before recovery
// setup, and none while locked out.
func (s Standing) CanTransact() bool { return s.HasPIN && s.HasRecovery && !s.LockedOut }

// Check applies the precondition rules of API.md §2 for starting a flow of
// kind k, as its Spec's Needs say. It returns nil when the flow may start,
// or an *Error with the refusing rule's code. pin_required is always
// checked before recovery_required, and both before customer_locked_out.
func Check(k Kind, s Standing) *Error {
	spec, ok := SpecOf(k)
	if !ok {
		return Errorf(CodeInvalidRequest, "Unknown flow kind %q.", string(k))
	}
	n := spec.Needs
	switch {
	case n.NoPIN && s.HasPIN:
		return Errorf(CodePINAlreadySet, "The customer has already set a PIN.")
	case n.PIN && !s.HasPIN:
		return pinRequired()
	case n.Recovery && !s.HasRecovery:
		return Errorf(CodeRecoveryRequired, "The customer has not set up recovery, which %s needs.", spec.Summary)
	case n.NotLockedOut && s.LockedOut:
		return lockedOut()
	}
	return nil
}

func pinRequired() *Error {
	return Errorf(CodePINRequired, "The customer has not set a PIN yet.")
}

func lockedOut() *Error {
	return Errorf(CodeCustomerLockedOut, "The customer is locked out after too many wrong PINs; reset the PIN first.")
}

// DefaultExportHold is the export hold of `api` and `worker` unless
// configured: a day, like the withdrawal holds banks and exchanges apply
// after a credential reset. `dev` keeps it off unless set.
const DefaultExportHold = 24 * time.Hour

// ExportAvailableAt returns when a customer whose last completed PIN reset
// was at lastReset may export private keys again under an export hold of
// hold, or nil when no hold applies at now: no hold configured (hold <= 0),
// no reset on record, or the hold has passed. The hold covers
// [lastReset, lastReset+hold): at availableAt itself export is open.
//
// An account takeover resets the credential and then drains the keys; the
// hold gives the real owner time to notice the reset (the app is told with
// EventExportHoldStarted) before keys can leave.
func ExportAvailableAt(lastReset *time.Time, hold time.Duration, now time.Time) *time.Time {
	if hold <= 0 || lastReset == nil || lastReset.IsZero() {
		return nil
	}
	at := lastReset.Add(hold).UTC()
	if !now.Before(at) {
		return nil
	}
	return &at
}

// CheckExportHold applies the export-hold rule to a start of kind k: a
// start of a kind held after a reset (Spec.HeldAfterReset: the export)
// while ExportAvailableAt is set is refused with CodeExportOnHold and the
// error's AvailableAt. Other kinds pass. It runs after Check, so a customer
// without a PIN hears pin_required first.
func CheckExportHold(k Kind, lastReset *time.Time, hold time.Duration, now time.Time) *Error {
	if !k.spec().HeldAfterReset {
		return nil
	}
	at := ExportAvailableAt(lastReset, hold, now)
	if at == nil {
		return nil
	}
	e := Errorf(CodeExportOnHold, "Private keys cannot be exported until %s: the PIN was reset recently.", at.Format(time.RFC3339))
	e.AvailableAt = at
	return e
}

// WithExportHold returns s with ExportAvailableAt computed from its last
// PIN reset, the hold and now.
func (s Security) WithExportHold(hold time.Duration, now time.Time) Security {
	s.ExportAvailableAt = ExportAvailableAt(s.LastPINResetAt, hold, now)
	return s
}

// StartsExportHold reports whether a flow of kind k that ended in status
// with the security status sec starts an export hold the app must hear of
// (EventExportHoldStarted): a completed flow of a kind that starts one
// (Spec.StartsHold: the PIN reset) while a hold is set.
func StartsExportHold(k Kind, status Status, sec Security) bool {
	return k.spec().StartsHold && status == StatusCompleted && sec.ExportAvailableAt != nil
}
