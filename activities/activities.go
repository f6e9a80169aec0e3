// Package activities implements the Temporal activities of custodyflows:
// the Planbok calls, the store writes and the app notifications that
// workflows run by name (the flow.Activity* constants).
//
// Every dependency is a small interface declared here, so tests use fakes
// and the package links neither a real database nor an HTTP client. Every
// error leaves through classify, which turns it into a Temporal application
// error whose type is a flow.Code and whose retryability is decided once,
// here, instead of in each workflow.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

// PlanbokAPI is the part of *planbok.Client the activities use.
type PlanbokAPI interface {
	GetCustomer(ctx context.Context, id string) (*planbok.Customer, error)
	CreateChallenge(ctx context.Context, customerID string, task planbok.Task, p planbok.ChallengeParams) (*planbok.Challenge, error)
	GetChallenge(ctx context.Context, customerID, challengeID string) (*planbok.Challenge, error)
}

// Store is the part of *store.Store the activities use.
type Store interface {
	UpsertFlow(ctx context.Context, f *flow.Flow, meta store.FlowMeta) error
	FindFlowByID(ctx context.Context, id string) (*flow.Flow, error)
	UpdateSecurity(ctx context.Context, customerID string, u store.SecurityUpdate) (store.SecurityResult, error)
	FindCustomerByID(ctx context.Context, id string) (*store.Customer, error)
	RecordAudit(ctx context.Context, a *store.AuditEntry) error
}

// The real dependencies satisfy the interfaces; checked at compile time so
// a signature change in planbok or store is caught here, not in the worker.
var (
	_ PlanbokAPI = (*planbok.Client)(nil)
	_ Store      = (*store.Store)(nil)
)

// Notifier delivers one event to the app (*notify.Sender does). An error
// with a Permanent() bool method that reports true is not retried.
type Notifier interface {
	Deliver(ctx context.Context, id string, ev flow.AppEvent) error
}

// Failure types of DeliverEvent errors. They are not flow codes because no
// flow ends with them: only the NotifyApp workflow sees them.
const (
	// ErrTypeNotifyFailed: the app's notify URL did not accept the event
	// (non-2xx or unreachable); retried.
	ErrTypeNotifyFailed = "notify_failed"
	// ErrTypeNotifyGone: the app answered 410 Gone, so it removed the
	// endpoint on purpose; not retried.
	ErrTypeNotifyGone = "notify_gone"
)

// DefaultActor is the audit actor when an AuditInput names none.
const DefaultActor = "worker"

