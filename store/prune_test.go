package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestPrune deletes inbox and audit rows older than their retention, in
// more than one batch, and leaves younger rows and other tables alone.
func TestPrune(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		now := t0.Add(100 * 24 * time.Hour)
		s.now = func() time.Time { return now }
		const old = pruneBatch + 7 // more than one batch
		day := 24 * time.Hour
		for i := range old {
			at := now.Add(-40*day - time.Duration(i)*time.Second)
			if _, err := s.RecordWebhook(ctx, &InboxEntry{IdempotencyKey: fmt.Sprintf("old-%d", i), ReceivedAt: at}); err != nil {
				t.Fatal(err)
			}
			if err := s.RecordAudit(ctx, &AuditEntry{Action: "flow.start", At: at}); err != nil {
				t.Fatal(err)
			}
		}
		young := now.Add(-29 * day)
		if _, err := s.RecordWebhook(ctx, &InboxEntry{IdempotencyKey: "young", ReceivedAt: young}); err != nil {
			t.Fatal(err)
		}
		// The audit log keeps longer than the inbox: a 40-day-old row stays.
		if err := s.RecordAudit(ctx, &AuditEntry{Action: "kept", At: now.Add(-40 * day)}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordAudit(ctx, &AuditEntry{Action: "ancient", At: now.Add(-400 * day)}); err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureCustomer(ctx, "c1"); err != nil {
			t.Fatal(err)
		}

		got, err := s.Prune(ctx, Retention{WebhookInbox: 30 * day, AuditLog: 365 * day})
		if err != nil {
			t.Fatalf("Prune: %v", err)
		}
		if want := (Pruned{WebhookInbox: old, AuditLog: 1}); got != want {
			t.Errorf("pruned: got %+v, want %+v", got, want)
		}
		count := func(table string) int {
			var n int
			if err := get(ctx, s.r, &n, `SELECT count(*) FROM `+table); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count("webhook_inbox"); n != 1 {
			t.Errorf("inbox rows after prune: got %d, want 1 (the young one)", n)
		}
		if _, err := s.FindWebhook(ctx, "young"); err != nil {
			t.Errorf("young webhook: %v", err)
		}
		if n := count("audit_log"); n != old+1 {
			t.Errorf("audit rows after prune: got %d, want %d", n, old+1)
		}
		if _, err := s.FindCustomerByID(ctx, "c1"); err != nil {
			t.Errorf("customer after prune: %v", err)
		}

		// Zero retention keeps everything; a second prune finds nothing.
		got, err = s.Prune(ctx, Retention{})
		if err != nil || got != (Pruned{}) {
			t.Errorf("Prune with zero retention: got %+v, %v, want nothing deleted", got, err)
		}
		got, err = s.Prune(ctx, Retention{WebhookInbox: 30 * day, AuditLog: 30 * day})
		if err != nil || got != (Pruned{AuditLog: old + 1}) {
			t.Errorf("second Prune: got %+v, %v, want the remaining %d audit rows", got, err, old+1)
		}
	})
}
