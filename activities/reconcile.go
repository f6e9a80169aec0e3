package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

// The reconciler's activities. They run on the reconciler's own task queue
// (flow.ReconcileTaskQueue), whose server-side activity rate bounds the
// reconciler's Planbok reads across all workers: ReconcileCustomer makes at
// most one Planbok call per attempt, so activities per second bound Planbok
// calls per second, retries included.

// ReconcileStore is the part of *store.Store the reconciler uses.
type ReconcileStore interface {
	ListCustomerIDs(ctx context.Context, after string, n int) ([]string, error)
	ListActiveFlows(ctx context.Context, after string, updatedBefore time.Time, n int) ([]*flow.Flow, error)
	FindCustomerByID(ctx context.Context, id string) (*store.Customer, error)
	FindActiveFlow(ctx context.Context, customerID string) (*flow.Flow, error)
	FindFlowByID(ctx context.Context, id string) (*flow.Flow, error)
	FindAuditByActor(ctx context.Context, customerID, actor, action string) ([]*store.AuditEntry, error)
	CorrectSecurity(ctx context.Context, customerID string, c store.SecurityCorrection) (flow.Security, bool, error)
	RepairFlow(ctx context.Context, f *flow.Flow, audit *store.AuditEntry) (bool, error)
}

// CustomerReader is the part of *planbok.Client the reconciler uses.
type CustomerReader interface {
	GetCustomer(ctx context.Context, id string) (*planbok.Customer, error)
}

// WorkflowReader is the part of the Temporal client the reconciler uses to
// learn how a flow's workflow ended.
type WorkflowReader interface {
	DescribeWorkflowExecution(ctx context.Context, workflowID, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error)
	GetWorkflow(ctx context.Context, workflowID, runID string) client.WorkflowRun
}

var (
	_ ReconcileStore = (*store.Store)(nil)
	_ CustomerReader = (*planbok.Client)(nil)
	_ WorkflowReader = client.Client(nil)
)

// Audit actions of the reconciler. The actor is the reconcile run's id.
const (
	AuditReconcileCorrect    = "reconcile.correct"
	AuditReconcileRepairFlow = "reconcile.repair_flow"
)

// Reconciler holds the dependencies of the reconciler's activities.
// Register its methods under the flow.Activity* names of the reconciler
// (the worker package does).
type Reconciler struct {
	Planbok  CustomerReader
	Store    ReconcileStore
	Temporal WorkflowReader
	// ExportHold is the export hold after a PIN reset (see
	// Activities.ExportHold): an unlock found at Planbok is a PIN reset
	// made elsewhere, and the status it reports carries the hold.
	ExportHold time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger receives one line per correction and per classified failure
	// (slog.Default when nil).
	Logger *slog.Logger
}

func (r *Reconciler) acts() *Activities { return &Activities{Now: r.Now, Logger: r.Logger} }

// ListCustomerIDs returns a page of stored customer ids.
func (r *Reconciler) ListCustomerIDs(ctx context.Context, in flow.ListCustomerIDsInput) ([]string, error) {
	ids, err := r.Store.ListCustomerIDs(ctx, in.After, in.Limit)
	return ids, r.acts().classify(ctx, "list customer ids", err)
}

// ListActiveFlows returns a page of active flow rows.
func (r *Reconciler) ListActiveFlows(ctx context.Context, in flow.ListActiveFlowsInput) ([]flow.Flow, error) {
	fs, err := r.Store.ListActiveFlows(ctx, in.After, in.UpdatedBefore, in.Limit)
	if err != nil {
		return nil, r.acts().classify(ctx, "list active flows", err)
	}
	out := make([]flow.Flow, len(fs))
	for i, f := range fs {
		out[i] = *f
	}
	return out, nil
}

// ReconcileCustomer reads the customer at Planbok and corrects the stored
// security flags that differ, each with an audit row. A customer with an
// active flow is skipped (the flow reads Planbok when it ends, and
// correcting under it would send the app the same news twice). A customer
// Planbok does not know is reported, never deleted.
//
// The correction is conditional on the stored flags being those read
// here, so a flow or webhook that writes meanwhile wins and no event is
// sent twice; and a retried attempt finds its earlier attempt's audit rows
// and answers with those corrections, so their events are not lost.
func (r *Reconciler) ReconcileCustomer(ctx context.Context, in flow.ReconcileCustomerInput) (flow.ReconcileCustomerResult, error) {
	acts := r.acts()
	_, err := r.Store.FindActiveFlow(ctx, in.CustomerID)
	switch code := flow.ErrorCode(err); {
	case err == nil:
		return flow.ReconcileCustomerResult{Skipped: true}, nil
	case code != flow.CodeFlowNotFound:
		return flow.ReconcileCustomerResult{}, acts.classify(ctx, "reconcile customer: find active flow", err)
	}
	stored, err := r.Store.FindCustomerByID(ctx, in.CustomerID)
	if flow.ErrorCode(err) == flow.CodeCustomerNotFound {
		return flow.ReconcileCustomerResult{Skipped: true}, nil
	}
	if err != nil {
		return flow.ReconcileCustomerResult{}, acts.classify(ctx, "reconcile customer: find customer", err)
	}
	if prior, err := r.priorCorrections(ctx, in.CustomerID, in.RunID, AuditReconcileCorrect, ""); err != nil {
		return flow.ReconcileCustomerResult{}, acts.classify(ctx, "reconcile customer: find audit", err)
	} else if len(prior) > 0 {
		return flow.ReconcileCustomerResult{Corrections: prior, Security: stored.Security.WithExportHold(r.ExportHold, acts.now())}, nil
	}

	res, err := r.checkCustomer(ctx, in, stored)
	res.Security = res.Security.WithExportHold(r.ExportHold, acts.now())
	return res, err
}