// Activities holds the dependencies of every activity. Register its
// methods under the flow.Activity* names (the worker package does).
type Activities struct {
	Planbok PlanbokAPI
	Store   Store
	// Notifier is nil when no notify URL is configured: DeliverEvent then
	// succeeds without sending anything.
	Notifier Notifier
	// ExportHold is how long after a completed PIN reset an export is
	// refused (flow.CheckExportHold); 0 turns the hold off.
	ExportHold time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger receives one line per classified failure (slog.Default when
	// nil). Nothing secret is ever logged.
	Logger *slog.Logger
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

func (a *Activities) logger(ctx context.Context) *slog.Logger {
	l := a.Logger
	if l == nil {
		l = slog.Default()
	}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		l = l.With("workflowId", info.WorkflowExecution.ID, "attempt", info.Attempt)
	}
	return l
}

// taskOf is a flow kind's Planbok challenge task, from its flow.Specs row.
func taskOf(k flow.Kind) (planbok.Task, bool) {
	spec, ok := flow.SpecOf(k)
	return planbok.Task(spec.PlanbokTask), ok
}

// standingOf is what the rules need from Planbok's customer record.
func standingOf(c *planbok.Customer) flow.Standing {
	return flow.Standing{HasPIN: c.HasPIN, HasRecovery: c.HasRecovery, LockedOut: c.Locked()}
}

// Preflight reads the customer from Planbok and applies flow.Check. A
// customer Planbok does not know is a customer_not_found refusal, not an
// error, so the workflow answers the API instead of failing.
func (a *Activities) Preflight(ctx context.Context, in flow.PreflightInput) (flow.PreflightResult, error) {
	c, err := a.Planbok.GetCustomer(ctx, in.CustomerID)
	if notFound(err) {
		return flow.PreflightResult{Refusal: customerNotFound(in.CustomerID)}, nil
	}
	if err != nil {
		return flow.PreflightResult{}, a.classify(ctx, "preflight: get customer", err)
	}
	st := standingOf(c)
	if refusal := flow.Check(in.Kind, st); refusal != nil {
		return flow.PreflightResult{Standing: st, Refusal: refusal}, nil
	}
	refusal, err := a.exportHold(ctx, in)
	if err != nil {
		return flow.PreflightResult{}, a.classify(ctx, "preflight: export hold", err)
	}
	return flow.PreflightResult{Standing: st, Refusal: refusal}, nil
}

// exportHold applies the export-hold rule to an export start: the last
// completed PIN reset is in the store (Planbok does not say when a PIN was
// reset), the hold is configuration. A customer the store has never seen
// has no reset on record, so no hold.
func (a *Activities) exportHold(ctx context.Context, in flow.PreflightInput) (*flow.Error, error) {
	if spec, _ := flow.SpecOf(in.Kind); !spec.HeldAfterReset || a.ExportHold <= 0 {
		return nil, nil // no read for the kinds a hold never refuses
	}
	c, err := a.Store.FindCustomerByID(ctx, in.CustomerID)
	switch {
	case flow.ErrorCode(err) == flow.CodeCustomerNotFound:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("find customer: %w", err)
	}
	return flow.CheckExportHold(in.Kind, c.Security.LastPINResetAt, a.ExportHold, a.now()), nil
}

// CreateChallenge creates the flow's Planbok challenge with the workflow's
// idempotency key, so a retried attempt gets the first challenge back.
func (a *Activities) CreateChallenge(ctx context.Context, in flow.CreateChallengeInput) (flow.Challenge, error) {
	task, ok := taskOf(in.Kind)
	if !ok {
		return flow.Challenge{}, a.classify(ctx, "create challenge",
			flow.Errorf(flow.CodeInvalidRequest, "Unknown flow kind %q.", string(in.Kind)))
	}
	key := in.IdempotencyKey
	if key == "" {
		// Never send a challenge without a key: a retry would create a
		// second one. The flow id is stable across retries too.
		if in.FlowID == "" {
			return flow.Challenge{}, a.classify(ctx, "create challenge",
				flow.Errorf(flow.CodeInvalidRequest, "A challenge needs an idempotency key or a flow id."))
		}
		key = in.FlowID + "-challenge"
	}
	p := planbok.ChallengeParams{RedirectURL: in.RedirectURL, IdempotencyKey: key}
	if spec, _ := flow.SpecOf(in.Kind); spec.Blockchains {
		p.Blockchains = in.Blockchains
		p.AccountType = planbok.AccountTypeEOA
	}
	ch, err := a.Planbok.CreateChallenge(ctx, in.CustomerID, task, p)
	if err != nil {
		return flow.Challenge{}, a.classify(ctx, "create challenge", err)
	}
	if ch == nil || ch.ChallengeID == "" || ch.RedirectURL == "" {
		// A success without a challenge is Planbok misbehaving; the retry
		// (same key) may get a complete answer.
		return flow.Challenge{}, temporal.NewApplicationError("Planbok answered without a challenge id or Gateway URL.", string(flow.CodePlanbokUnavailable))
	}
	return flow.Challenge{ID: ch.ChallengeID, GatewayURL: ch.RedirectURL, ExpiresAt: ch.ExpiresAt.UTC()}, nil
}

// GetChallenge reads a challenge's status. Planbok prunes challenges after
// their lifetime, so a 404 is the status flow.ChallengeGone, not an error.
func (a *Activities) GetChallenge(ctx context.Context, in flow.GetChallengeInput) (flow.ChallengeStatus, error) {
	ch, err := a.Planbok.GetChallenge(ctx, in.CustomerID, in.ChallengeID)
	return a.challengeStatus(ctx, ch, err)
}

// challengeStatus maps Planbok's answer to a challenge read.
func (a *Activities) challengeStatus(ctx context.Context, ch *planbok.Challenge, err error) (flow.ChallengeStatus, error) {
	if planbok.IsNotFound(err) {
		return flow.ChallengeStatus{Status: flow.ChallengeGone}, nil
	}
	if err != nil {
		return flow.ChallengeStatus{}, a.classify(ctx, "get challenge", err)
	}
	if ch == nil || ch.Status == "" {
		return flow.ChallengeStatus{}, temporal.NewApplicationError("Planbok answered without a challenge status.", string(flow.CodePlanbokUnavailable))
	}
	return flow.ChallengeStatus{Status: ch.Status}, nil
}

// RecordFlow writes the flow's row in the store's flow index.
func (a *Activities) RecordFlow(ctx context.Context, in flow.RecordFlowInput) error {
	f := in.Flow
	err := a.Store.UpsertFlow(ctx, &f, store.FlowMeta{IdempotencyKey: in.IdempotencyKey, RequestHash: in.RequestHash})
	return a.classify(ctx, "record flow", err)
}

// ReadFlow returns the flow's stored row, nil when there is none. A
// customer workflow reads it before it answers with, or refuses because
// of, the flow it holds as active: a lean flow writes its end to the store
// first and its customer workflow learns it only when the flow workflow
// closes.
func (a *Activities) ReadFlow(ctx context.Context, in flow.ReadFlowInput) (*flow.Flow, error) {
	f, err := a.Store.FindFlowByID(ctx, in.FlowID)
	var ferr *flow.Error
	if errors.As(err, &ferr) && ferr.Code == flow.CodeFlowNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, a.classify(ctx, "read flow", err)
	}
	return f, nil
}

