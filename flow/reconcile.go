package flow

import (
	"io"
	"strings"
	"time"
)

// The reconciler re-reads every stored customer at Planbok, corrects the
// stored security status and repairs flow rows that disagree with
// Temporal. Its workflow and activities run on their own task queue so
// that the queue's server-side activity rate bounds its Planbok reads
// across every worker, apart from the flows' own calls.

// ReconcileTaskQueue is the task queue of the Reconcile workflow and its
// activities, next to the flows' taskQueue.
func ReconcileTaskQueue(taskQueue string) string { return taskQueue + "-reconcile" }

// ReconcileScheduleID is the id of the Temporal Schedule that runs the
// reconciler for the flows on taskQueue. The schedule names the workflows
// it starts after itself plus the scheduled time
// ("reconcile-custodyflows-2026-12-01T10:00:00Z").
func ReconcileScheduleID(taskQueue string) string { return ReconcileIDPrefix + taskQueue }

// ReconcileIDPrefix starts the id of every reconcile run, scheduled or
// asked for through the API.
const ReconcileIDPrefix = "reconcile-"

// NewReconcileID returns the id of a reconcile run asked for now (random
// from r, crypto/rand when nil).
func NewReconcileID(r io.Reader) string {
	return ReconcileIDPrefix + strings.TrimPrefix(NewFlowID(r), FlowIDPrefix)
}

// ValidReconcileID reports whether id may name a reconcile run: the
// prefix, then at most 200 letters, digits and ":._-" (a schedule's runs
// end in an RFC 3339 time). It does not say that the run exists.
func ValidReconcileID(id string) bool {
	rest, ok := strings.CutPrefix(id, ReconcileIDPrefix)
	if !ok || rest == "" || len(rest) > 200 {
		return false
	}
	for _, r := range rest {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(":._-", r):
		default:
			return false
		}
	}
	return true
}

// ReconcileStatus is where a reconcile run stands.
type ReconcileStatus string

// Reconcile run statuses, as GET /v1/reconcile/{id} shows them.
const (
	ReconcileRunning   ReconcileStatus = "running"
	ReconcileCompleted ReconcileStatus = "completed"
	ReconcileFailed    ReconcileStatus = "failed"
)

// Correction fields: the customer's security flags, and a flow row's
// status.
const (
	FieldHasPIN      = "hasPin"
	FieldHasRecovery = "hasRecovery"
	FieldLockedOut   = "lockedOut"
	FieldFlowStatus  = "flowStatus"
)

// Correction is one stored value the reconciler changed to match Planbok
// (a customer's security flag) or Temporal (a flow's status). From and To
// are booleans for the security flags and statuses for flowStatus.
type Correction struct {
	CustomerID string `json:"customerId"`
	FlowID     string `json:"flowId,omitempty"`
	Field      string `json:"field"`
	From       any    `json:"from"`
	To         any    `json:"to"`
}

// EventType is the event the app receives for a customer correction, or
// "" when none fits: a PIN or recovery that appeared, a lockout, and an
// unlock (only a PIN reset unlocks a customer at Planbok). A PIN or
// recovery that disappeared has no event; the correction is recorded.
func (c Correction) EventType() EventType {
	to, _ := c.To.(bool)
	switch c.Field {
	case FieldHasPIN:
		if to {
			return EventPINSetup
		}
	case FieldHasRecovery:
		if to {
			return EventRecoverySetup
		}
	case FieldLockedOut:
		if to {
			return EventLockedOut
		}
		return EventPINReset
	}
	return ""
}

// ReconcileReport is a reconcile run as GET /v1/reconcile/{id} shows it,
// and the Reconcile workflow's result. Fields only grow.
type ReconcileReport struct {
	ID               string          `json:"id"`
	Status           ReconcileStatus `json:"status"`
	StartedAt        time.Time       `json:"startedAt"`
	FinishedAt       *time.Time      `json:"finishedAt"`
	CustomersChecked int             `json:"customersChecked"`
	// Corrections lists the first MaxReportedCorrections corrections;
	// CorrectionsTotal counts them all.
	Corrections      []Correction `json:"corrections"`
	CorrectionsTotal int          `json:"correctionsTotal"`
	// CustomersSkipped counts customers left to their active flow, which
	// reads Planbok itself when it ends.
	CustomersSkipped int `json:"customersSkipped"`
	// MissingAtPlanbok lists stored customers Planbok answers 404 for
	// (the first MaxReportedCorrections): reported, never deleted.
	MissingAtPlanbok []string `json:"missingAtPlanbok"`
	// CustomersFailed counts customers that could not be read or
	// corrected (Planbok kept failing); the next run tries them again.
	CustomersFailed int `json:"customersFailed"`
	// FlowsChecked counts active flow rows compared with Temporal.
	FlowsChecked int `json:"flowsChecked"`
	// PlanbokCalls counts the GET /v2/customers/{id} reads that answered.
	PlanbokCalls int `json:"planbokCalls"`
}

