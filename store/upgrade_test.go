package store

import (
	"context"
	_ "embed"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/custodyflows/custodyflows/flow"
)

// release1Init is schema/0001_init.sql as the first release shipped it,
// before migrations moved to goose: what its databases were made with.
//
//go:embed testdata/release1_0001_init.sql
var release1Init string

// makeRelease1Database builds a SQLite file exactly as the first release's
// store did: its DSN pragmas, its runner's schema_migrations table, the
// migration and its bookkeeping row in one write transaction. Then it adds
// one row to every table, as that release's queries wrote them.
func makeRelease1Database(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlx.Open("sqlite3", sqliteDSN(path, true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at TEXT    NOT NULL
	) STRICT`))
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	must(tx.ExecContext(ctx, release1Init))
	must(tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, 1, "init", formatTime(time.Now())))
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	ts := formatTime(t0)
	must(db.ExecContext(ctx, `INSERT INTO customers (id, name, ref_id, has_pin, has_recovery, pin_set_at, synced_at, created_at, updated_at)
		VALUES ('c1', 'Ada', 'user-1', 1, 1, ?, ?, ?, ?)`, ts, ts, ts, ts))
	must(db.ExecContext(ctx, `INSERT INTO flows (id, customer_id, kind, status, challenge_id, gateway_url, redirect_url, blockchains,
			expires_at, idempotency_key, request_hash, error_code, error_message, created_at, updated_at, completed_at)
		VALUES ('f1', 'c1', 'create_wallets', 'completed', 'ch-1', 'https://gw/ch-1', 'https://app/return', '["ETH-SEPOLIA"]',
			?, 'idem-1', 'sha256:abc', '', '', ?, ?, ?)`, ts, ts, ts, ts))
	must(db.ExecContext(ctx, `INSERT INTO webhook_inbox (idempotency_key, webhook_id, event_type, customer_id, challenge_id, body_sha256, received_at, outcome, processed_at)
		VALUES ('wh-key-1', 'wh-1', 'customer.pin_setup', 'c1', 'ch-1', 'ab12', ?, 'signalled', ?)`, ts, ts))
	must(db.ExecContext(ctx, `INSERT INTO audit_log (at, actor, action, customer_id, flow_id, outcome, detail)
		VALUES (?, 'key-1', 'flow.start', 'c1', 'f1', 'ok', 'first release')`, ts))
}

// TestOpen_UpgradesRelease1SQLite opens a database made by the first
// release with the current store: every row is still there, goose has
// adopted version 1 and applied the rest once, and the new schema works.
func TestOpen_UpgradesRelease1SQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custodyflows.db")
	makeRelease1Database(t, path)

	s := openPath(t, path)
	wantVersions(t, s)
	var legacy int
	if err := get(ctx, s.r, &legacy, `SELECT count(*) FROM schema_migrations WHERE version = 1`); err != nil || legacy != 1 {
		t.Errorf("schema_migrations row of version 1: got %d (%v), want kept for a downgraded binary", legacy, err)
	}

	c, err := s.FindCustomerByID(ctx, "c1")
	if err != nil {
		t.Fatalf("customer: %v", err)
	}
	if c.Name != "Ada" || c.RefID != "user-1" || !c.Security.HasPIN || !c.Security.CanTransact || !sameTime(c.Security.PINSetAt, &t0) {
		t.Errorf("customer: got %+v, want Ada/user-1 with PIN and recovery set at %s", c, t0)
	}
	f, meta, err := s.FindFlowByIdempotencyKey(ctx, "c1", "idem-1")
	if err != nil {
		t.Fatalf("flow by idempotency key: %v", err)
	}
	if f.ID != "f1" || f.Status != flow.StatusCompleted || f.ChallengeID != "ch-1" || len(f.Blockchains) != 1 || meta.RequestHash != "sha256:abc" || !f.CreatedAt.Equal(t0) {
		t.Errorf("flow: got %+v %+v, want f1 completed with its challenge, chains and hash", f, meta)
	}
	if _, err := s.FindFlowByChallengeID(ctx, "ch-1"); err != nil {
		t.Errorf("flow by challenge: %v", err)
	}
	wh, err := s.FindWebhook(ctx, "wh-key-1")
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	if wh.Outcome != "signalled" || wh.EventType != "customer.pin_setup" || wh.ChallengeStatus != "" || !wh.ReceivedAt.Equal(t0) {
		t.Errorf("webhook: got %+v", wh)
	}
	if dup, err := s.RecordWebhook(ctx, &InboxEntry{IdempotencyKey: "wh-key-1"}); err != nil || !dup {
		t.Errorf("redelivery of the old webhook: got duplicate=%v err=%v, want true, nil", dup, err)
	}
	audit, err := s.FindAudit(ctx, AuditFilter{CustomerID: "c1"})
	if err != nil || len(audit) != 1 || audit[0].Detail != "first release" {
		t.Fatalf("audit: got %v (%v), want the one old row", audit, err)
	}

	// The new schema: per-customer keys, the probe row, the audit trigger.
	if err := s.UpsertFlow(ctx, newFlow("f2", "c2", flow.KindRecovery, 1), FlowMeta{IdempotencyKey: "idem-1"}); err != nil {
		t.Errorf("old key for another customer: got %v, want nil (keys are per customer now)", err)
	}
	wantCode(t, s.UpsertFlow(ctx, newFlow("f3", "c1", flow.KindRecovery, 2), FlowMeta{IdempotencyKey: "idem-1"}), flow.CodeIdempotencyKeyReused)
	if err := s.ProbeWrite(ctx); err != nil {
		t.Errorf("ProbeWrite: %v", err)
	}
	if _, err := exec(ctx, s.w, `UPDATE audit_log SET detail = 'x'`); err == nil {
		t.Error("UPDATE audit_log: got nil error, want the append-only trigger to refuse it")
	}
	// The old customer row takes a lockout and its owner.
	lock := SecurityUpdate{HasPIN: true, HasRecovery: true, LockedOut: true, SyncedAt: t0.Add(time.Hour), By: "flow:f9"}
	for range 2 {
		if res, err := s.UpdateSecurity(ctx, "c1", lock); err != nil || !res.LockedOutNow {
			t.Errorf("lockout of the old customer: got LockedOutNow %v (%v), want true on every run of the same sync", res.LockedOutNow, err)
		}
	}

	// Opening again changes nothing.
	s2 := openPath(t, path)
	wantVersions(t, s2)
}