// SyncCustomer re-reads the customer from Planbok and stores its security
// status, with the timestamp the completed flow (or customer event) sets at
// in.At. LockedOutNow reports that this sync locked the customer out, as
// the store decides and records it (store.UpdateSecurity): a retry of the
// same sync (same FlowID or WebhookID) is told again, any other sync is
// not, even one that runs at the same time.
func (a *Activities) SyncCustomer(ctx context.Context, in flow.SyncCustomerInput) (flow.SyncCustomerResult, error) {
	c, err := a.Planbok.GetCustomer(ctx, in.CustomerID)
	if err != nil {
		return flow.SyncCustomerResult{}, a.classify(ctx, "sync customer: get customer", err)
	}
	prev, err := a.Store.FindCustomerByID(ctx, in.CustomerID)
	switch {
	case flow.ErrorCode(err) == flow.CodeCustomerNotFound:
		prev = nil // first time we see this customer
	case err != nil:
		return flow.SyncCustomerResult{}, a.classify(ctx, "sync customer: find customer", err)
	}

	at := in.At.UTC()
	if in.At.IsZero() {
		at = a.now()
	}
	u := store.SecurityUpdate{HasPIN: c.HasPIN, HasRecovery: c.HasRecovery, LockedOut: c.Locked(), SyncedAt: a.now(), By: syncIdentity(in)}
	if spec, ok := flow.SpecOf(in.Kind); ok {
		// The completed flow's timestamps, each only when Planbok confirms
		// it (PIN setup may or may not include recovery).
		for _, stamp := range spec.Stamps {
			setStamp(&u, stamp, &at, c)
		}
	} else if in.Kind == "" {
		// A customer-level webhook with no flow of ours: a PIN or recovery
		// set up elsewhere. Record when we learnt of it, but only if no
		// earlier time is known and Planbok confirms it (webhooks are
		// hints).
		switch in.Event {
		case planbok.EventCustomerPINSetup:
			if prev == nil || prev.Security.PINSetAt == nil {
				setStamp(&u, flow.StampPINSetAt, &at, c)
			}
		case planbok.EventCustomerRecoverySetup:
			if prev == nil || prev.Security.RecoverySetAt == nil {
				setStamp(&u, flow.StampRecoverySetAt, &at, c)
			}
		}
	}
	res, err := a.Store.UpdateSecurity(ctx, in.CustomerID, u)
	if err != nil {
		return flow.SyncCustomerResult{}, a.classify(ctx, "sync customer: update security", err)
	}
	// The events the workflow sends carry exportAvailableAt, and a
	// completed reset with it set starts customer.export_hold_started.
	sec := res.Security.WithExportHold(a.ExportHold, a.now())
	return flow.SyncCustomerResult{Security: sec, LockedOutNow: res.LockedOutNow}, nil
}