// MaxReportedCorrections bounds the lists a report carries (and so the
// state continue-as-new carries); totals keep counting.
const MaxReportedCorrections = 1000

// ReconcileInput starts a Reconcile workflow. Zero values mean the
// workflows package's defaults. State is set only by continue-as-new.
type ReconcileInput struct {
	// NotifyTaskQueue is where the NotifyApp workflows for the app's
	// events run (the flows' task queue).
	NotifyTaskQueue string `json:"notifyTaskQueue,omitempty"`
	// PageSize is how many customers (or flows) one run handles before it
	// continues as new.
	PageSize int `json:"pageSize,omitempty"`
	// Concurrency bounds the customers (or flows) checked at once.
	Concurrency int `json:"concurrency,omitempty"`
	// FlowGrace leaves flow rows updated this recently alone.
	FlowGrace time.Duration `json:"flowGrace,omitempty"`
	// State is the progress carried across continue-as-new.
	State *ReconcileState `json:"state,omitempty"`
}

// Reconcile phases, in order.
const (
	ReconcilePhaseFlows     = "flows"
	ReconcilePhaseCustomers = "customers"
)

// ReconcileState is a reconcile run's progress: the phase, the last id
// handled in it, and the report so far.
type ReconcileState struct {
	Phase  string          `json:"phase"`
	Cursor string          `json:"cursor,omitempty"`
	Report ReconcileReport `json:"report"`
}

// ListCustomerIDsInput asks for the stored customer ids after After, in id
// order, at most Limit.
type ListCustomerIDsInput struct {
	After string `json:"after,omitempty"`
	Limit int    `json:"limit"`
}

// ReconcileCustomerInput compares one customer with Planbok and corrects
// the stored security status. RunID names the reconcile run in the audit
// log, which also makes a retried attempt answer with what it did.
type ReconcileCustomerInput struct {
	CustomerID string    `json:"customerId"`
	RunID      string    `json:"runId"`
	At         time.Time `json:"at"`
}

// ReconcileCustomerResult is what ReconcileCustomer found and did.
type ReconcileCustomerResult struct {
	// Skipped: the customer has an active flow, which reads Planbok
	// itself; nothing was read or changed.
	Skipped bool `json:"skipped,omitempty"`
	// Missing: Planbok answered 404.
	Missing bool `json:"missing,omitempty"`
	// PlanbokCalls counts the reads of this attempt (0 or 1).
	PlanbokCalls int          `json:"planbokCalls"`
	Corrections  []Correction `json:"corrections,omitempty"`
	// Security is the stored status after the corrections.
	Security Security `json:"security"`
}

// ListActiveFlowsInput asks for the flow rows in an active status
// (starting, awaiting_user) last updated before UpdatedBefore, after the
// flow id After, in id order, at most Limit.
type ListActiveFlowsInput struct {
	After         string    `json:"after,omitempty"`
	UpdatedBefore time.Time `json:"updatedBefore"`
	Limit         int       `json:"limit"`
}

// RepairFlowInput compares one active flow row with its workflow.
type RepairFlowInput struct {
	Flow  Flow      `json:"flow"`
	RunID string    `json:"runId"`
	At    time.Time `json:"at"`
}

// RepairFlowResult is what RepairFlow did: nothing (the workflow still
// runs), or the row's new state with one correction and the event the app
// should have had.
type RepairFlowResult struct {
	Correction *Correction `json:"correction,omitempty"`
	Flow       *Flow       `json:"flow,omitempty"`
	Event      EventType   `json:"event,omitempty"`
	Security   Security    `json:"security"`
}
