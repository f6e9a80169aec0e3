package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

const cusID = "65f0c0ffee0000000000abcd"

func customer(hasPIN, hasRecovery, locked bool) *planbok.Customer {
	status := planbok.CustomerActive
	if locked {
		status = planbok.CustomerLocked
	}
	return &planbok.Customer{ID: cusID, Status: status, HasPIN: hasPIN, HasRecovery: hasRecovery}
}

func TestPreflight(t *testing.T) {
	tests := []struct {
		name         string
		customer     *planbok.Customer
		kind         flow.Kind
		wantRefusal  flow.Code
		wantStanding flow.Standing
	}{
		{"new customer initializes", customer(false, false, false), flow.KindInitialize, "", flow.Standing{}},
		{"pin already set", customer(true, false, false), flow.KindInitialize, flow.CodePINAlreadySet, flow.Standing{HasPIN: true}},
		{"recovery needs pin", customer(false, false, false), flow.KindRecovery, flow.CodePINRequired, flow.Standing{}},
		{"wallets need recovery", customer(true, false, false), flow.KindCreateWallets, flow.CodeRecoveryRequired, flow.Standing{HasPIN: true}},
		{"export while locked", customer(true, true, true), flow.KindExportPrivateKeys, flow.CodeCustomerLockedOut, flow.Standing{HasPIN: true, HasRecovery: true, LockedOut: true}},
		{"reset pin while locked", customer(true, true, true), flow.KindResetPIN, "", flow.Standing{HasPIN: true, HasRecovery: true, LockedOut: true}},
		{"unknown customer", nil, flow.KindUpdatePIN, flow.CodeCustomerNotFound, flow.Standing{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestActivities(&fakePlanbok{customer: tt.customer}, newFakeStore(), nil)
			got, err := a.Preflight(context.Background(), flow.PreflightInput{CustomerID: cusID, Kind: tt.kind})
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if code := flow.ErrorCode(refusalErr(got.Refusal)); code != tt.wantRefusal {
				t.Errorf("got refusal %q, want %q", code, tt.wantRefusal)
			}
			if got.Standing != tt.wantStanding {
				t.Errorf("got standing %+v, want %+v", got.Standing, tt.wantStanding)
			}
		})
	}
}

// refusalErr keeps a nil *flow.Error a nil error.
func refusalErr(e *flow.Error) error {
	if e == nil {
		return nil
	}
	return e
}

func TestPreflight_PlanbokDown(t *testing.T) {
	a := newTestActivities(&fakePlanbok{errGet: &planbok.Error{Op: "get customer", StatusCode: 503, Message: "Service Unavailable"}}, newFakeStore(), nil)
	_, err := a.Preflight(context.Background(), flow.PreflightInput{CustomerID: cusID, Kind: flow.KindInitialize})
	wantAppError(t, err, string(flow.CodePlanbokUnavailable), true)
}

func TestCreateChallenge_Tasks(t *testing.T) {
	tests := []struct {
		kind            flow.Kind
		wantTask        planbok.Task
		wantAccountType string
		wantChains      []string
	}{
		{flow.KindInitialize, planbok.TaskInitialize, "", nil},
		{flow.KindRecovery, planbok.TaskRecovery, "", nil},
		{flow.KindUpdatePIN, planbok.TaskUpdatePIN, "", nil},
		{flow.KindResetPIN, planbok.TaskResetPIN, "", nil},
		{flow.KindExportPrivateKeys, planbok.TaskExportPrivateKeys, "", nil},
		{flow.KindCreateWallets, planbok.TaskCreateWallets, "eoa", []string{"ETH-SEPOLIA", "SOL-DEVNET"}},
	}
	expires := time.Date(2026, 3, 4, 5, 21, 7, 0, time.FixedZone("X", 7200))
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			p := &fakePlanbok{challenge: &planbok.Challenge{ChallengeID: "ch_1", RedirectURL: "https://gateway.example/c/ch_1", Status: "pending", ExpiresAt: expires}}
			a := newTestActivities(p, newFakeStore(), nil)
			got, err := a.CreateChallenge(context.Background(), flow.CreateChallengeInput{
				FlowID: "flow_1", CustomerID: cusID, Kind: tt.kind, RedirectURL: "https://app.example/back",
				Blockchains: []string{"ETH-SEPOLIA", "SOL-DEVNET"}, IdempotencyKey: "flow_1-challenge-1",
			})
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			want := flow.Challenge{ID: "ch_1", GatewayURL: "https://gateway.example/c/ch_1", ExpiresAt: expires.UTC()}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
			if got.ExpiresAt.Location() != time.UTC {
				t.Errorf("got expiresAt in %v, want UTC", got.ExpiresAt.Location())
			}
			if len(p.created) != 1 {
				t.Fatalf("got %d calls, want 1", len(p.created))
			}
			c := p.created[0]
			if c.customerID != cusID || c.task != tt.wantTask {
				t.Errorf("got customer %q task %q, want %q %q", c.customerID, c.task, cusID, tt.wantTask)
			}
			if c.params.IdempotencyKey != "flow_1-challenge-1" || c.params.RedirectURL != "https://app.example/back" {
				t.Errorf("got params %+v, want the input's key and redirect URL", c.params)
			}
			if c.params.AccountType != tt.wantAccountType || fmt.Sprint(c.params.Blockchains) != fmt.Sprint(tt.wantChains) {
				t.Errorf("got account type %q chains %v, want %q %v", c.params.AccountType, c.params.Blockchains, tt.wantAccountType, tt.wantChains)
			}
		})
	}
}