// checkCustomer reads the customer at Planbok and corrects what differs
// from stored.
func (r *Reconciler) checkCustomer(ctx context.Context, in flow.ReconcileCustomerInput, stored *store.Customer) (flow.ReconcileCustomerResult, error) {
	acts := r.acts()
	c, err := r.Planbok.GetCustomer(ctx, in.CustomerID)
	if planbok.IsNotFound(err) {
		acts.logger(ctx).Warn("reconcile: customer not found at Planbok; kept", "customerId", in.CustomerID)
		return flow.ReconcileCustomerResult{Missing: true, PlanbokCalls: 1, Security: stored.Security}, nil
	}
	if err != nil {
		return flow.ReconcileCustomerResult{}, acts.classify(ctx, "reconcile customer: get customer", err)
	}
	res := flow.ReconcileCustomerResult{PlanbokCalls: 1, Security: stored.Security}
	expect, truth := stored.Security.Standing(), standingOf(c)
	corrections := securityCorrections(in.CustomerID, expect, truth)
	if len(corrections) == 0 {
		return res, nil
	}
	at := in.At.UTC()
	if in.At.IsZero() {
		at = acts.now()
	}
	audit := make([]*store.AuditEntry, len(corrections))
	for i, cr := range corrections {
		audit[i] = correctionAudit(in.RunID, AuditReconcileCorrect, "corrected", at, cr)
	}
	sec, applied, err := r.Store.CorrectSecurity(ctx, in.CustomerID, store.SecurityCorrection{
		Expect: expect, Truth: truth, At: at, Audit: audit,
	})
	if err != nil {
		return flow.ReconcileCustomerResult{}, acts.classify(ctx, "reconcile customer: correct security", err)
	}
	res.Security = sec
	if !applied {
		// A flow or webhook wrote the status since it was read: theirs is
		// newer, and they tell the app themselves. The next run compares
		// again. Or an earlier attempt of this step, timed out but still
		// running, wrote it just now: then its corrections are ours.
		if prior, err := r.priorCorrections(ctx, in.CustomerID, in.RunID, AuditReconcileCorrect, ""); err == nil && len(prior) > 0 {
			res.Corrections = prior
			return res, nil
		}
		acts.logger(ctx).Info("reconcile: stored status changed while checking; left alone", "customerId", in.CustomerID)
		return res, nil
	}
	for _, cr := range corrections {
		acts.logger(ctx).Info("reconcile: corrected stored status", "customerId", in.CustomerID,
			"field", cr.Field, "from", cr.From, "to", cr.To)
	}
	res.Corrections = corrections
	return res, nil
}

// securityCorrections lists the flags that differ between the stored
// standing and Planbok's, in a fixed order.
func securityCorrections(customerID string, stored, truth flow.Standing) []flow.Correction {
	var out []flow.Correction
	for _, f := range []struct {
		field    string
		from, to bool
	}{
		{flow.FieldHasPIN, stored.HasPIN, truth.HasPIN},
		{flow.FieldHasRecovery, stored.HasRecovery, truth.HasRecovery},
		{flow.FieldLockedOut, stored.LockedOut, truth.LockedOut},
	} {
		if f.from != f.to {
			out = append(out, flow.Correction{CustomerID: customerID, Field: f.field, From: f.from, To: f.to})
		}
	}
	return out
}

// correctionAudit is the audit row of one correction; its detail is the
// correction as JSON, which a retried attempt reads back.
func correctionAudit(runID, action, outcome string, at time.Time, c flow.Correction) *store.AuditEntry {
	detail, _ := json.Marshal(c) // a Correction of bools and strings always encodes
	return &store.AuditEntry{
		At: at, Actor: runID, Action: action, CustomerID: c.CustomerID, FlowID: c.FlowID,
		Outcome: outcome, Detail: string(detail),
	}
}

