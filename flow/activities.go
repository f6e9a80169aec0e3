package flow

import "time"

// Inputs and results of the registered activities. Workflows call
// activities by name with these types, so workflow code never links the
// activity implementations. Fields only grow.

// PreflightInput asks whether a flow of Kind may start for CustomerID,
// against Planbok's current customer record.
type PreflightInput struct {
	CustomerID string `json:"customerId"`
	Kind       Kind   `json:"kind"`
}

// PreflightResult holds the customer's standing and, when a rule refuses
// the start (or the customer does not exist), the refusal.
type PreflightResult struct {
	Standing Standing `json:"standing"`
	Refusal  *Error   `json:"refusal,omitempty"`
}

// CreateChallengeInput creates the Planbok challenge of a flow. The
// IdempotencyKey is fixed by the workflow for this step, so a retried
// activity never creates a second challenge.
type CreateChallengeInput struct {
	FlowID         string   `json:"flowId"`
	CustomerID     string   `json:"customerId"`
	Kind           Kind     `json:"kind"`
	RedirectURL    string   `json:"redirectUrl"`
	Blockchains    []string `json:"blockchains,omitempty"`
	IdempotencyKey string   `json:"idempotencyKey"`
}

// Challenge is what a flow keeps of Planbok's challenge.
type Challenge struct {
	ID         string    `json:"id"`
	GatewayURL string    `json:"gatewayUrl"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// GetChallengeInput reads a challenge's status.
type GetChallengeInput struct {
	CustomerID  string `json:"customerId"`
	ChallengeID string `json:"challengeId"`
}

// ChallengeGone is the ChallengeStatus.Status of a challenge Planbok no
// longer knows (404: pruned after its lifetime).
const ChallengeGone = "gone"

// ChallengeStatus is a challenge's status at Planbok: "pending",
// "verified", "failed" or ChallengeGone.
type ChallengeStatus struct {
	Status string `json:"status"`
}

// RecordFlowInput writes a flow's row in the store's flow index.
type RecordFlowInput struct {
	Flow           Flow   `json:"flow"`
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	RequestHash    string `json:"requestHash,omitempty"`
}

// ReadFlowInput reads a flow's row from the store's flow index.
type ReadFlowInput struct {
	FlowID string `json:"flowId"`
}

// SyncCustomerInput re-reads a customer from Planbok and records its
// security status. Kind (with At) says which flow just completed, so the
// matching timestamp (pinSetAt, pinUpdatedAt, …) is set; Event names the
// customer-level webhook that caused the sync when no flow did.
//
// FlowID, or else WebhookID, names the sync: the store records the sync
// that locked the customer out, so the same sync run again (a retried
// workflow task) hears LockedOutNow again and no other sync does. With
// neither, only the run that makes the change hears it.
type SyncCustomerInput struct {
	CustomerID string    `json:"customerId"`
	Kind       Kind      `json:"kind,omitempty"`
	FlowID     string    `json:"flowId,omitempty"`
	Event      string    `json:"event,omitempty"`
	At         time.Time `json:"at"`
	// WebhookID is the Planbok webhook behind a customer event's sync.
	WebhookID string `json:"webhookId,omitempty"`
}

// SyncCustomerResult is the security status after a sync. LockedOutNow is
// true when this sync is the one that locked the customer out (on every
// run of it, see SyncCustomerInput).
type SyncCustomerResult struct {
	Security     Security `json:"security"`
	LockedOutNow bool     `json:"lockedOutNow,omitempty"`
}

// AuditInput is one audit-log row. It never holds secrets.
type AuditInput struct {
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	CustomerID string    `json:"customerId"`
	FlowID     string    `json:"flowId,omitempty"`
	Outcome    string    `json:"outcome"`
	Detail     string    `json:"detail,omitempty"`
	// DedupeKey, when set, makes the row written once however often the
	// activity runs (a flow's end: its workflow task may be retried).
	DedupeKey string `json:"dedupeKey,omitempty"`
}

// DeliverEventInput sends one event to the app's notify URL. ID is the
// Standard Webhooks message id; it stays the same across retries so the app
// can de-duplicate.
type DeliverEventInput struct {
	ID    string   `json:"id"`
	Event AppEvent `json:"event"`
}

// CustomerInput starts the customer workflow.
type CustomerInput struct {
	CustomerID string `json:"customerId"`
	// IdleTimeout is how long the customer workflow waits with no active
	// flow and no pending work before it completes; zero means the
	// workflows package's default (one hour).
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"`
	// RecentKeys carries the idempotency keys of recent starts, oldest
	// first, across continue-as-new, so a replayed key keeps its answer.
	RecentKeys []IdempotencyRecord `json:"recentKeys,omitempty"`
	// Quota carries the customer's start-quota bucket across
	// continue-as-new, so the quota holds however often the run renews.
	Quota QuotaBucket `json:"quota,omitzero"`
}

// IdempotencyRecord is one idempotency key the customer workflow
// remembers: the request it was first used with and the flow it started,
// as last seen.
type IdempotencyRecord struct {
	Key         string `json:"key"`
	RequestHash string `json:"requestHash,omitempty"`
	Flow        Flow   `json:"flow"`
}
