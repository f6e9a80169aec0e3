package flow

import "time"

// Flow is one run of a security flow, as the HTTP API shows it and the store
// keeps it. Fields only grow: never rename or reuse a JSON name.
type Flow struct {
	ID          string     `json:"id"`
	CustomerID  string     `json:"customerId"`
	Kind        Kind       `json:"kind"`
	Status      Status     `json:"status"`
	ChallengeID string     `json:"challengeId"`
	GatewayURL  string     `json:"gatewayUrl"`
	RedirectURL string     `json:"redirectUrl"`
	Blockchains []string   `json:"blockchains,omitempty"`
	ExpiresAt   *time.Time `json:"expiresAt"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	CompletedAt *time.Time `json:"completedAt"`
	Error       *Error     `json:"error"`
}

// Security is a customer's security status (API.md §2). Timestamps are UTC;
// nil means "never".
type Security struct {
	HasPIN         bool       `json:"hasPin"`
	HasRecovery    bool       `json:"hasRecovery"`
	LockedOut      bool       `json:"lockedOut"`
	CanTransact    bool       `json:"canTransact"`
	PINSetAt       *time.Time `json:"pinSetAt"`
	PINUpdatedAt   *time.Time `json:"pinUpdatedAt"`
	RecoverySetAt  *time.Time `json:"recoverySetAt"`
	LastPINResetAt *time.Time `json:"lastPinResetAt"`
	LastExportAt   *time.Time `json:"lastExportAt"`
	SyncedAt       *time.Time `json:"syncedAt"`
	// ExportAvailableAt is when private keys may be exported again after
	// a PIN reset under the export hold; nil when no hold applies. It is
	// computed on read (see WithExportHold), never stored.
	ExportAvailableAt *time.Time `json:"exportAvailableAt"`
}

// Standing returns the part of s the rules read.
func (s Security) Standing() Standing {
	return Standing{HasPIN: s.HasPIN, HasRecovery: s.HasRecovery, LockedOut: s.LockedOut}
}

// Customer is a Planbok customer with the security status custodyflows keeps.
type Customer struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	RefID      string   `json:"refId"`
	Security   Security `json:"security"`
	ActiveFlow *Flow    `json:"activeFlow"`
}

// EventType names an event sent to the app's notify URL (API.md §4).
type EventType string

// Events sent to the app. Append only.
const (
	EventPINSetup            EventType = "customer.pin_setup"
	EventRecoverySetup       EventType = "customer.recovery_setup"
	EventPINUpdated          EventType = "customer.pin_updated"
	EventPINReset            EventType = "customer.pin_reset"
	EventPrivateKeysExported EventType = "customer.private_keys_exported"
	EventWalletsCreated      EventType = "customer.wallets_created"
	EventLockedOut           EventType = "customer.locked_out"
	EventFlowFailed          EventType = "flow.failed"
	EventFlowExpired         EventType = "flow.expired"
	EventFlowCancelled       EventType = "flow.cancelled"
	// EventExportHoldStarted follows customer.pin_reset when an export
	// hold is set: data.security.exportAvailableAt says until when, so the
	// app can warn the person through its own channels.
	EventExportHoldStarted EventType = "customer.export_hold_started"
)

// EventTypes lists every event type, for tests that keep documents
// complete.
var EventTypes = []EventType{
	EventPINSetup, EventRecoverySetup, EventPINUpdated, EventPINReset, EventPrivateKeysExported,
	EventWalletsCreated, EventLockedOut, EventFlowFailed, EventFlowExpired, EventFlowCancelled,
	EventExportHoldStarted,
}

// AppEvent is the body of an event sent to the app.
type AppEvent struct {
	Type      EventType    `json:"type"`
	Timestamp time.Time    `json:"timestamp"`
	Data      AppEventData `json:"data"`
}

// AppEventData is the data of an AppEvent.
type AppEventData struct {
	CustomerID string   `json:"customerId"`
	FlowID     string   `json:"flowId,omitempty"`
	Kind       Kind     `json:"kind,omitempty"`
	Status     Status   `json:"status,omitempty"`
	Security   Security `json:"security"`
}

// TerminalEventType is the event sent when a flow ends in status s without
// completing, or "" when s sends none.
func TerminalEventType(s Status) EventType {
	switch s {
	case StatusFailed:
		return EventFlowFailed
	case StatusExpired:
		return EventFlowExpired
	case StatusCancelled:
		return EventFlowCancelled
	}
	return ""
}