func TestCreateChallenge_Errors(t *testing.T) {
	ok := &planbok.Challenge{ChallengeID: "ch_1", RedirectURL: "https://gw/c", ExpiresAt: testNow}
	tests := []struct {
		name      string
		in        flow.CreateChallengeInput
		planbok   *fakePlanbok
		wantCode  flow.Code
		retryable bool
		wantCalls int
	}{
		{"unknown kind", flow.CreateChallengeInput{FlowID: "f", Kind: "sign_tx", IdempotencyKey: "k"}, &fakePlanbok{challenge: ok}, flow.CodeInvalidRequest, false, 0},
		{"no key and no flow id", flow.CreateChallengeInput{Kind: flow.KindInitialize}, &fakePlanbok{challenge: ok}, flow.CodeInvalidRequest, false, 0},
		{"locked", flow.CreateChallengeInput{FlowID: "f", Kind: flow.KindUpdatePIN, IdempotencyKey: "k"},
			&fakePlanbok{errCreate: &planbok.Error{StatusCode: 403, Message: "Customer is locked"}}, flow.CodeCustomerLockedOut, false, 1},
		{"out of order", flow.CreateChallengeInput{FlowID: "f", Kind: flow.KindRecovery, IdempotencyKey: "k"},
			&fakePlanbok{errCreate: &planbok.Error{StatusCode: 400, Message: "PIN not set"}}, flow.CodePlanbokRejected, false, 1},
		{"rate limited", flow.CreateChallengeInput{FlowID: "f", Kind: flow.KindRecovery, IdempotencyKey: "k"},
			&fakePlanbok{errCreate: &planbok.Error{StatusCode: 429, Message: "Too many requests"}}, flow.CodePlanbokUnavailable, true, 1},
		{"success without challenge", flow.CreateChallengeInput{FlowID: "f", Kind: flow.KindRecovery, IdempotencyKey: "k"},
			&fakePlanbok{challenge: &planbok.Challenge{}}, flow.CodePlanbokUnavailable, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestActivities(tt.planbok, newFakeStore(), nil)
			_, err := a.CreateChallenge(context.Background(), tt.in)
			wantAppError(t, err, string(tt.wantCode), tt.retryable)
			if len(tt.planbok.created) != tt.wantCalls {
				t.Errorf("got %d Planbok calls, want %d", len(tt.planbok.created), tt.wantCalls)
			}
		})
	}
}

func TestCreateChallenge_FallbackKey(t *testing.T) {
	p := &fakePlanbok{challenge: &planbok.Challenge{ChallengeID: "ch_1", RedirectURL: "https://gw/c"}}
	a := newTestActivities(p, newFakeStore(), nil)
	if _, err := a.CreateChallenge(context.Background(), flow.CreateChallengeInput{FlowID: "flow_x", CustomerID: cusID, Kind: flow.KindInitialize}); err != nil {
		t.Fatal(err)
	}
	if got := p.created[0].params.IdempotencyKey; got != "flow_x-challenge" {
		t.Errorf("got key %q, want %q", got, "flow_x-challenge")
	}
}