// syncIdentity names a sync for the store's lockout record: its flow, else
// its webhook, prefixed so that a flow id and a webhook id never match; ""
// (anonymous) with neither.
func syncIdentity(in flow.SyncCustomerInput) string {
	switch {
	case in.FlowID != "":
		return "flow:" + in.FlowID
	case in.WebhookID != "":
		return "webhook:" + in.WebhookID
	}
	return ""
}

// RecordAudit writes one audit-log row.
func (a *Activities) RecordAudit(ctx context.Context, in flow.AuditInput) error {
	e := &store.AuditEntry{
		At: in.At.UTC(), Actor: in.Actor, Action: in.Action, CustomerID: in.CustomerID,
		FlowID: in.FlowID, Outcome: in.Outcome, Detail: in.Detail, DedupeKey: in.DedupeKey,
	}
	if in.At.IsZero() {
		e.At = a.now()
	}
	if e.Actor == "" {
		e.Actor = DefaultActor
	}
	return a.classify(ctx, "record audit", a.Store.RecordAudit(ctx, e))
}

// DeliverEvent sends one event to the app, or does nothing when no notify
// URL is configured. The event id is the Standard Webhooks message id and
// stays the same across retries so the app can de-duplicate.
func (a *Activities) DeliverEvent(ctx context.Context, in flow.DeliverEventInput) error {
	if a.Notifier == nil {
		return nil
	}
	if in.ID == "" {
		return temporal.NewNonRetryableApplicationError("An app event needs an id.", string(flow.CodeInvalidRequest), nil)
	}
	err := a.Notifier.Deliver(ctx, in.ID, in.Event)
	if err == nil {
		return nil
	}
	var p interface{ Permanent() bool }
	if errors.As(err, &p) && p.Permanent() {
		a.logger(ctx).Warn("app event refused for good", "eventId", in.ID, "type", in.Event.Type, "err", err)
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("deliver event: %v", err), ErrTypeNotifyGone, nil)
	}
	a.logger(ctx).Info("app event not delivered; will retry", "eventId", in.ID, "type", in.Event.Type, "err", err)
	return temporal.NewApplicationError(fmt.Sprintf("deliver event: %v", err), ErrTypeNotifyFailed)
}

// setStamp sets one security timestamp in u, when Planbok's record c
// confirms what it stamps.
func setStamp(u *store.SecurityUpdate, stamp flow.Stamp, at *time.Time, c *planbok.Customer) {
	switch stamp {
	case flow.StampPINSetAt:
		if c.HasPIN {
			u.PINSetAt = at
		}
	case flow.StampRecoverySetAt:
		if c.HasRecovery {
			u.RecoverySetAt = at
		}
	case flow.StampPINUpdatedAt:
		u.PINUpdatedAt = at
	case flow.StampLastPINResetAt:
		u.LastPINResetAt = at
	case flow.StampLastExportAt:
		u.LastExportAt = at
	}
}

// notFound reports whether err means Planbok does not know the customer
// (flow.ClassifyPlanbok's customer_not_found for a customer read: a 404, or
// an id Planbok cannot parse).
func notFound(err error) bool {
	var pe *planbok.Error
	return errors.As(err, &pe) && planbokVerdict(pe).Code == flow.CodeCustomerNotFound
}

func customerNotFound(id string) *flow.Error {
	return flow.Errorf(flow.CodeCustomerNotFound, "Customer %q was not found at Planbok.", id)
}
