package store

import (
	"context"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

func TestCustomer_RoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		created := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
		c := &Customer{ID: "64f0c0ffee0000000000abcd", Name: "Ada", RefID: "user-1", CreatedAt: created}
		if err := s.UpsertCustomer(ctx, c); err != nil {
			t.Fatalf("UpsertCustomer: %v", err)
		}
		if !c.CreatedAt.Equal(created) || c.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt after upsert: got %v, want %v in UTC", c.CreatedAt, created)
		}
		got, err := s.FindCustomerByID(ctx, c.ID)
		if err != nil {
			t.Fatalf("FindCustomerByID: %v", err)
		}
		if got.ID != c.ID || got.Name != "Ada" || got.RefID != "user-1" {
			t.Errorf("got %+v, want id/name/refId %s/Ada/user-1", got, c.ID)
		}
		if !got.CreatedAt.Equal(created) || !got.UpdatedAt.Equal(c.UpdatedAt) {
			t.Errorf("times: got created %v updated %v, want %v and %v", got.CreatedAt, got.UpdatedAt, created, c.UpdatedAt)
		}
		if got.Security != (flow.Security{}) {
			t.Errorf("security of a new customer: got %+v, want zero", got.Security)
		}
	})
}

func TestUpsertCustomer_UpdatesNameKeepsSecurity(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.UpsertCustomer(ctx, &Customer{ID: "c1", Name: "Ada", RefID: "user-1"}); err != nil {
			t.Fatal(err)
		}
		synced := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		if _, err := s.UpdateSecurity(ctx, "c1", SecurityUpdate{HasPIN: true, HasRecovery: true, SyncedAt: synced}); err != nil {
			t.Fatal(err)
		}
		first, _ := s.FindCustomerByID(ctx, "c1")

		// An empty RefID keeps the stored one; CreatedAt never changes.
		c := &Customer{ID: "c1", Name: "Ada Lovelace", CreatedAt: synced.Add(time.Hour)}
		if err := s.UpsertCustomer(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindCustomerByID(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Ada Lovelace" || got.RefID != "user-1" {
			t.Errorf("name/refId: got %q/%q, want %q/%q", got.Name, got.RefID, "Ada Lovelace", "user-1")
		}
		if !got.CreatedAt.Equal(first.CreatedAt) {
			t.Errorf("CreatedAt: got %v, want unchanged %v", got.CreatedAt, first.CreatedAt)
		}
		if !got.Security.HasPIN || !got.Security.HasRecovery || !got.Security.CanTransact || !sameTime(got.Security.SyncedAt, &synced) {
			t.Errorf("security: got %+v, want the synced status kept", got.Security)
		}
	})
}

func TestEnsureCustomer_KeepsExistingRow(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.EnsureCustomer(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		if err := s.UpsertCustomer(ctx, &Customer{ID: "c1", Name: "Ada"}); err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureCustomer(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindCustomerByID(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Ada" {
			t.Errorf("name: got %q, want %q", got.Name, "Ada")
		}
	})
}

func TestCustomer_NotFoundAndEmptyID(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		_, err := s.FindCustomerByID(ctx, "nobody")
		wantCode(t, err, flow.CodeCustomerNotFound)
		if err := s.UpsertCustomer(ctx, &Customer{}); err == nil {
			t.Error("UpsertCustomer with empty id: got nil error, want one")
		}
		if err := s.EnsureCustomer(ctx, ""); err == nil {
			t.Error("EnsureCustomer with empty id: got nil error, want one")
		}
		if _, err := s.UpdateSecurity(ctx, "", SecurityUpdate{}); err == nil {
			t.Error("UpdateSecurity with empty id: got nil error, want one")
		}
	})
}