func TestGetChallenge(t *testing.T) {
	tests := []struct {
		name       string
		planbok    *fakePlanbok
		wantStatus string
		wantCode   flow.Code
		retryable  bool
	}{
		{"pending", &fakePlanbok{challenge: &planbok.Challenge{Status: "pending"}}, "pending", "", false},
		{"verified", &fakePlanbok{challenge: &planbok.Challenge{Status: "verified"}}, "verified", "", false},
		{"failed", &fakePlanbok{challenge: &planbok.Challenge{Status: "failed"}}, "failed", "", false},
		{"pruned", &fakePlanbok{errChal: &planbok.Error{StatusCode: 404, Message: "Challenge not found"}}, flow.ChallengeGone, "", false},
		{"planbok down", &fakePlanbok{errChal: &planbok.Error{StatusCode: 502}}, "", flow.CodePlanbokUnavailable, true},
		{"network", &fakePlanbok{errChal: &planbok.Error{Err: errors.New("connection reset")}}, "", flow.CodePlanbokUnavailable, true},
		{"empty status", &fakePlanbok{challenge: &planbok.Challenge{}}, "", flow.CodePlanbokUnavailable, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestActivities(tt.planbok, newFakeStore(), nil)
			got, err := a.GetChallenge(context.Background(), flow.GetChallengeInput{CustomerID: cusID, ChallengeID: "ch_1"})
			if tt.wantCode != "" {
				wantAppError(t, err, string(tt.wantCode), tt.retryable)
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got.Status != tt.wantStatus {
				t.Errorf("got status %q, want %q", got.Status, tt.wantStatus)
			}
		})
	}
}

func TestRecordFlow(t *testing.T) {
	s := newFakeStore()
	a := newTestActivities(&fakePlanbok{}, s, nil)
	f := flow.Flow{ID: "flow_1", CustomerID: cusID, Kind: flow.KindInitialize, Status: flow.StatusAwaitingUser}
	if err := a.RecordFlow(context.Background(), flow.RecordFlowInput{Flow: f, IdempotencyKey: "idem", RequestHash: "hash"}); err != nil {
		t.Fatalf("got error %v, want nil", err)
	}
	if len(s.flows) != 1 || s.flows[0].ID != "flow_1" || s.flows[0].Status != flow.StatusAwaitingUser {
		t.Errorf("got flows %+v, want flow_1 awaiting_user", s.flows)
	}
	if want := (store.FlowMeta{IdempotencyKey: "idem", RequestHash: "hash"}); s.metas[0] != want {
		t.Errorf("got meta %+v, want %+v", s.metas[0], want)
	}
}

func TestStoreErrors(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantCode  flow.Code
		retryable bool
	}{
		{"database busy", errors.New("store: upsert flow flow_1: database is locked"), flow.CodeInternal, true},
		{"idempotency key reused", flow.Errorf(flow.CodeIdempotencyKeyReused, "The idempotency key was already used for another flow."), flow.CodeIdempotencyKeyReused, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeStore()
			s.err = tt.err
			a := newTestActivities(&fakePlanbok{customer: customer(true, true, false)}, s, nil)
			ctx := context.Background()
			errs := map[string]error{
				"RecordFlow":  a.RecordFlow(ctx, flow.RecordFlowInput{Flow: flow.Flow{ID: "flow_1"}}),
				"RecordAudit": a.RecordAudit(ctx, flow.AuditInput{Action: "x"}),
			}
			_, errs["SyncCustomer"] = a.SyncCustomer(ctx, flow.SyncCustomerInput{CustomerID: cusID})
			for name, err := range errs {
				t.Run(name, func(t *testing.T) { wantAppError(t, err, string(tt.wantCode), tt.retryable) })
			}
		})
	}
}

