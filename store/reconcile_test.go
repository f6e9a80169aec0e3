package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

func TestListCustomerIDs_PagesInIDOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, id := range []string{"c3", "c1", "c5", "c2", "c4"} {
			if err := s.EnsureCustomer(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		var all []string
		after := ""
		for range 10 {
			page, err := s.ListCustomerIDs(ctx, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page...)
			if len(page) < 2 {
				break
			}
			after = page[len(page)-1]
		}
		if !slices.Equal(all, []string{"c1", "c2", "c3", "c4", "c5"}) {
			t.Fatalf("got %v, want every id once, in order", all)
		}
	})
}

func TestListActiveFlows_OnlyActiveAndOld(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		put := func(id string, st flow.Status, updated time.Time) {
			f := &flow.Flow{ID: id, CustomerID: "c1", Kind: flow.KindRecovery, Status: st, CreatedAt: base, UpdatedAt: updated}
			if err := s.UpsertFlow(ctx, f, FlowMeta{}); err != nil {
				t.Fatal(err)
			}
		}
		put("flow_a", flow.StatusAwaitingUser, base)
		put("flow_b", flow.StatusStarting, base)
		put("flow_c", flow.StatusCompleted, base)
		put("flow_d", flow.StatusAwaitingUser, base.Add(time.Hour)) // too recent
		put("flow_e", flow.StatusAwaitingUser, base)
		got, err := s.ListActiveFlows(ctx, "", base.Add(time.Minute), 2)
		if err != nil {
			t.Fatal(err)
		}
		next, err := s.ListActiveFlows(ctx, got[len(got)-1].ID, base.Add(time.Minute), 2)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, f := range append(got, next...) {
			ids = append(ids, f.ID)
		}
		if !slices.Equal(ids, []string{"flow_a", "flow_b", "flow_e"}) {
			t.Fatalf("got %v, want the active rows older than the cutoff", ids)
		}
	})
}

func TestCorrectSecurity_AppliesWithAuditOnlyIfUnchanged(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		synced := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		if _, err := s.UpdateSecurity(ctx, "c1", SecurityUpdate{HasPIN: true, SyncedAt: synced}); err != nil {
			t.Fatal(err)
		}
		at := synced.Add(time.Hour)
		corr := SecurityCorrection{
			Expect: flow.Standing{HasPIN: true},
			Truth:  flow.Standing{HasPIN: true, HasRecovery: true},
			At:     at,
			Audit:  []*AuditEntry{{Actor: "reconcile-x", Action: "reconcile.correct", CustomerID: "c1", Outcome: "corrected", Detail: "hasRecovery"}},
		}
		sec, applied, err := s.CorrectSecurity(ctx, "c1", corr)
		if err != nil || !applied {
			t.Fatalf("got applied %v, %v; want applied", applied, err)
		}
		if !sec.HasRecovery || !sec.CanTransact || !sameTime(sec.RecoverySetAt, &at) || !sameTime(sec.SyncedAt, &at) || sec.PINSetAt != nil {
			t.Fatalf("security: got %+v, want recovery set at %s and nothing else stamped", sec, at)
		}
		rows, err := s.FindAuditByActor(ctx, "c1", "reconcile-x", "reconcile.correct")
		if err != nil || len(rows) != 1 || rows[0].Detail != "hasRecovery" || !rows[0].At.Equal(at) {
			t.Fatalf("audit: got %+v, %v; want the one row", rows, err)
		}

		// The same correction again: the stored flags moved on, nothing is
		// written.
		corr.Audit = []*AuditEntry{{Actor: "reconcile-y", Action: "reconcile.correct", CustomerID: "c1"}}
		sec, applied, err = s.CorrectSecurity(ctx, "c1", corr)
		if err != nil || applied || !sec.HasRecovery {
			t.Fatalf("stale correction: got applied %v, %v, %+v; want not applied", applied, err, sec)
		}
		if rows, _ := s.FindAuditByActor(ctx, "c1", "reconcile-y", "reconcile.correct"); len(rows) != 0 {
			t.Fatalf("a correction not applied wrote audit rows: %+v", rows)
		}
		// An unknown customer is not applied.
		if _, applied, err := s.CorrectSecurity(ctx, "nobody", corr); err != nil || applied {
			t.Fatalf("unknown customer: got %v, %v", applied, err)
		}
	})
}

func TestCorrectSecurity_Timestamps(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		early := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		if _, err := s.UpdateSecurity(ctx, "c1", SecurityUpdate{LockedOut: true, PINSetAt: &early, LastPINResetAt: &early, SyncedAt: early}); err != nil {
			t.Fatal(err)
		}
		at := early.Add(time.Hour)
		// A PIN that appears keeps a known pinSetAt; an unlock is a PIN reset.
		sec, applied, err := s.CorrectSecurity(ctx, "c1", SecurityCorrection{
			Expect: flow.Standing{LockedOut: true}, Truth: flow.Standing{HasPIN: true}, At: at,
		})
		if err != nil || !applied {
			t.Fatal(applied, err)
		}
		if sec.LockedOut || !sec.HasPIN || !sameTime(sec.PINSetAt, &early) || !sameTime(sec.LastPINResetAt, &at) || sec.RecoverySetAt != nil {
			t.Fatalf("got %+v, want pinSetAt kept, lastPinResetAt %s", sec, at)
		}
		// Locking out stamps nothing.
		later := at.Add(time.Hour)
		sec, _, err = s.CorrectSecurity(ctx, "c1", SecurityCorrection{
			Expect: flow.Standing{HasPIN: true}, Truth: flow.Standing{HasPIN: true, LockedOut: true}, At: later,
		})
		if err != nil || !sec.LockedOut || !sameTime(sec.LastPINResetAt, &at) {
			t.Fatalf("lockout: got %+v, %v", sec, err)
		}
	})
}

