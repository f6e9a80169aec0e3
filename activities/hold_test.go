package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

const testHold = 24 * time.Hour

// holdActivities returns activities with the export hold set, a ready
// customer at Planbok and a clock the test moves.
func holdActivities(hold time.Duration, now *time.Time) (*Activities, *fakeStore) {
	s := newFakeStore()
	a := newTestActivities(&fakePlanbok{customer: customer(true, true, false)}, s, nil)
	a.ExportHold = hold
	a.Now = func() time.Time { return *now }
	return a, s
}

func preflightExport(t *testing.T, a *Activities) *flow.Error {
	t.Helper()
	got, err := a.Preflight(context.Background(), flow.PreflightInput{CustomerID: cusID, Kind: flow.KindExportPrivateKeys})
	if err != nil {
		t.Fatalf("preflight: got error %v, want nil", err)
	}
	return got.Refusal
}

// completeReset does what a completed reset_pin flow does: SyncCustomer
// with the reset's time.
func completeReset(t *testing.T, a *Activities, at time.Time) flow.SyncCustomerResult {
	t.Helper()
	res, err := a.SyncCustomer(context.Background(), flow.SyncCustomerInput{CustomerID: cusID, Kind: flow.KindResetPIN, At: at})
	if err != nil {
		t.Fatalf("sync after reset: %v", err)
	}
	return res
}

func TestPreflight_ExportHoldBoundary(t *testing.T) {
	reset := testNow
	now := reset
	a, _ := holdActivities(testHold, &now)
	res := completeReset(t, a, reset)
	availableAt := reset.Add(testHold)
	if got := res.Security.ExportAvailableAt; got == nil || !got.Equal(availableAt) {
		t.Fatalf("security after the reset: got exportAvailableAt %v, want %v", got, availableAt)
	}

	now = availableAt.Add(-time.Second)
	refusal := preflightExport(t, a)
	if refusal == nil || refusal.Code != flow.CodeExportOnHold {
		t.Fatalf("one second before availableAt: got %v, want %s", refusal, flow.CodeExportOnHold)
	}
	if refusal.AvailableAt == nil || !refusal.AvailableAt.Equal(availableAt) {
		t.Fatalf("availableAt: got %v, want %v", refusal.AvailableAt, availableAt)
	}

	now = availableAt.Add(time.Second)
	if refusal := preflightExport(t, a); refusal != nil {
		t.Fatalf("one second after availableAt: got %v, want no refusal", refusal)
	}
}

func TestPreflight_ExportHoldOff(t *testing.T) {
	now := testNow
	a, _ := holdActivities(0, &now)
	res := completeReset(t, a, now)
	if res.Security.ExportAvailableAt != nil {
		t.Fatalf("hold off: got exportAvailableAt %v, want nil", res.Security.ExportAvailableAt)
	}
	now = now.Add(time.Second)
	if refusal := preflightExport(t, a); refusal != nil {
		t.Fatalf("hold off, right after a reset: got %v, want no refusal", refusal)
	}
}

func TestPreflight_ResetDuringHoldRestartsIt(t *testing.T) {
	first := testNow
	now := first
	a, _ := holdActivities(testHold, &now)
	completeReset(t, a, first)

	second := first.Add(20 * time.Hour)
	now = second
	completeReset(t, a, second)

	now = first.Add(testHold).Add(time.Second) // the first hold has passed
	refusal := preflightExport(t, a)
	if refusal == nil || refusal.AvailableAt == nil || !refusal.AvailableAt.Equal(second.Add(testHold)) {
		t.Fatalf("after a second reset: got %v, want export_on_hold until %v", refusal, second.Add(testHold))
	}
}

// The hold holds only exports, and comes after the standing rules: a
// locked-out customer hears customer_locked_out.
func TestPreflight_ExportHoldOnlyForExportAfterRules(t *testing.T) {
	now := testNow
	a, s := holdActivities(testHold, &now)
	completeReset(t, a, now)
	for _, k := range flow.Kinds {
		got, err := a.Preflight(context.Background(), flow.PreflightInput{CustomerID: cusID, Kind: k})
		if err != nil {
			t.Fatal(err)
		}
		held := got.Refusal != nil && got.Refusal.Code == flow.CodeExportOnHold
		if held != (k == flow.KindExportPrivateKeys) {
			t.Errorf("%s during the hold: got refusal %v", k, got.Refusal)
		}
	}
	a.Planbok = &fakePlanbok{customer: customer(true, true, true)}
	if refusal := preflightExport(t, a); refusal == nil || refusal.Code != flow.CodeCustomerLockedOut {
		t.Fatalf("locked out during the hold: got %v, want %s", refusal, flow.CodeCustomerLockedOut)
	}
	// A customer the store never saw has no reset on record.
	delete(s.customers, cusID)
	a.Planbok = &fakePlanbok{customer: customer(true, true, false)}
	if refusal := preflightExport(t, a); refusal != nil {
		t.Fatalf("customer unknown to the store: got %v, want no refusal", refusal)
	}
}

func TestPreflight_ExportHoldStoreDown(t *testing.T) {
	now := testNow
	a, s := holdActivities(testHold, &now)
	s.errFind = errors.New("database is locked")
	_, err := a.Preflight(context.Background(), flow.PreflightInput{CustomerID: cusID, Kind: flow.KindExportPrivateKeys})
	if err == nil {
		t.Fatal("store down: got no error, want one (a hold must not be skipped silently)")
	}
	// Other kinds do not read the store.
	if _, err := a.Preflight(context.Background(), flow.PreflightInput{CustomerID: cusID, Kind: flow.KindUpdatePIN}); err != nil {
		t.Fatalf("update_pin with the store down: got %v, want nil", err)
	}
}