// priorCorrections returns the corrections this run already recorded for
// the customer (and flow, when flowID is set).
func (r *Reconciler) priorCorrections(ctx context.Context, customerID, runID, action, flowID string) ([]flow.Correction, error) {
	if runID == "" || (activity.IsActivity(ctx) && activity.GetInfo(ctx).Attempt <= 1) {
		return nil, nil // a first attempt has no earlier one
	}
	rows, err := r.Store.FindAuditByActor(ctx, customerID, runID, action)
	if err != nil {
		return nil, err
	}
	var out []flow.Correction
	for _, a := range rows {
		if flowID != "" && a.FlowID != flowID {
			continue
		}
		var c flow.Correction
		if err := json.Unmarshal([]byte(a.Detail), &c); err != nil {
			return nil, fmt.Errorf("audit row %d: %w", a.ID, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// RepairFlow compares an active flow row with its workflow. A running
// workflow is left alone. A completed one gives its result, the final
// Flow, which the row takes. One that ended without a result (terminated,
// timed out, failed) or that Temporal no longer knows (past retention)
// leaves the outcome unknown: the row is marked failed with
// flow_outcome_unknown. Either way one audit row records the repair, in
// the same transaction.
func (r *Reconciler) RepairFlow(ctx context.Context, in flow.RepairFlowInput) (flow.RepairFlowResult, error) {
	acts := r.acts()
	f := in.Flow
	at := in.At.UTC()
	if in.At.IsZero() {
		at = acts.now()
	}
	security := func() flow.Security {
		c, err := r.Store.FindCustomerByID(ctx, f.CustomerID)
		if err != nil {
			return flow.Security{}
		}
		return c.Security.WithExportHold(r.ExportHold, acts.now())
	}
	eventOf := func(g *flow.Flow) flow.EventType {
		if g.Status == flow.StatusCompleted {
			return g.Kind.EventType()
		}
		return flow.TerminalEventType(g.Status)
	}
	if prior, err := r.priorCorrections(ctx, f.CustomerID, in.RunID, AuditReconcileRepairFlow, f.ID); err != nil {
		return flow.RepairFlowResult{}, acts.classify(ctx, "repair flow: find audit", err)
	} else if len(prior) > 0 {
		g, err := r.Store.FindFlowByID(ctx, f.ID)
		if err != nil {
			return flow.RepairFlowResult{}, acts.classify(ctx, "repair flow: find flow", err)
		}
		return flow.RepairFlowResult{Correction: &prior[0], Flow: g, Event: eventOf(g), Security: security()}, nil
	}

	repaired, err := r.outcome(ctx, f, at)
	if err != nil {
		return flow.RepairFlowResult{}, acts.classify(ctx, "repair flow", err)
	}
	if repaired == nil {
		return flow.RepairFlowResult{}, nil // still running
	}
	c := flow.Correction{CustomerID: f.CustomerID, FlowID: f.ID, Field: flow.FieldFlowStatus,
		From: string(f.Status), To: string(repaired.Status)}
	applied, err := r.Store.RepairFlow(ctx, repaired, correctionAudit(in.RunID, AuditReconcileRepairFlow, string(repaired.Status), at, c))
	if err != nil {
		return flow.RepairFlowResult{}, acts.classify(ctx, "repair flow: write", err)
	}
	if !applied {
		return flow.RepairFlowResult{}, nil // the row moved on meanwhile
	}
	acts.logger(ctx).Info("reconcile: repaired flow row", "flowId", f.ID, "customerId", f.CustomerID,
		"from", string(f.Status), "to", string(repaired.Status))
	return flow.RepairFlowResult{Correction: &c, Flow: repaired, Event: eventOf(repaired), Security: security()}, nil
}

// outcome returns the flow as its workflow ended, or nil while it runs.
func (r *Reconciler) outcome(ctx context.Context, f flow.Flow, at time.Time) (*flow.Flow, error) {
	unknown := func(why string) *flow.Flow {
		g := f
		g.Status = flow.StatusFailed
		g.Error = flow.Errorf(flow.CodeFlowOutcomeUnknown, "The flow's workflow %s, so how the flow ended is unknown.", why)
		g.UpdatedAt, g.CompletedAt = at, &at
		return &g
	}
	desc, err := r.Temporal.DescribeWorkflowExecution(ctx, f.ID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return unknown("is no longer known to Temporal (past retention, or deleted)"), nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe workflow: %w", err)
	}
	status := desc.GetWorkflowExecutionInfo().GetStatus()
	switch status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return nil, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		var final flow.Flow
		if err := r.Temporal.GetWorkflow(ctx, f.ID, "").Get(ctx, &final); err != nil {
			return nil, fmt.Errorf("workflow result: %w", err)
		}
		if final.ID != f.ID || !final.Status.Terminal() {
			return unknown("completed without a final flow"), nil
		}
		return &final, nil
	}
	how := strings.ToLower(strings.TrimPrefix(status.String(), "WORKFLOW_EXECUTION_STATUS_"))
	return unknown("ended without a result (" + strings.ReplaceAll(how, "_", " ") + ")"), nil
}