func TestUpdateSecurity_Merge(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

	// Each step applies one update to the same customer and checks the
	// merged result, which must also be what a later read returns.
	steps := []struct {
		name string
		u    SecurityUpdate
		want flow.Security
	}{
		{
			name: "first sync creates the row",
			u:    SecurityUpdate{HasPIN: true, HasRecovery: true, SyncedAt: at(10), PINSetAt: ptr(at(9)), RecoverySetAt: ptr(at(9))},
			want: flow.Security{HasPIN: true, HasRecovery: true, CanTransact: true, SyncedAt: ptr(at(10)), PINSetAt: ptr(at(9)), RecoverySetAt: ptr(at(9))},
		},
		{
			name: "nil timestamps leave stored ones; booleans follow the newer sync",
			u:    SecurityUpdate{HasPIN: true, HasRecovery: true, LockedOut: true, SyncedAt: at(20)},
			want: flow.Security{HasPIN: true, HasRecovery: true, LockedOut: true, SyncedAt: ptr(at(20)), PINSetAt: ptr(at(9)), RecoverySetAt: ptr(at(9))},
		},
		{
			name: "an older sync does not overwrite booleans but adds its timestamps",
			u:    SecurityUpdate{HasPIN: true, HasRecovery: true, LockedOut: false, SyncedAt: at(15), LastExportAt: ptr(at(14))},
			want: flow.Security{HasPIN: true, HasRecovery: true, LockedOut: true, SyncedAt: ptr(at(20)), PINSetAt: ptr(at(9)), RecoverySetAt: ptr(at(9)), LastExportAt: ptr(at(14))},
		},
		{
			name: "a newer sync after a reset unlocks and sets the reset time",
			u:    SecurityUpdate{HasPIN: true, HasRecovery: true, SyncedAt: at(30), LastPINResetAt: ptr(at(29))},
			want: flow.Security{HasPIN: true, HasRecovery: true, CanTransact: true, SyncedAt: ptr(at(30)), PINSetAt: ptr(at(9)), RecoverySetAt: ptr(at(9)), LastPINResetAt: ptr(at(29)), LastExportAt: ptr(at(14))},
		},
		{
			name: "a timestamp never moves backwards",
			u:    SecurityUpdate{HasPIN: true, HasRecovery: true, SyncedAt: at(31), LastPINResetAt: ptr(at(5)), PINUpdatedAt: ptr(at(31))},
			want: flow.Security{HasPIN: true, HasRecovery: true, CanTransact: true, SyncedAt: ptr(at(31)), PINSetAt: ptr(at(9)), PINUpdatedAt: ptr(at(31)), RecoverySetAt: ptr(at(9)), LastPINResetAt: ptr(at(29)), LastExportAt: ptr(at(14))},
		},
		{
			name: "the same SyncedAt again is applied (last writer wins a tie)",
			u:    SecurityUpdate{HasPIN: true, HasRecovery: false, SyncedAt: at(31)},
			want: flow.Security{HasPIN: true, SyncedAt: ptr(at(31)), PINSetAt: ptr(at(9)), PINUpdatedAt: ptr(at(31)), RecoverySetAt: ptr(at(9)), LastPINResetAt: ptr(at(29)), LastExportAt: ptr(at(14))},
		},
	}
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, st := range steps {
			got, err := s.UpdateSecurity(ctx, "c1", st.u)
			if err != nil {
				t.Fatalf("%s: UpdateSecurity: %v", st.name, err)
			}
			checkSecurity(t, st.name+" (returned)", got.Security, st.want)
			c, err := s.FindCustomerByID(ctx, "c1")
			if err != nil {
				t.Fatalf("%s: FindCustomerByID: %v", st.name, err)
			}
			checkSecurity(t, st.name+" (stored)", c.Security, st.want)
		}
	})
}

func TestUpdateSecurity_ZeroSyncedAtMeansNow(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		before := time.Now()
		got, err := s.UpdateSecurity(context.Background(), "c1", SecurityUpdate{HasPIN: true})
		if err != nil {
			t.Fatal(err)
		}
		if synced := got.Security.SyncedAt; synced == nil || synced.Before(before.Add(-time.Second)) || synced.After(time.Now().Add(time.Second)) {
			t.Errorf("SyncedAt: got %s, want about now", fmtPtr(synced))
		}
	})
}

