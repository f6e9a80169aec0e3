package flow

import "fmt"

// Kind names one of Planbok's Customer Custody security flows.
type Kind string

// The six flow kinds. The values appear in the HTTP API and in stored rows:
// never rename them.
const (
	KindInitialize        Kind = "initialize"
	KindRecovery          Kind = "recovery"
	KindUpdatePIN         Kind = "update_pin"
	KindResetPIN          Kind = "reset_pin"
	KindExportPrivateKeys Kind = "export_private_keys"
	KindCreateWallets     Kind = "create_wallets"
)

// Stamp names a security timestamp a completed flow sets (API.md §2's
// customer.security).
type Stamp string

// The security timestamps.
const (
	StampPINSetAt       Stamp = "pinSetAt"
	StampRecoverySetAt  Stamp = "recoverySetAt"
	StampPINUpdatedAt   Stamp = "pinUpdatedAt"
	StampLastPINResetAt Stamp = "lastPinResetAt"
	StampLastExportAt   Stamp = "lastExportAt"
)

// Spec is everything that differs between flow kinds. Every package reads
// it from Specs rather than switching on the kind, so a new kind is one row
// here (plus its Gateway page in the sandbox); a test keeps every row
// complete.
type Spec struct {
	Kind Kind
	// Route is the path segment of the start route:
	// POST /v1/customers/{id}/<Route>.
	Route string
	// PlanbokTask is the challenge's task at Planbok, which is also the
	// path of its route: POST /v2/customers/{id}/<PlanbokTask>.
	PlanbokTask string
	// WorkflowType is the registered Temporal workflow type that runs the
	// flow. Registered name: do not change.
	WorkflowType string
	// Event is the event sent to the app when the flow completes (API.md §4).
	Event EventType
	// Stamps are the security timestamps the completed flow sets. Each is
	// set only when Planbok's record confirms it (hasPin for pinSetAt,
	// hasRecovery for recoverySetAt): PIN setup may or may not include
	// recovery.
	Stamps []Stamp
	// Summary names the flow in logs and audit rows.
	Summary string
	// Blockchains is true for the kind whose body lists blockchains (and
	// whose Planbok request carries them).
	Blockchains bool
	// Needs is the customer's standing a start requires (Check).
	Needs Needs
	// HeldAfterReset: starts are refused while an export hold runs after a
	// PIN reset (CheckExportHold).
	HeldAfterReset bool
	// StartsHold: completing the flow starts an export hold
	// (StartsExportHold).
	StartsHold bool
}

// Needs is what Planbok's record of a customer must say for a start to go
// ahead. Check tests them in API.md §2's order: NoPIN, then PIN, then
// Recovery, then NotLockedOut.
type Needs struct {
	// NoPIN refuses a customer who has a PIN (pin_already_set).
	NoPIN bool
	// PIN refuses a customer without one (pin_required).
	PIN bool
	// Recovery refuses a customer without recovery (recovery_required).
	Recovery bool
	// NotLockedOut refuses a locked-out customer (customer_locked_out).
	NotLockedOut bool
}

// Specs has one row per kind, in the order the flows are usually met.
var Specs = []Spec{
	{
		Kind: KindInitialize, Route: "initialize", PlanbokTask: "initialize",
		WorkflowType: WorkflowInitialize, Event: EventPINSetup,
		Stamps: []Stamp{StampPINSetAt, StampRecoverySetAt}, Summary: "PIN setup",
		Needs: Needs{NoPIN: true},
	},
	{
		Kind: KindRecovery, Route: "recovery", PlanbokTask: "recovery",
		WorkflowType: WorkflowRecovery, Event: EventRecoverySetup,
		Stamps: []Stamp{StampRecoverySetAt}, Summary: "recovery setup",
		Needs: Needs{PIN: true},
	},
	{
		Kind: KindUpdatePIN, Route: "update-pin", PlanbokTask: "update-pin",
		WorkflowType: WorkflowUpdatePIN, Event: EventPINUpdated,
		// A locked-out customer must reset, not update: the old PIN is
		// what they cannot enter.
		Stamps: []Stamp{StampPINUpdatedAt}, Summary: "PIN update",
		Needs: Needs{PIN: true, NotLockedOut: true},
	},
	{
		Kind: KindResetPIN, Route: "reset-pin", PlanbokTask: "reset-pin",
		WorkflowType: WorkflowResetPIN, Event: EventPINReset,
		// The way out of a lockout: recovery is all it needs.
		Stamps: []Stamp{StampLastPINResetAt}, Summary: "PIN reset",
		Needs: Needs{Recovery: true}, StartsHold: true,
	},
	{
		Kind: KindExportPrivateKeys, Route: "export-private-keys", PlanbokTask: "export-private-keys",
		WorkflowType: WorkflowExportPrivateKeys, Event: EventPrivateKeysExported,
		Stamps: []Stamp{StampLastExportAt}, Summary: "private key export",
		Needs: Needs{PIN: true, Recovery: true, NotLockedOut: true}, HeldAfterReset: true,
	},
	{
		// Wallets change neither the PIN nor recovery: no timestamp.
		Kind: KindCreateWallets, Route: "wallets", PlanbokTask: "wallet/create",
		WorkflowType: WorkflowCreateWallets, Event: EventWalletsCreated,
		// Planbok refuses wallets before recovery setup.
		Summary: "wallet creation", Blockchains: true,
		Needs: Needs{PIN: true, Recovery: true, NotLockedOut: true},
	},
}

// Kinds lists every kind in the order the flows are usually met (Specs'
// order).
var Kinds = func() []Kind {
	out := make([]Kind, len(Specs))
	for i, s := range Specs {
		out[i] = s.Kind
	}
	return out
}()

// SpecOf returns the row of kind k, and false for an unknown kind.
func SpecOf(k Kind) (Spec, bool) {
	for _, s := range Specs {
		if s.Kind == k {
			return s, true
		}
	}
	return Spec{}, false
}

// spec is SpecOf without the flag: the zero Spec for an unknown kind, so
// its accessors answer "".
func (k Kind) spec() Spec {
	s, _ := SpecOf(k)
	return s
}

// ParseKind returns the kind named s.
func ParseKind(s string) (Kind, error) {
	if _, ok := SpecOf(Kind(s)); ok {
		return Kind(s), nil
	}
	return "", fmt.Errorf("unknown flow kind %q", s)
}

// Valid reports whether k is one of the kinds.
func (k Kind) Valid() bool {
	_, ok := SpecOf(k)
	return ok
}

// Route is the path segment of the start route in custodyflows' API
// (POST /v1/customers/{id}/<route>).
func (k Kind) Route() string { return k.spec().Route }

// KindForRoute is the inverse of Kind.Route.
func KindForRoute(route string) (Kind, bool) {
	for _, s := range Specs {
		if s.Route == route {
			return s.Kind, true
		}
	}
	return "", false
}

// WorkflowType is the registered Temporal workflow type that runs flows of
// this kind. Registered name: do not change.
func (k Kind) WorkflowType() string { return k.spec().WorkflowType }

// EventType is the event sent to the app when a flow of this kind completes
// (API.md §4).
func (k Kind) EventType() EventType { return k.spec().Event }

// PlanbokTask is the Planbok challenge task of this kind ("" when unknown).
func (k Kind) PlanbokTask() string { return k.spec().PlanbokTask }

// Summary names the kind in logs and audit rows.
func (k Kind) Summary() string { return k.spec().Summary }
