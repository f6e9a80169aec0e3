package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

// TestIdempotencyKey_ScopedPerCustomer: one key, two customers, two flows;
// the same key again for the same customer is refused.
func TestIdempotencyKey_ScopedPerCustomer(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.UpsertFlow(ctx, newFlow("f1", "c1", flow.KindRecovery, 0), FlowMeta{IdempotencyKey: "k", RequestHash: "h1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpsertFlow(ctx, newFlow("f2", "c2", flow.KindRecovery, 1), FlowMeta{IdempotencyKey: "k", RequestHash: "h2"}); err != nil {
			t.Fatalf("same key for another customer: got %v, want nil", err)
		}
		err := s.UpsertFlow(ctx, newFlow("f3", "c1", flow.KindUpdatePIN, 2), FlowMeta{IdempotencyKey: "k"})
		wantCode(t, err, flow.CodeIdempotencyKeyReused)
		for _, tt := range []struct{ customer, flowID, hash string }{{"c1", "f1", "h1"}, {"c2", "f2", "h2"}} {
			f, meta, err := s.FindFlowByIdempotencyKey(ctx, tt.customer, "k")
			if err != nil {
				t.Fatalf("FindFlowByIdempotencyKey(%s): %v", tt.customer, err)
			}
			if f.ID != tt.flowID || meta.RequestHash != tt.hash {
				t.Errorf("customer %s: got flow %s hash %s, want %s %s", tt.customer, f.ID, meta.RequestHash, tt.flowID, tt.hash)
			}
		}
		_, _, err = s.FindFlowByIdempotencyKey(ctx, "c3", "k")
		wantCode(t, err, flow.CodeFlowNotFound)
	})
}

// TestIdempotencyKey_ConcurrentStarts: many starts of different flows with
// one key for one customer, through two stores at once: exactly one wins,
// every other is told the key is taken.
func TestIdempotencyKey_ConcurrentStarts(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		stores := []*Store{openPath(t, dsn), openPath(t, dsn)}
		ctx := context.Background()
		const n = 16
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				errs[i] = stores[i%2].UpsertFlow(ctx, newFlow(fmt.Sprintf("f%d", i), "c1", flow.KindRecovery, i), FlowMeta{IdempotencyKey: "k"})
			})
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case flow.ErrorCode(err) != flow.CodeIdempotencyKeyReused:
				t.Errorf("start %d: got %v, want nil or %s", i, err, flow.CodeIdempotencyKeyReused)
			}
		}
		if won != 1 {
			t.Errorf("starts that took the key: got %d, want 1", won)
		}
	})
}

// TestRecordWebhook_ConcurrentDeliveries delivers one webhook many times at
// once through two stores (two api processes): one delivery is new, the
// rest are duplicates pointing at its row, and the inbox holds one row.
func TestRecordWebhook_ConcurrentDeliveries(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		stores := []*Store{openPath(t, dsn), openPath(t, dsn)}
		ctx := context.Background()
		for round := range 5 {
			key := fmt.Sprintf("wh-%d", round)
			const n = 12
			var wg sync.WaitGroup
			entries := make([]*InboxEntry, n)
			dups := make([]bool, n)
			errs := make([]error, n)
			for i := range n {
				entries[i] = &InboxEntry{IdempotencyKey: key, WebhookID: fmt.Sprintf("d%d", i), EventType: "customer.pin_setup"}
				wg.Go(func() { dups[i], errs[i] = stores[i%2].RecordWebhook(ctx, entries[i]) })
			}
			wg.Wait()
			fresh := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("delivery %d: %v", i, errs[i])
				}
				if !dups[i] {
					fresh++
				}
				if entries[i].ID != entries[0].ID {
					t.Errorf("delivery %d: got row id %d, want %d (the one row)", i, entries[i].ID, entries[0].ID)
				}
			}
			if fresh != 1 {
				t.Errorf("key %s: deliveries recorded as new: got %d, want 1", key, fresh)
			}
			var rows int
			if err := get(ctx, stores[0].r, &rows, `SELECT count(*) FROM webhook_inbox WHERE idempotency_key = ?`, key); err != nil {
				t.Fatal(err)
			}
			if rows != 1 {
				t.Errorf("key %s: inbox rows: got %d, want 1", key, rows)
			}
		}
	})
}

