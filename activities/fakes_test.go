package activities

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/notify"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

// fakePlanbok answers from fields; err* fields, when set, are returned
// instead.
type fakePlanbok struct {
	mu        sync.Mutex
	customer  *planbok.Customer
	challenge *planbok.Challenge
	errGet    error
	errCreate error
	errChal   error
	// chalErrs, when set, answers GetChallenge call n (1-based) with
	// chalErrs[n-1] while there is one, then as usual.
	chalErrs  []error
	chalCalls int

	created []createCall
}

type createCall struct {
	customerID string
	task       planbok.Task
	params     planbok.ChallengeParams
}

func (f *fakePlanbok) GetCustomer(_ context.Context, id string) (*planbok.Customer, error) {
	if f.errGet != nil {
		return nil, f.errGet
	}
	if f.customer == nil || f.customer.ID != id {
		return nil, &planbok.Error{Op: "get customer", StatusCode: 404, Message: "Customer not found"}
	}
	c := *f.customer
	return &c, nil
}

func (f *fakePlanbok) CreateChallenge(_ context.Context, customerID string, task planbok.Task, p planbok.ChallengeParams) (*planbok.Challenge, error) {
	f.mu.Lock()
	f.created = append(f.created, createCall{customerID, task, p})
	f.mu.Unlock()
	if f.errCreate != nil {
		return nil, f.errCreate
	}
	return f.challenge, nil
}

func (f *fakePlanbok) GetChallenge(_ context.Context, _, _ string) (*planbok.Challenge, error) {
	f.mu.Lock()
	f.chalCalls++
	n := f.chalCalls
	f.mu.Unlock()
	if n <= len(f.chalErrs) && f.chalErrs[n-1] != nil {
		return nil, f.chalErrs[n-1]
	}
	if f.errChal != nil {
		return nil, f.errChal
	}
	return f.challenge, nil
}

// fakeStore keeps one customer's security, the flows and the audit rows.
type fakeStore struct {
	mu        sync.Mutex
	customers map[string]*store.Customer
	lockedBy  map[string]string // customer id → the By that locked it out
	flows     []flow.Flow
	metas     []store.FlowMeta
	updates   []store.SecurityUpdate
	audits    []store.AuditEntry
	err       error  // returned by every method when set
	errFind   error  // returned by FindCustomerByID when set
	onFind    func() // when set, runs in FindCustomerByID after the read
}

func newFakeStore() *fakeStore {
	return &fakeStore{customers: map[string]*store.Customer{}, lockedBy: map[string]string{}}
}

func (s *fakeStore) UpsertFlow(_ context.Context, f *flow.Flow, meta store.FlowMeta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.flows = append(s.flows, *f)
	s.metas = append(s.metas, meta)
	return nil
}

// FindFlowByID returns the last row written for id.
func (s *fakeStore) FindFlowByID(_ context.Context, id string) (*flow.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	for i := len(s.flows) - 1; i >= 0; i-- {
		if s.flows[i].ID == id {
			f := s.flows[i]
			return &f, nil
		}
	}
	return nil, flow.Errorf(flow.CodeFlowNotFound, "Flow %q was not found.", id)
}

// UpdateSecurity applies u whatever its SyncedAt, and answers LockedOutNow
// as the real store does: to the update that locks, and to a later one with
// the same non-empty By while the lockout lasts.
func (s *fakeStore) UpdateSecurity(_ context.Context, id string, u store.SecurityUpdate) (store.SecurityResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return store.SecurityResult{}, s.err
	}
	s.updates = append(s.updates, u)
	c, ok := s.customers[id]
	if !ok {
		c = &store.Customer{ID: id}
		s.customers[id] = c
	}
	sec := &c.Security
	wasLocked := sec.LockedOut
	switch {
	case !u.LockedOut:
		delete(s.lockedBy, id)
	case !wasLocked:
		s.lockedBy[id] = u.By
	}
	now := u.LockedOut && (!wasLocked || (u.By != "" && s.lockedBy[id] == u.By))
	sec.HasPIN, sec.HasRecovery, sec.LockedOut = u.HasPIN, u.HasRecovery, u.LockedOut
	synced := u.SyncedAt
	sec.SyncedAt = &synced
	for _, p := range []struct {
		dst **time.Time
		src *time.Time
	}{
		{&sec.PINSetAt, u.PINSetAt}, {&sec.PINUpdatedAt, u.PINUpdatedAt}, {&sec.RecoverySetAt, u.RecoverySetAt},
		{&sec.LastPINResetAt, u.LastPINResetAt}, {&sec.LastExportAt, u.LastExportAt},
	} {
		if p.src != nil {
			*p.dst = p.src
		}
	}
	sec.CanTransact = sec.Standing().CanTransact()
	return store.SecurityResult{Security: *sec, LockedOutNow: now}, nil
}

func (s *fakeStore) FindCustomerByID(_ context.Context, id string) (*store.Customer, error) {
	c, err := s.findCustomer(id)
	if s.onFind != nil {
		s.onFind()
	}
	return c, err
}

func (s *fakeStore) findCustomer(id string) (*store.Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.errFind != nil {
		return nil, s.errFind
	}
	c, ok := s.customers[id]
	if !ok {
		return nil, flow.Errorf(flow.CodeCustomerNotFound, "Customer %q was not found.", id)
	}
	cp := *c
	return &cp, nil
}

func (s *fakeStore) RecordAudit(_ context.Context, a *store.AuditEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.audits = append(s.audits, *a)
	return nil
}

type fakeNotifier struct {
	ids    []string
	events []flow.AppEvent
	err    error
}

func (n *fakeNotifier) Deliver(_ context.Context, id string, ev flow.AppEvent) error {
	n.ids = append(n.ids, id)
	n.events = append(n.events, ev)
	return n.err
}

// permanentErr mimics *notify.DeliveryError without importing notify.
type permanentErr struct{ status int }

func (e *permanentErr) Error() string   { return "notify: app answered " + http410(e.status) }
func (e *permanentErr) Permanent() bool { return e.status == 410 }

func http410(s int) string {
	if s == 410 {
		return "410 Gone"
	}
	return "500 Internal Server Error"
}

var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func newTestActivities(p *fakePlanbok, s *fakeStore, n Notifier) *Activities {
	return &Activities{Planbok: p, Store: s, Notifier: n, Now: func() time.Time { return testNow }}
}

// wantAppError checks err is an application error of type code with the
// given retryability.
func wantAppError(t *testing.T, err error, code string, retryable bool) *temporal.ApplicationError {
	t.Helper()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("got %T %v, want a *temporal.ApplicationError", err, err)
	}
	if appErr.Type() != code {
		t.Errorf("got type %q, want %q (message %q)", appErr.Type(), code, appErr.Message())
	}
	if appErr.NonRetryable() == retryable {
		t.Errorf("got non-retryable %v, want %v", appErr.NonRetryable(), !retryable)
	}
	return appErr
}

// The real notifier satisfies Notifier, and its 410 error is recognised as
// permanent by DeliverEvent's interface check (the package itself does not
// import notify).
var (
	_ Notifier                      = (*notify.Sender)(nil)
	_ interface{ Permanent() bool } = (*notify.DeliveryError)(nil)
)