func TestSyncCustomer(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	earlier := at.Add(-24 * time.Hour)
	type stamps struct{ pinSet, pinUpdated, recoverySet, lastReset, lastExport bool }
	tests := []struct {
		name       string
		customer   *planbok.Customer
		stored     *flow.Security // nil: the store has no row yet
		in         flow.SyncCustomerInput
		want       stamps
		wantLocked bool
		wantNow    bool
	}{
		{"initialize with recovery", customer(true, true, false), nil,
			flow.SyncCustomerInput{Kind: flow.KindInitialize, At: at}, stamps{pinSet: true, recoverySet: true}, false, false},
		{"initialize without recovery", customer(true, false, false), nil,
			flow.SyncCustomerInput{Kind: flow.KindInitialize, At: at}, stamps{pinSet: true}, false, false},
		{"recovery", customer(true, true, false), &flow.Security{HasPIN: true},
			flow.SyncCustomerInput{Kind: flow.KindRecovery, At: at}, stamps{recoverySet: true}, false, false},
		{"update pin", customer(true, true, false), &flow.Security{HasPIN: true, HasRecovery: true},
			flow.SyncCustomerInput{Kind: flow.KindUpdatePIN, At: at}, stamps{pinUpdated: true}, false, false},
		{"reset pin unlocks", customer(true, true, false), &flow.Security{HasPIN: true, HasRecovery: true, LockedOut: true},
			flow.SyncCustomerInput{Kind: flow.KindResetPIN, At: at}, stamps{lastReset: true}, false, false},
		{"export", customer(true, true, false), &flow.Security{HasPIN: true, HasRecovery: true},
			flow.SyncCustomerInput{Kind: flow.KindExportPrivateKeys, At: at}, stamps{lastExport: true}, false, false},
		{"create wallets", customer(true, true, false), &flow.Security{HasPIN: true, HasRecovery: true},
			flow.SyncCustomerInput{Kind: flow.KindCreateWallets, At: at}, stamps{}, false, false},
		{"pin_setup event, unset", customer(true, false, false), &flow.Security{},
			flow.SyncCustomerInput{Event: planbok.EventCustomerPINSetup, At: at}, stamps{pinSet: true}, false, false},
		{"pin_setup event, already set", customer(true, false, false), &flow.Security{HasPIN: true, PINSetAt: &earlier},
			flow.SyncCustomerInput{Event: planbok.EventCustomerPINSetup, At: at}, stamps{}, false, false},
		{"pin_setup event, Planbok disagrees", customer(false, false, false), nil,
			flow.SyncCustomerInput{Event: planbok.EventCustomerPINSetup, At: at}, stamps{}, false, false},
		{"recovery_setup event, unset", customer(true, true, false), &flow.Security{HasPIN: true},
			flow.SyncCustomerInput{Event: planbok.EventCustomerRecoverySetup, At: at}, stamps{recoverySet: true}, false, false},
		{"locked_out event, newly locked", customer(true, true, true), &flow.Security{HasPIN: true, HasRecovery: true},
			flow.SyncCustomerInput{Event: planbok.EventCustomerLockedOut, At: at}, stamps{}, true, true},
		{"locked, first sight", customer(true, true, true), nil,
			flow.SyncCustomerInput{Event: planbok.EventCustomerLockedOut, At: at}, stamps{}, true, true},
		{"locked, already known", customer(true, true, true), &flow.Security{HasPIN: true, HasRecovery: true, LockedOut: true},
			flow.SyncCustomerInput{Event: planbok.EventCustomerLockedOut, At: at}, stamps{}, true, false},
		{"zero At uses the clock", customer(true, true, false), &flow.Security{HasPIN: true, HasRecovery: true},
			flow.SyncCustomerInput{Kind: flow.KindUpdatePIN}, stamps{pinUpdated: true}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeStore()
			if tt.stored != nil {
				s.customers[cusID] = &store.Customer{ID: cusID, Security: *tt.stored}
			}
			a := newTestActivities(&fakePlanbok{customer: tt.customer}, s, nil)
			tt.in.CustomerID = cusID
			got, err := a.SyncCustomer(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if len(s.updates) != 1 {
				t.Fatalf("got %d updates, want 1", len(s.updates))
			}
			u := s.updates[0]
			if u.HasPIN != tt.customer.HasPIN || u.HasRecovery != tt.customer.HasRecovery || u.LockedOut != tt.wantLocked {
				t.Errorf("got booleans pin=%v recovery=%v locked=%v, want Planbok's %v %v %v",
					u.HasPIN, u.HasRecovery, u.LockedOut, tt.customer.HasPIN, tt.customer.HasRecovery, tt.wantLocked)
			}
			if !u.SyncedAt.Equal(testNow) {
				t.Errorf("got syncedAt %v, want the clock's %v", u.SyncedAt, testNow)
			}
			wantAt := at
			if tt.in.At.IsZero() {
				wantAt = testNow
			}
			check := func(name string, got *time.Time, want bool) {
				t.Helper()
				switch {
				case want && (got == nil || !got.Equal(wantAt)):
					t.Errorf("got %s %v, want %v", name, got, wantAt)
				case !want && got != nil:
					t.Errorf("got %s %v, want nil", name, got)
				}
			}
			check("pinSetAt", u.PINSetAt, tt.want.pinSet)
			check("pinUpdatedAt", u.PINUpdatedAt, tt.want.pinUpdated)
			check("recoverySetAt", u.RecoverySetAt, tt.want.recoverySet)
			check("lastPinResetAt", u.LastPINResetAt, tt.want.lastReset)
			check("lastExportAt", u.LastExportAt, tt.want.lastExport)
			if got.LockedOutNow != tt.wantNow {
				t.Errorf("got LockedOutNow %v, want %v", got.LockedOutNow, tt.wantNow)
			}
			if got.Security.LockedOut != tt.wantLocked || got.Security.SyncedAt == nil {
				t.Errorf("got security %+v, want the store's merged status", got.Security)
			}
		})
	}
}