// TestCorrectSecurity_LockoutOwner: a correction that keeps a lockout keeps
// the sync that made it; one that unlocks forgets it, so when the
// reconciler locks the customer again that sync's retry is not told it
// locked the customer out.
func TestCorrectSecurity_LockoutOwner(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		lockA := SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: t0, By: "flow:A"}
		retryA := func(name string, min int, want bool) {
			t.Helper()
			u := lockA
			u.SyncedAt = t0.Add(time.Duration(min) * time.Minute)
			got, err := s.UpdateSecurity(ctx, "c1", u)
			if err != nil || got.LockedOutNow != want {
				t.Fatalf("%s: got LockedOutNow %v (%v), want %v", name, got.LockedOutNow, err, want)
			}
		}
		retryA("A locks", 0, true)
		correct := func(name string, expect, truth flow.Standing, min int) {
			t.Helper()
			_, applied, err := s.CorrectSecurity(ctx, "c1", SecurityCorrection{Expect: expect, Truth: truth, At: t0.Add(time.Duration(min) * time.Minute)})
			if err != nil || !applied {
				t.Fatalf("%s: got applied %v, %v; want applied", name, applied, err)
			}
		}
		correct("recovery appears, still locked", flow.Standing{HasPIN: true, LockedOut: true}, flow.Standing{HasPIN: true, HasRecovery: true, LockedOut: true}, 1)
		retryA("A after a correction that keeps the lockout", 2, true)
		correct("unlock", flow.Standing{HasPIN: true, LockedOut: true}, flow.Standing{HasPIN: true}, 3)
		correct("lock", flow.Standing{HasPIN: true}, flow.Standing{HasPIN: true, LockedOut: true}, 4)
		retryA("A after the reconciler unlocked and locked", 5, false)
	})
}

func TestRepairFlow_OnlyActiveRows(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		f := &flow.Flow{ID: "flow_a", CustomerID: "c1", Kind: flow.KindUpdatePIN, Status: flow.StatusAwaitingUser,
			ChallengeID: "ch1", CreatedAt: base, UpdatedAt: base}
		if err := s.UpsertFlow(ctx, f, FlowMeta{IdempotencyKey: "k1"}); err != nil {
			t.Fatal(err)
		}
		at := base.Add(time.Hour)
		g := *f
		g.Status, g.UpdatedAt, g.Error = flow.StatusFailed, at, flow.Errorf(flow.CodeFlowOutcomeUnknown, "gone")
		g.ChallengeID = ""
		audit := &AuditEntry{Actor: "reconcile-x", Action: "reconcile.repair_flow", CustomerID: "c1", FlowID: "flow_a", Outcome: "failed"}
		applied, err := s.RepairFlow(ctx, &g, audit)
		if err != nil || !applied {
			t.Fatalf("got %v, %v; want applied", applied, err)
		}
		got, err := s.FindFlowByID(ctx, "flow_a")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != flow.StatusFailed || got.Error == nil || got.Error.Code != flow.CodeFlowOutcomeUnknown ||
			got.ChallengeID != "ch1" || !sameTime(got.CompletedAt, &at) {
			t.Fatalf("repaired row: got %+v", got)
		}
		if _, meta, err := s.FindFlowByIdempotencyKey(ctx, "c1", "k1"); err != nil || meta.IdempotencyKey != "k1" {
			t.Fatalf("idempotency key lost: %v %+v", err, meta)
		}
		rows, _ := s.FindAudit(ctx, AuditFilter{FlowID: "flow_a"})
		if len(rows) != 1 || rows[0].Actor != "reconcile-x" {
			t.Fatalf("audit: got %+v, want one row", rows)
		}
		// Again: the row is no longer active.
		if applied, err := s.RepairFlow(ctx, &g, audit); err != nil || applied {
			t.Fatalf("second repair: got %v, %v; want not applied", applied, err)
		}
		if rows, _ := s.FindAudit(ctx, AuditFilter{FlowID: "flow_a"}); len(rows) != 1 {
			t.Fatalf("audit after a refused repair: %d rows, want 1", len(rows))
		}
		h := g
		h.Status = flow.StatusAwaitingUser
		if _, err := s.RepairFlow(ctx, &h, nil); err == nil {
			t.Fatal("repair to an active status: want an error")
		}
	})
}

// BenchmarkListCustomerIDs pages through 10,000 customers.
func BenchmarkListCustomerIDs(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	for i := range 10000 {
		if err := s.EnsureCustomer(ctx, fmt.Sprintf("c%05d", i)); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		after, n := "", 0
		for {
			page, err := s.ListCustomerIDs(ctx, after, 100)
			if err != nil {
				b.Fatal(err)
			}
			n += len(page)
			if len(page) < 100 {
				break
			}
			after = page[len(page)-1]
		}
		if n != 10000 {
			b.Fatalf("listed %d", n)
		}
	}
}
