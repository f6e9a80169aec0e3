package flow

import (
	"crypto/rand"
	"encoding/base32"
	"io"
	"strings"
	"time"
)

// Registered Temporal workflow type names: part of the history contract, do
// not change.
const (
	WorkflowCustomer          = "Customer"
	WorkflowInitialize        = "Initialize"
	WorkflowRecovery          = "Recovery"
	WorkflowUpdatePIN         = "UpdatePIN"
	WorkflowResetPIN          = "ResetPIN"
	WorkflowExportPrivateKeys = "ExportPrivateKeys"
	WorkflowCreateWallets     = "CreateWallets"
	WorkflowNotifyApp         = "NotifyApp"
	WorkflowReconcile         = "Reconcile"
)

// Registered Temporal activity type names: do not change.
const (
	ActivityPreflight       = "Preflight"
	ActivityCreateChallenge = "CreateChallenge"
	ActivityGetChallenge    = "GetChallenge"
	ActivityRecordFlow      = "RecordFlow"
	ActivityReadFlow        = "ReadFlow"
	ActivitySyncCustomer    = "SyncCustomer"
	ActivityRecordAudit     = "RecordAudit"
	ActivityDeliverEvent    = "DeliverEvent"
	// ActivityAwaitChallenge reads a challenge and fails (retryably) while
	// it is pending, so its retry policy is the flow's poll schedule.
	ActivityAwaitChallenge = "AwaitChallenge"

	// The reconciler's activities (see ReconcileTaskQueue).
	ActivityListCustomerIDs   = "ListCustomerIDs"
	ActivityReconcileCustomer = "ReconcileCustomer"
	ActivityListActiveFlows   = "ListActiveFlows"
	ActivityRepairFlow        = "RepairFlow"
)

// Signal, query and update names: do not change.
const (
	// SignalChallengeEvent carries a ChallengeEvent from the webhook intake
	// to the flow workflow that owns the challenge.
	SignalChallengeEvent = "challenge-event"
	// SignalCustomerEvent carries a CustomerEvent from the webhook intake to
	// the customer workflow (events that belong to no running flow).
	SignalCustomerEvent = "customer-event"
	// SignalFlowChanged carries a Flow from a flow workflow to its customer
	// workflow each time the flow's status changes.
	SignalFlowChanged = "flow-changed"
	// QueryFlow returns the flow workflow's current Flow.
	QueryFlow = "flow"
	// QueryActiveFlow returns the customer workflow's active *Flow (or nil).
	QueryActiveFlow = "active-flow"
	// UpdateStartFlow asks the customer workflow to start a flow; it
	// returns a StartResult once the challenge exists or the start was
	// refused.
	UpdateStartFlow = "start-flow"
	// UpdateCancel cancels a flow workflow and returns its final Flow.
	UpdateCancel = "cancel"
	// QueryReconcileReport returns a Reconcile workflow's ReconcileReport
	// so far.
	QueryReconcileReport = "reconcile-report"
)

// DefaultTaskQueue is the task queue workers poll unless configured
// otherwise.
const DefaultTaskQueue = "custodyflows"

// PollTaskQueue is the task queue of the polls of flows running on
// taskQueue. Polls have a queue of their own so that a server-enforced
// rate limit caps them across every worker of the deployment, and they can
// never take the Planbok budget starts need.
func PollTaskQueue(taskQueue string) string { return taskQueue + "-polls" }

// CustomerWorkflowID is the workflow id of the customer workflow that
// serialises a customer's flows. One id per customer is what makes "one
// active flow per customer" hold across API replicas.
func CustomerWorkflowID(customerID string) string { return "customer-" + customerID }

// FlowIDPrefix starts every flow id (and so every flow workflow id).
const FlowIDPrefix = "flow_"

var flowIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewFlowID returns a new opaque, URL-safe flow id read from r (crypto/rand
// when r is nil). Workflows call it inside workflow.SideEffect.
func NewFlowID(r io.Reader) string {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, 15)
	if _, err := io.ReadFull(r, b); err != nil {
		panic("flow: read random flow id: " + err.Error())
	}
	return FlowIDPrefix + flowIDEncoding.EncodeToString(b)
}

// ValidFlowID reports whether id has the shape NewFlowID produces, so the
// API can answer 404 without asking Temporal about arbitrary strings.
func ValidFlowID(id string) bool {
	rest, ok := strings.CutPrefix(id, FlowIDPrefix)
	if !ok || len(rest) != 24 {
		return false
	}
	_, err := flowIDEncoding.DecodeString(rest)
	return err == nil
}