// TestSyncCustomer_LockoutToldToOneSync: the sync that locked the customer
// out is told so again when it runs again (its workflow task was retried
// after the first run's write), and no other sync is told, whatever its
// kind of id.
func TestSyncCustomer_LockoutToldToOneSync(t *testing.T) {
	s := newFakeStore()
	s.customers[cusID] = &store.Customer{ID: cusID, Security: flow.Security{HasPIN: true, HasRecovery: true}}
	a := newTestActivities(&fakePlanbok{customer: customer(true, true, true)}, s, nil)
	steps := []struct {
		name    string
		in      flow.SyncCustomerInput
		wantBy  string
		wantNow bool
	}{
		{"the flow that sees the lockout", flow.SyncCustomerInput{FlowID: "flow_1"}, "flow:flow_1", true},
		{"the same flow again", flow.SyncCustomerInput{FlowID: "flow_1"}, "flow:flow_1", true},
		{"another flow", flow.SyncCustomerInput{FlowID: "flow_2"}, "flow:flow_2", false},
		{"a webhook with the flow's id", flow.SyncCustomerInput{WebhookID: "flow_1", Event: planbok.EventCustomerLockedOut}, "webhook:flow_1", false},
		{"an anonymous sync", flow.SyncCustomerInput{Event: planbok.EventCustomerLockedOut}, "", false},
		{"the first flow once more", flow.SyncCustomerInput{FlowID: "flow_1"}, "flow:flow_1", true},
	}
	for i, st := range steps {
		st.in.CustomerID, st.in.At = cusID, testNow
		got, err := a.SyncCustomer(context.Background(), st.in)
		if err != nil {
			t.Fatalf("%s: got error %v, want nil", st.name, err)
		}
		if got.LockedOutNow != st.wantNow || !got.Security.LockedOut {
			t.Errorf("%s: got LockedOutNow %v (locked %v), want %v", st.name, got.LockedOutNow, got.Security.LockedOut, st.wantNow)
		}
		if by := s.updates[i].By; by != st.wantBy {
			t.Errorf("%s: store update by %q, want %q", st.name, by, st.wantBy)
		}
	}
}

// TestSyncCustomer_ConcurrentSyncsOneLockout: a flow's end and a lockout
// webhook sync the customer at once, both reading the stored row before
// either writes; only one of them is told it locked the customer out.
func TestSyncCustomer_ConcurrentSyncsOneLockout(t *testing.T) {
	s := newFakeStore()
	s.customers[cusID] = &store.Customer{ID: cusID, Security: flow.Security{HasPIN: true, HasRecovery: true}}
	var read sync.WaitGroup
	read.Add(2)
	s.onFind = func() { read.Done(); read.Wait() }
	a := newTestActivities(&fakePlanbok{customer: customer(true, true, true)}, s, nil)
	ins := []flow.SyncCustomerInput{
		{CustomerID: cusID, FlowID: "flow_1", At: testNow},
		{CustomerID: cusID, WebhookID: "wh_1", Event: planbok.EventCustomerLockedOut, At: testNow},
	}
	got := make([]flow.SyncCustomerResult, len(ins))
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Go(func() { got[i], errs[i] = a.SyncCustomer(context.Background(), in) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("got errors %v, %v; want nil", errs[0], errs[1])
	}
	if got[0].LockedOutNow == got[1].LockedOutNow {
		t.Errorf("got LockedOutNow %v and %v, want exactly one true", got[0].LockedOutNow, got[1].LockedOutNow)
	}
}

func TestSyncCustomer_Errors(t *testing.T) {
	tests := []struct {
		name      string
		planbok   *fakePlanbok
		errFind   error
		wantCode  flow.Code
		retryable bool
	}{
		{"customer gone at Planbok", &fakePlanbok{}, nil, flow.CodeCustomerNotFound, false},
		{"Planbok down", &fakePlanbok{errGet: &planbok.Error{StatusCode: 500}}, nil, flow.CodePlanbokUnavailable, true},
		{"store read fails", &fakePlanbok{customer: customer(true, true, false)}, errors.New("disk I/O error"), flow.CodeInternal, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeStore()
			s.errFind = tt.errFind
			a := newTestActivities(tt.planbok, s, nil)
			_, err := a.SyncCustomer(context.Background(), flow.SyncCustomerInput{CustomerID: cusID, Kind: flow.KindUpdatePIN, At: testNow})
			wantAppError(t, err, string(tt.wantCode), tt.retryable)
			if len(s.updates) != 0 {
				t.Errorf("got %d updates, want none", len(s.updates))
			}
		})
	}
}

