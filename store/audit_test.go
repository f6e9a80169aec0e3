package store

import (
	"context"
	"testing"
	"time"
)

func TestAudit_RoundTripAndOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		entries := []*AuditEntry{
			{At: t0, Actor: "key-1", Action: "flow.start", CustomerID: "c1", FlowID: "f1", Outcome: "ok"},
			{At: t0.Add(time.Minute), Actor: "worker", Action: "flow.complete", CustomerID: "c1", FlowID: "f1", Outcome: "completed", Detail: "challenge verified"},
			{At: t0.Add(time.Minute), Actor: "worker", Action: "security.sync", CustomerID: "c1", Outcome: "ok"}, // same time: id breaks the tie
			{At: t0.Add(2 * time.Minute), Actor: "key-1", Action: "flow.start", CustomerID: "c2", FlowID: "g1", Outcome: "refused"},
		}
		for _, a := range entries {
			if err := s.RecordAudit(ctx, a); err != nil {
				t.Fatalf("RecordAudit: %v", err)
			}
			if a.ID == 0 {
				t.Fatal("ID: got 0, want the row id")
			}
		}
		ids := func(as []*AuditEntry) []int64 {
			var out []int64
			for _, a := range as {
				out = append(out, a.ID)
			}
			return out
		}
		e := entries
		tests := []struct {
			name   string
			filter AuditFilter
			want   []*AuditEntry
		}{
			{"all", AuditFilter{}, []*AuditEntry{e[3], e[2], e[1], e[0]}},
			{"customer", AuditFilter{CustomerID: "c1"}, []*AuditEntry{e[2], e[1], e[0]}},
			{"flow", AuditFilter{FlowID: "f1"}, []*AuditEntry{e[1], e[0]}},
			{"limit", AuditFilter{CustomerID: "c1", Limit: 1}, []*AuditEntry{e[2]}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.FindAudit(ctx, tt.filter)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got ids %v, want %v", ids(got), ids(tt.want))
				}
				for i := range got {
					if *got[i] != *tt.want[i] {
						t.Errorf("row %d:\ngot  %+v\nwant %+v", i, *got[i], *tt.want[i])
					}
				}
			})
		}
	})
}

func TestAudit_AppendOnlyAndRequiresAction(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.RecordAudit(ctx, &AuditEntry{Actor: "x"}); err == nil {
			t.Error("RecordAudit without action: got nil error, want one")
		}
		a := &AuditEntry{Action: "flow.start"}
		if err := s.RecordAudit(ctx, a); err != nil {
			t.Fatal(err)
		}
		if a.At.IsZero() {
			t.Error("At: got zero, want now")
		}
		if _, err := exec(ctx, s.w, `UPDATE audit_log SET outcome = 'changed' WHERE id = ?`, a.ID); err == nil {
			t.Error("UPDATE audit_log: got nil error, want the append-only trigger to refuse it")
		}
	})
}

// A row with a dedupe key is written once however often it is recorded
// (a retried workflow task runs its local activities again); rows without
// one repeat as before.
func TestAudit_DedupeKeyWritesOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for i := range 3 {
			a := &AuditEntry{At: t0.Add(time.Duration(i) * time.Second), Actor: "worker", Action: "flow.initialize",
				CustomerID: "c1", FlowID: "f1", Outcome: "completed", DedupeKey: "f1.end"}
			if err := s.RecordAudit(ctx, a); err != nil {
				t.Fatalf("RecordAudit %d: %v", i, err)
			}
			if (i == 0) != (a.ID != 0) {
				t.Errorf("RecordAudit %d: ID %d, want a row id only the first time", i, a.ID)
			}
		}
		for range 2 {
			if err := s.RecordAudit(ctx, &AuditEntry{Actor: "key-1", Action: "flow.start", CustomerID: "c1", FlowID: "f1", Outcome: "replayed"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RecordAudit(ctx, &AuditEntry{Actor: "worker", Action: "flow.recovery", CustomerID: "c1", FlowID: "f2", Outcome: "completed", DedupeKey: "f2.end"}); err != nil {
			t.Fatal(err)
		}
		rows, err := s.FindAudit(ctx, AuditFilter{CustomerID: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, r := range rows {
			count[r.FlowID+" "+r.Action]++
		}
		want := map[string]int{"f1 flow.initialize": 1, "f1 flow.start": 2, "f2 flow.recovery": 1}
		for k, n := range want {
			if count[k] != n {
				t.Errorf("rows %q: got %d, want %d (all: %v)", k, count[k], n, count)
			}
		}
	})
}
