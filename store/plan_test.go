package store

import (
	"context"
	"strings"
	"testing"
)

// TestQueryPlans_UseIndexes checks on SQLite that the lookups made per
// webhook and per start search an index instead of scanning the table (a
// partial index is only used when the query proves its condition).
func TestQueryPlans_UseIndexes(t *testing.T) {
	s := openTest(t)
	tests := []struct{ query, index string }{
		{`SELECT id FROM flows WHERE ` + whereChallengeID, "flows_challenge_id"},
		{`SELECT id FROM flows WHERE ` + whereIdempotencyKey, "flows_customer_idempotency_key"},
		{selectOldInbox, "webhook_inbox_received_at"},
		{selectOldAudit, "audit_log_at"},
		{selectChallengeSignalled, "webhook_inbox_challenge_status"},
	}
	for _, tt := range tests {
		args := make([]any, strings.Count(tt.query, "?"))
		for i := range args {
			args[i] = string(rune('a' + i))
		}
		rows, err := s.r.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+tt.query, args...)
		if err != nil {
			t.Fatalf("%s: %v", tt.query, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if got := strings.Join(plan, "; "); !strings.Contains(got, "USING INDEX "+tt.index) && !strings.Contains(got, "USING COVERING INDEX "+tt.index) {
			t.Errorf("%s:\ngot plan %q, want it to use index %s", tt.query, got, tt.index)
		}
	}
}