func checkSecurity(t *testing.T, name string, got, want flow.Security) {
	t.Helper()
	if got.HasPIN != want.HasPIN || got.HasRecovery != want.HasRecovery || got.LockedOut != want.LockedOut || got.CanTransact != want.CanTransact {
		t.Errorf("%s: booleans: got pin=%v recovery=%v locked=%v canTransact=%v, want %v %v %v %v", name,
			got.HasPIN, got.HasRecovery, got.LockedOut, got.CanTransact,
			want.HasPIN, want.HasRecovery, want.LockedOut, want.CanTransact)
	}
	for _, f := range []struct {
		field     string
		got, want *time.Time
	}{
		{"syncedAt", got.SyncedAt, want.SyncedAt},
		{"pinSetAt", got.PINSetAt, want.PINSetAt},
		{"pinUpdatedAt", got.PINUpdatedAt, want.PINUpdatedAt},
		{"recoverySetAt", got.RecoverySetAt, want.RecoverySetAt},
		{"lastPinResetAt", got.LastPINResetAt, want.LastPINResetAt},
		{"lastExportAt", got.LastExportAt, want.LastExportAt},
	} {
		if !sameTime(f.got, f.want) {
			t.Errorf("%s: %s: got %s, want %s", name, f.field, fmtPtr(f.got), fmtPtr(f.want))
		}
	}
}

// TestUpdateSecurity_LockedOutBy walks one customer through lockouts by
// several syncs: the sync that locks is told so on every retry, no other
// sync is, an unlock forgets who locked, and a sync too old to apply its
// flags never claims a lockout.
func TestUpdateSecurity_LockedOutBy(t *testing.T) {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	const a, b = "flow:A", "webhook:B"
	steps := []struct {
		name       string
		u          SecurityUpdate
		wantNow    bool
		wantLocked bool
		wantBy     string // the stored locked_out_by
	}{
		{"A locks", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(1), By: a}, true, true, a},
		{"A again (a retried task)", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(2), By: a}, true, true, a},
		{"B while still locked", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(3), By: b}, false, true, a},
		{"an anonymous sync while locked", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(4)}, false, true, a},
		{"A again, older than the stored sync", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(0), By: a}, true, true, a},
		{"B unlocks", SecurityUpdate{HasPIN: true, SyncedAt: at(5), By: b}, false, false, ""},
		{"A again after the unlock, older", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(2), By: a}, false, false, ""},
		{"a locking sync older than the unlock", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(4), By: "flow:C"}, false, false, ""},
		{"B locks", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(6), By: b}, true, true, b},
		{"A now", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(7), By: a}, false, true, b},
		{"B again", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(8), By: b}, true, true, b},
		{"unlock", SecurityUpdate{HasPIN: true, SyncedAt: at(9)}, false, false, ""},
		{"an anonymous sync locks", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(10)}, true, true, ""},
		{"the anonymous sync again", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(11)}, false, true, ""},
		{"A while the anonymous lockout lasts", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: at(12), By: a}, false, true, ""},
	}
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, st := range steps {
			got, err := s.UpdateSecurity(ctx, "c1", st.u)
			if err != nil {
				t.Fatalf("%s: UpdateSecurity: %v", st.name, err)
			}
			if got.LockedOutNow != st.wantNow || got.Security.LockedOut != st.wantLocked {
				t.Errorf("%s: got LockedOutNow %v, locked %v; want %v, %v", st.name, got.LockedOutNow, got.Security.LockedOut, st.wantNow, st.wantLocked)
			}
			var by string
			if err := get(ctx, s.r, &by, `SELECT locked_out_by FROM customers WHERE id = 'c1'`); err != nil {
				t.Fatal(err)
			}
			if by != st.wantBy {
				t.Errorf("%s: stored locked_out_by: got %q, want %q", st.name, by, st.wantBy)
			}
		}
	})
}