func TestRecordAudit(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600))
	tests := []struct {
		name      string
		in        flow.AuditInput
		wantAt    time.Time
		wantActor string
	}{
		{"as given", flow.AuditInput{At: at, Actor: "key_1", Action: "flow.start", CustomerID: cusID, FlowID: "flow_1", Outcome: "ok", Detail: "update_pin", DedupeKey: "flow_1.end"}, at.UTC(), "key_1"},
		{"defaults", flow.AuditInput{Action: "flow.complete", CustomerID: cusID, Outcome: "ok"}, testNow, DefaultActor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeStore()
			a := newTestActivities(&fakePlanbok{}, s, nil)
			if err := a.RecordAudit(context.Background(), tt.in); err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			got := s.audits[0]
			want := store.AuditEntry{At: tt.wantAt, Actor: tt.wantActor, Action: tt.in.Action, CustomerID: tt.in.CustomerID,
				FlowID: tt.in.FlowID, Outcome: tt.in.Outcome, Detail: tt.in.Detail, DedupeKey: tt.in.DedupeKey}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestDeliverEvent(t *testing.T) {
	ev := flow.AppEvent{Type: flow.EventPINUpdated, Timestamp: testNow, Data: flow.AppEventData{CustomerID: cusID}}
	t.Run("no notify URL", func(t *testing.T) {
		a := newTestActivities(&fakePlanbok{}, newFakeStore(), nil)
		if err := a.DeliverEvent(context.Background(), flow.DeliverEventInput{ID: "evt_1", Event: ev}); err != nil {
			t.Errorf("got %v, want nil", err)
		}
	})
	t.Run("delivered", func(t *testing.T) {
		n := &fakeNotifier{}
		a := newTestActivities(&fakePlanbok{}, newFakeStore(), n)
		if err := a.DeliverEvent(context.Background(), flow.DeliverEventInput{ID: "evt_1", Event: ev}); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		if len(n.ids) != 1 || n.ids[0] != "evt_1" || n.events[0].Type != flow.EventPINUpdated {
			t.Errorf("got ids %v events %+v, want evt_1 customer.pin_updated", n.ids, n.events)
		}
	})
	tests := []struct {
		name      string
		in        flow.DeliverEventInput
		err       error
		wantType  string
		retryable bool
	}{
		{"app fails", flow.DeliverEventInput{ID: "evt_1", Event: ev}, &permanentErr{500}, ErrTypeNotifyFailed, true},
		{"network", flow.DeliverEventInput{ID: "evt_1", Event: ev}, errors.New("notify: post event: connection refused"), ErrTypeNotifyFailed, true},
		{"gone", flow.DeliverEventInput{ID: "evt_1", Event: ev}, fmt.Errorf("wrapped: %w", &permanentErr{410}), ErrTypeNotifyGone, false},
		{"no id", flow.DeliverEventInput{Event: ev}, nil, string(flow.CodeInvalidRequest), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestActivities(&fakePlanbok{}, newFakeStore(), &fakeNotifier{err: tt.err})
			err := a.DeliverEvent(context.Background(), tt.in)
			wantAppError(t, err, tt.wantType, tt.retryable)
		})
	}
}

func TestClassify(t *testing.T) {
	secretURL := `Get "https://api.planbok.io/v2/customers/x?apiKey=sk_live_123": dial tcp: connection refused`
	tests := []struct {
		name        string
		err         error
		wantCode    flow.Code
		retryable   bool
		wantMessage string // substring
	}{
		{"429", &planbok.Error{StatusCode: 429, Message: "Too Many Requests"}, flow.CodePlanbokUnavailable, true, "HTTP 429"},
		{"500", &planbok.Error{StatusCode: 500}, flow.CodePlanbokUnavailable, true, "unavailable"},
		{"502", &planbok.Error{StatusCode: 502}, flow.CodePlanbokUnavailable, true, ""},
		{"503", &planbok.Error{StatusCode: 503}, flow.CodePlanbokUnavailable, true, ""},
		{"408", &planbok.Error{StatusCode: 408}, flow.CodePlanbokUnavailable, true, ""},
		{"network", &planbok.Error{Op: "get customer", Err: errors.New(secretURL)}, flow.CodePlanbokUnavailable, true, ""},
		{"timeout", &planbok.Error{Err: context.DeadlineExceeded}, flow.CodePlanbokUnavailable, true, ""},
		{"cancelled", &planbok.Error{Err: context.Canceled}, flow.CodePlanbokUnavailable, true, "cancelled"},
		{"401", &planbok.Error{StatusCode: 401, Message: "Invalid API key sk_live_123"}, flow.CodePlanbokUnavailable, false, "credentials"},
		{"403 on a challenge", &planbok.Error{Op: "create update-pin challenge", StatusCode: 403, Message: "Forbidden"}, flow.CodeCustomerLockedOut, false, "locked out"},
		// A locked customer can still be read: a 403 there is our key.
		{"403 on a read", &planbok.Error{Op: "get customer", StatusCode: 403, Message: "Forbidden"}, flow.CodePlanbokUnavailable, false, "permissions"},
		{"400 locked", &planbok.Error{StatusCode: 400, Message: "Customer is locked"}, flow.CodeCustomerLockedOut, false, "locked out"},
		{"404 on a read", &planbok.Error{Op: "get customer", StatusCode: 404, Message: "Customer not found"}, flow.CodeCustomerNotFound, false, "No customer"},
		{"404 on a challenge", &planbok.Error{Op: "create reset-pin challenge", StatusCode: 404, Message: "Customer not found"}, flow.CodeCustomerNotFound, false, "No customer"},
		// An id Planbok cannot parse is no outage.
		{"400 on a read", &planbok.Error{Op: "get customer", StatusCode: 400, Message: "Invalid id"}, flow.CodeCustomerNotFound, false, "No customer"},
		{"400", &planbok.Error{StatusCode: 400, Message: "Recovery is not set up"}, flow.CodePlanbokRejected, false, "Planbok refused the request: Recovery is not set up"},
		{"409", &planbok.Error{StatusCode: 409, Message: "Conflict"}, flow.CodePlanbokRejected, false, "Conflict"},
		{"422", &planbok.Error{StatusCode: 422, Message: ""}, flow.CodePlanbokRejected, false, "Planbok refused the request."},
		{"wrapped 400", fmt.Errorf("create: %w", &planbok.Error{StatusCode: 400, Message: "bad"}), flow.CodePlanbokRejected, false, "bad"},
		{"refused before sending", &planbok.Error{Op: "create initialize challenge", Message: "empty redirect URL"}, flow.CodePlanbokRejected, false, "Planbok refused the request"},
		{"read refused before sending", &planbok.Error{Op: "get customer", Message: "empty customer id"}, flow.CodeCustomerNotFound, false, "No customer"},
		{"2xx of the wrong shape", &planbok.Error{StatusCode: 200, Err: errors.New("json: cannot unmarshal")}, flow.CodePlanbokUnavailable, false, "unexpected"},
		{"store", errors.New("store: record audit: database is locked"), flow.CodeInternal, true, "database is locked"},
		{"context deadline", fmt.Errorf("store: %w", context.DeadlineExceeded), flow.CodeInternal, true, ""},
		{"flow error", flow.Errorf(flow.CodeIdempotencyKeyReused, "reused"), flow.CodeIdempotencyKeyReused, false, "reused"},
		{"flow internal", flow.Errorf(flow.CodeInternal, "oops"), flow.CodeInternal, true, "oops"},
		{"already classified", temporal.NewNonRetryableApplicationError("x", "custom", nil), "custom", false, "x"},
	}
	a := newTestActivities(&fakePlanbok{}, newFakeStore(), nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.classify(context.Background(), "op", tt.err)
			appErr := wantAppError(t, err, string(tt.wantCode), tt.retryable)
			if !strings.Contains(appErr.Message(), tt.wantMessage) {
				t.Errorf("got message %q, want it to contain %q", appErr.Message(), tt.wantMessage)
			}
			for _, leak := range []string{"sk_live_123", "https://"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q leaks %q", err, leak)
				}
			}
		})
	}
	if err := a.classify(context.Background(), "op", nil); err != nil {
		t.Errorf("got %v for nil, want nil", err)
	}
}