// NotifyWorkflowID is the workflow id of the workflow delivering one app
// event; the event id makes a second start for the same event a no-op.
func NotifyWorkflowID(eventID string) string { return "notify-" + eventID }

// StartRequest is the argument of the customer workflow's start-flow update.
type StartRequest struct {
	Kind           Kind     `json:"kind"`
	CustomerID     string   `json:"customerId"`
	RedirectURL    string   `json:"redirectUrl"`
	Blockchains    []string `json:"blockchains,omitempty"`
	IdempotencyKey string   `json:"idempotencyKey,omitempty"`
	// RequestHash identifies the route and body the idempotency key was
	// first used with; the same key with another hash is refused.
	RequestHash string `json:"requestHash,omitempty"`
	// Actor names who asked (an API key id, never the key) for the audit log.
	Actor string `json:"actor,omitempty"`
	// Quota is the per-customer start quota the customer workflow counts
	// new flows against (zero: none; requests from before the quota moved
	// into the workflow have none).
	Quota Quota `json:"quota,omitzero"`
	// PlanbokBudget bounds this start's Planbok calls, retries included,
	// from when the customer workflow receives it (0: StartPlanbokBudget).
	PlanbokBudget time.Duration `json:"planbokBudget,omitempty"`
}

// StartResult is what the start-flow update returns.
//
//   - Flow set, Refusal nil: the flow exists and waits for the user (or, for
//     a replayed idempotency key, is in whatever status it reached). Created
//     is true only when this request started it.
//   - Refusal set, Flow nil: nothing was started (a rule, flow_in_progress
//     with ActiveFlowID, idempotency_key_reused, customer_not_found).
//   - Both set: the flow was started but ended before its challenge existed
//     (e.g. planbok_unavailable); Flow is that failed flow. Its
//     idempotency key is released: the same key again starts afresh.
type StartResult struct {
	Flow    *Flow  `json:"flow,omitempty"`
	Created bool   `json:"created"`
	Refusal *Error `json:"refusal,omitempty"`
	// ActiveFlowID is set with a flow_in_progress refusal.
	ActiveFlowID string `json:"activeFlowId,omitempty"`
	// RetryAfter is set with a rate_limited refusal: how long until the
	// customer's quota allows a start.
	RetryAfter time.Duration `json:"retryAfter,omitempty"`
}

// FlowInput starts a flow workflow.
type FlowInput struct {
	FlowID         string    `json:"flowId"`
	CustomerID     string    `json:"customerId"`
	Kind           Kind      `json:"kind"`
	RedirectURL    string    `json:"redirectUrl"`
	Blockchains    []string  `json:"blockchains,omitempty"`
	IdempotencyKey string    `json:"idempotencyKey,omitempty"`
	RequestHash    string    `json:"requestHash,omitempty"`
	Actor          string    `json:"actor,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
	// CustomerWorkflowID is where the flow reports its status changes.
	CustomerWorkflowID string `json:"customerWorkflowId"`
	// PlanbokDeadline ends the start's Planbok budget: creating the
	// challenge retries until then (zero: the fixed per-call limit of
	// flows started before the budget).
	PlanbokDeadline time.Time `json:"planbokDeadline,omitzero"`
	// Challenge is set when the customer workflow created the challenge
	// and recorded the flow in awaiting_user itself (lean customer
	// workflows): the flow starts waiting for the user at once and reports
	// its end by its result, never by signal. StartError is set instead
	// when creating the challenge failed: the flow only records that end.
	Challenge  *Challenge `json:"challenge,omitempty"`
	StartError *Error     `json:"startError,omitempty"`
}

// ChallengeEvent is the payload of SignalChallengeEvent: a webhook that
// names a challenge. It is a hint; the flow reads Planbok's truth.
type ChallengeEvent struct {
	ChallengeID string `json:"challengeId"`
	Event       string `json:"event"`
	// Status is the challenge status the webhook claimed, if any.
	Status    string    `json:"status,omitempty"`
	WebhookID string    `json:"webhookId,omitempty"`
	Received  time.Time `json:"received"`
}

// CustomerEvent is the payload of SignalCustomerEvent: a customer-level
// webhook (customer.locked_out, customer.pin_setup, …) that no running flow
// claimed.
type CustomerEvent struct {
	CustomerID string    `json:"customerId"`
	Event      string    `json:"event"`
	WebhookID  string    `json:"webhookId,omitempty"`
	Received   time.Time `json:"received"`
}
