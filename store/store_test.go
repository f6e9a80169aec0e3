package store

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/schema"
)

// wantCode fails the test unless err carries code.
func wantCode(t *testing.T, err error, code flow.Code) {
	t.Helper()
	if got := flow.ErrorCode(err); got != code {
		t.Fatalf("error code: got %q (%v), want %q", got, err, code)
	}
}

func ptr(t time.Time) *time.Time { return &t }

// sameTime compares optional times by instant.
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func fmtPtr(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return t.Format(time.RFC3339Nano)
}

// latestVersion is the highest migration version of package schema.
func latestVersion(t *testing.T) int64 {
	t.Helper()
	entries, err := fs.ReadDir(schema.SQLite(), ".")
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(entries))
}

// appliedVersions lists the versions goose recorded, in order.
func appliedVersions(t *testing.T, s *Store) []int64 {
	t.Helper()
	var vs []int64
	if err := selectRows(context.Background(), s.r, &vs, `SELECT version_id FROM goose_db_version WHERE version_id > 0 ORDER BY id`); err != nil {
		t.Fatalf("read goose_db_version: %v", err)
	}
	return vs
}

// hasIndex reports whether the database has an index of that name.
func hasIndex(t *testing.T, s *Store, name string) bool {
	t.Helper()
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`
	if s.d == dialectPostgres {
		q = `SELECT count(*) FROM pg_indexes WHERE indexname = ?`
	}
	var n int
	if err := get(context.Background(), s.r, &n, q, name); err != nil {
		t.Fatalf("look up index %s: %v", name, err)
	}
	return n == 1
}

func wantVersions(t *testing.T, s *Store) {
	t.Helper()
	got := appliedVersions(t, s)
	var want []int64
	for v := int64(1); v <= latestVersion(t); v++ {
		want = append(want, v)
	}
	if !slices.Equal(got, want) {
		t.Errorf("applied versions: got %v, want %v (each once)", got, want)
	}
}

func TestOpen_MigratesTwiceAndReopens(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := openPath(t, dsn)
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		s2 := openPath(t, dsn) // a second Store on the same database, as api and worker do
		if err := s2.Migrate(ctx); err != nil {
			t.Fatalf("Migrate on second store: %v", err)
		}
		wantVersions(t, s2)
		for _, idx := range []string{"flows_customer_idempotency_key", "webhook_inbox_received_at", "webhook_inbox_challenge_status"} {
			if !hasIndex(t, s2, idx) {
				t.Errorf("index %s: missing", idx)
			}
		}
		if hasIndex(t, s2, "flows_idempotency_key") {
			t.Error("index flows_idempotency_key (global keys): still there, want it replaced by the per-customer one")
		}
		if hasIndex(t, s2, "webhook_inbox_challenge_id") {
			t.Error("index webhook_inbox_challenge_id: still there, want it replaced by webhook_inbox_challenge_status")
		}
		if err := s.Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}

// TestMigrate_LockedOutByDown runs 0005's Down, which the store never does
// itself, on a database in use, and the store's migration again: the rows
// survive both ways and the lockout record works after.
func TestMigrate_LockedOutByDown(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.UpdateSecurity(ctx, "c1", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: t0, By: "flow:A"}); err != nil {
			t.Fatal(err)
		}
		gd, fsys := goose.DialectSQLite3, schema.SQLite()
		if s.d == dialectPostgres {
			gd, fsys = goose.DialectPostgres, schema.Postgres()
		}
		p, err := goose.NewProvider(gd, s.w.DB, fsys, goose.WithDisableGlobalRegistry(true))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.DownTo(ctx, 4); err != nil {
			t.Fatalf("down to 4: %v", err)
		}
		var locked bool
		if err := get(ctx, s.r, &locked, `SELECT locked_out FROM customers WHERE id = 'c1'`); err != nil || !locked {
			t.Fatalf("after down: got locked %v (%v), want the row kept", locked, err)
		}
		if _, err := exec(ctx, s.w, `SELECT locked_out_by FROM customers`); err == nil {
			t.Fatal("after down: column locked_out_by still there")
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate after down: %v", err)
		}
		wantVersions(t, s)
		// The lockout made before the round trip has no recorded owner now.
		for _, by := range []string{"flow:A", "flow:B"} {
			got, err := s.UpdateSecurity(ctx, "c1", SecurityUpdate{HasPIN: true, LockedOut: true, SyncedAt: t0.Add(time.Minute), By: by})
			if err != nil || got.LockedOutNow {
				t.Errorf("%s after the round trip: got LockedOutNow %v (%v), want false", by, got.LockedOutNow, err)
			}
		}
	})
}

// TestOpen_ConcurrentOpensOnFreshDatabase starts four stores on one fresh
// database at once, as replicas starting together do: every Open succeeds
// and each migration is applied once.
func TestOpen_ConcurrentOpensOnFreshDatabase(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				s, err := Open(context.Background(), dsn)
				if err != nil {
					errs <- err
					return
				}
				errs <- s.Close()
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent Open: %v", err)
			}
		}
		wantVersions(t, openPath(t, dsn))
	})
}

func TestOpen_Pragmas(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"synchronous", "1"}, // NORMAL
	}
	for _, tt := range tests {
		var got string
		if err := s.w.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("writer PRAGMA %s: got %q, want %q", tt.pragma, got, tt.want)
		}
		if tt.pragma == "synchronous" {
			continue // irrelevant to read-only connections
		}
		if err := s.r.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("reader PRAGMA %s: got %q, want %q", tt.pragma, got, tt.want)
		}
	}
	// The read pool refuses writes, so nothing can bypass the single writer.
	if _, err := s.r.ExecContext(ctx, `INSERT INTO audit_log (at, action) VALUES ('x', 'y')`); err == nil {
		t.Error("write on the read pool: got nil error, want one")
	}
}

func TestOpen_CreatesDirectory(t *testing.T) {
	s := openPath(t, filepath.Join(t.TempDir(), "a", "b", "app.db"))
	if err := s.EnsureCustomer(context.Background(), "c1"); err != nil {
		t.Fatalf("EnsureCustomer: %v", err)
	}
}

func TestOpen_BadPath(t *testing.T) {
	for _, path := range []string{"", "app.db?mode=ro", "app#1.db"} {
		if s, err := Open(context.Background(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q): got nil error, want one", path)
		}
	}
}

func TestOpen_Memory(t *testing.T) {
	s := openPath(t, ":memory:")
	ctx := context.Background()
	if err := s.EnsureCustomer(ctx, "c1"); err != nil {
		t.Fatalf("EnsureCustomer: %v", err)
	}
	if _, err := s.FindCustomerByID(ctx, "c1"); err != nil {
		t.Fatalf("FindCustomerByID: %v", err)
	}
}

func TestSchema_CheckConstraints(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.EnsureCustomer(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		now := formatTime(time.Now())
		tests := []struct {
			name string
			sql  string
			args []any
		}{
			{"unknown kind", `INSERT INTO flows (id, customer_id, kind, status, created_at, updated_at) VALUES ('f1', 'c1', 'bogus', 'starting', ?, ?)`, []any{now, now}},
			{"unknown status", `INSERT INTO flows (id, customer_id, kind, status, created_at, updated_at) VALUES ('f1', 'c1', 'initialize', 'done', ?, ?)`, []any{now, now}},
			{"missing customer", `INSERT INTO flows (id, customer_id, kind, status, created_at, updated_at) VALUES ('f1', 'nobody', 'initialize', 'starting', ?, ?)`, []any{now, now}},
			{"blockchains not an array", `INSERT INTO flows (id, customer_id, kind, status, blockchains, created_at, updated_at) VALUES ('f1', 'c1', 'initialize', 'starting', '{}', ?, ?)`, []any{now, now}},
			{"boolean out of range", `UPDATE customers SET has_pin = 2 WHERE id = 'c1'`, nil},
			{"lockout owner of a customer not locked out", `UPDATE customers SET locked_out_by = 'flow:x' WHERE id = 'c1'`, nil},
			{"empty webhook key", `INSERT INTO webhook_inbox (idempotency_key, received_at) VALUES ('', ?)`, []any{now}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := exec(ctx, s.w, tt.sql, tt.args...); err == nil {
					t.Errorf("got nil error, want a constraint failure")
				}
			})
		}
	})
}

func TestTimeFormat_SortsAndRoundTrips(t *testing.T) {
	loc := time.FixedZone("UTC+5", 5*3600)
	times := []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 500_000_000, time.UTC),
		time.Date(2026, 1, 2, 9, 4, 6, 0, loc), // 04:04:06 UTC
	}
	for i, tm := range times {
		s := formatTime(tm)
		if len(s) != len(timeLayout) {
			t.Errorf("formatTime(%v): got %q (len %d), want fixed length %d", tm, s, len(s), len(timeLayout))
		}
		back, err := parseTime(s)
		if err != nil {
			t.Fatalf("parseTime(%q): %v", s, err)
		}
		if !back.Equal(tm) || back.Location() != time.UTC {
			t.Errorf("round trip of %v: got %v, want the same instant in UTC", tm, back)
		}
		if i > 0 && formatTime(times[i-1]) >= s {
			t.Errorf("text order: %q sorts after %q, want before", formatTime(times[i-1]), s)
		}
	}
}

func TestErrors_WrapContext(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := s.EnsureCustomer(ctx, "c1")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want an error wrapping context.Canceled", err)
		}
		if !strings.HasPrefix(err.Error(), "store: ensure customer c1: ") {
			t.Errorf("got %q, want it prefixed with the operation", err)
		}
	})
}