// TestActivityEnvironment runs activities through the SDK's test
// environment by their registered names, as workflows call them, so the
// payload conversion of inputs, results and failures is exercised too.
func TestActivityEnvironment(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	s := newFakeStore()
	a := newTestActivities(&fakePlanbok{customer: customer(true, false, false)}, s, nil)
	env.RegisterActivityWithOptions(a.Preflight, activity.RegisterOptions{Name: flow.ActivityPreflight})
	env.RegisterActivityWithOptions(a.SyncCustomer, activity.RegisterOptions{Name: flow.ActivitySyncCustomer})
	env.RegisterActivityWithOptions(a.GetChallenge, activity.RegisterOptions{Name: flow.ActivityGetChallenge})

	val, err := env.ExecuteActivity(flow.ActivityPreflight, flow.PreflightInput{CustomerID: cusID, Kind: flow.KindCreateWallets})
	if err != nil {
		t.Fatalf("Preflight: %v", err)
	}
	var pre flow.PreflightResult
	if err := val.Get(&pre); err != nil {
		t.Fatal(err)
	}
	if pre.Refusal == nil || pre.Refusal.Code != flow.CodeRecoveryRequired || !pre.Standing.HasPIN {
		t.Errorf("got %+v, want a recovery_required refusal with hasPin", pre)
	}

	val, err = env.ExecuteActivity(flow.ActivitySyncCustomer, flow.SyncCustomerInput{CustomerID: cusID, Kind: flow.KindInitialize, At: testNow})
	if err != nil {
		t.Fatalf("SyncCustomer: %v", err)
	}
	var sync flow.SyncCustomerResult
	if err := val.Get(&sync); err != nil {
		t.Fatal(err)
	}
	if !sync.Security.HasPIN || sync.Security.PINSetAt == nil || !sync.Security.PINSetAt.Equal(testNow) {
		t.Errorf("got %+v, want hasPin with pinSetAt %v", sync.Security, testNow)
	}

	// A failure crosses the environment as an ApplicationError whose type
	// is the flow code, as the workflows' retry policies expect.
	a.Planbok = &fakePlanbok{errChal: &planbok.Error{StatusCode: 422, Message: "Invalid challenge id"}}
	_, err = env.ExecuteActivity(flow.ActivityGetChallenge, flow.GetChallengeInput{CustomerID: cusID, ChallengeID: "nope"})
	appErr := wantAppError(t, err, string(flow.CodePlanbokRejected), false)
	if !strings.Contains(appErr.Message(), "Invalid challenge id") {
		t.Errorf("got message %q, want Planbok's message", appErr.Message())
	}
}

func TestReadFlow_RowOrNil(t *testing.T) {
	st := newFakeStore()
	a := &Activities{Store: st}
	got, err := a.ReadFlow(context.Background(), flow.ReadFlowInput{FlowID: "flow_missing"})
	if err != nil || got != nil {
		t.Fatalf("missing row: got %v, %v; want nil, nil", got, err)
	}
	want := flow.Flow{ID: "flow_x", Status: flow.StatusCompleted}
	if err := st.UpsertFlow(context.Background(), &want, store.FlowMeta{}); err != nil {
		t.Fatal(err)
	}
	got, err = a.ReadFlow(context.Background(), flow.ReadFlowInput{FlowID: "flow_x"})
	if err != nil || got == nil || got.Status != flow.StatusCompleted {
		t.Fatalf("stored row: got %+v, %v; want the completed flow", got, err)
	}
	st.err = errors.New("database is locked")
	if _, err := a.ReadFlow(context.Background(), flow.ReadFlowInput{FlowID: "flow_x"}); err == nil {
		t.Fatal("store failure: got nil error, want one")
	}
}