// TestUpdateSecurity_NoLostWriteAcrossStores: writers on two stores (two
// processes) move one customer's lastExportAt forward at once. Each write
// keeps the later of the stored and its own time, so the result must be
// the latest of all; a read-modify-write that did not lock the row would
// let an older value overwrite a newer one.
func TestUpdateSecurity_NoLostWriteAcrossStores(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		stores := []*Store{openPath(t, dsn), openPath(t, dsn)}
		ctx := context.Background()
		const writers, each = 8, 15
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					at := t0.Add(time.Duration(i*writers+w) * time.Second)
					u := SecurityUpdate{HasPIN: true, SyncedAt: at, LastExportAt: &at}
					if _, err := stores[w%2].UpdateSecurity(ctx, "c1", u); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("UpdateSecurity: %v", err)
		}
		c, err := stores[0].FindCustomerByID(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		want := t0.Add(time.Duration(writers*each-1) * time.Second)
		if !sameTime(c.Security.LastExportAt, &want) || !sameTime(c.Security.SyncedAt, &want) {
			t.Errorf("lastExportAt %s, syncedAt %s: want both %s (the latest write)", fmtPtr(c.Security.LastExportAt), fmtPtr(c.Security.SyncedAt), want)
		}
	})
}

// TestUpsertFlow_ConcurrentWritersOfOneFlow: the start and the later status
// writes of one flow race through two stores; none fails, and the flow
// ends in the furthest status with the challenge id kept.
func TestUpsertFlow_ConcurrentWritersOfOneFlow(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		stores := []*Store{openPath(t, dsn), openPath(t, dsn)}
		ctx := context.Background()
		for round := range 10 {
			id := fmt.Sprintf("f%d", round)
			writes := []*flow.Flow{newFlow(id, "c1", flow.KindUpdatePIN, 0), newFlow(id, "c1", flow.KindUpdatePIN, 0), newFlow(id, "c1", flow.KindUpdatePIN, 0)}
			writes[1].Status, writes[1].ChallengeID, writes[1].UpdatedAt = flow.StatusAwaitingUser, "ch-"+id, t0.Add(time.Minute)
			writes[2].Status, writes[2].UpdatedAt = flow.StatusCompleted, t0.Add(2*time.Minute)
			var wg sync.WaitGroup
			errs := make([]error, len(writes))
			for i, f := range writes {
				wg.Go(func() { errs[i] = stores[i%2].UpsertFlow(ctx, f, FlowMeta{}) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d write %d: %v", round, i, err)
				}
			}
			got, err := stores[0].FindFlowByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			// The completed write may land before the awaiting one, which
			// is then stale and ignored, challenge id and all; the status
			// must be completed whatever the order.
			if got.Status != flow.StatusCompleted || got.CompletedAt == nil {
				t.Errorf("round %d: got status %s completedAt %s, want completed with a time", round, got.Status, fmtPtr(got.CompletedAt))
			}
		}
	})
}

// TestUpdateSecurity_OneSyncClaimsALockout: syncs by different identities
// (a flow ending, a lockout webhook) lock one customer out at once through
// two stores; exactly one is told it locked the customer out, whether the
// row existed unlocked or not at all. A read of the row outside the
// write's lock would let two see "not locked" and both claim it.
func TestUpdateSecurity_OneSyncClaimsALockout(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		stores := []*Store{openPath(t, dsn), openPath(t, dsn)}
		ctx := context.Background()
		const rounds, syncs = 40, 4
		for round := range rounds {
			customer := fmt.Sprintf("c%d", round)
			if round%2 == 0 {
				if _, err := stores[0].UpdateSecurity(ctx, customer, SecurityUpdate{HasPIN: true, SyncedAt: t0}); err != nil {
					t.Fatal(err)
				}
			}
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				got   = make([]SecurityResult, syncs)
				errs  = make([]error, syncs)
			)
			for i := range syncs {
				wg.Go(func() {
					<-start
					u := SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: t0.Add(time.Minute), By: fmt.Sprintf("flow:f%d", i)}
					got[i], errs[i] = stores[i%2].UpdateSecurity(ctx, customer, u)
				})
			}
			close(start)
			wg.Wait()
			claims := 0
			for i := range syncs {
				if errs[i] != nil {
					t.Fatalf("round %d, sync %d: %v", round, i, errs[i])
				}
				if got[i].LockedOutNow {
					claims++
				}
			}
			if claims != 1 {
				t.Errorf("round %d (row existed: %v): syncs told they locked the customer out: got %d, want 1", round, round%2 == 0, claims)
			}
		}
	})
}
