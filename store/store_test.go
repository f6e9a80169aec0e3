package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/schema"
)

// openTest opens a store on a fresh file in t.TempDir and closes it when the
// test ends.
func openTest(t testing.TB) *Store {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "app.db"))
}

func openPath(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

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

func TestOpen_MigratesTwiceAndReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "app.db")
	s := openPath(t, path)
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	s2 := openPath(t, path) // a second Store on the same file, as api and worker do
	if err := s2.Migrate(ctx); err != nil {
		t.Fatalf("Migrate on second store: %v", err)
	}
	ms, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s2.r.GetContext(ctx, &n, `SELECT count(*) FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Errorf("schema_migrations rows: got %d, want %d", n, len(ms))
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestOpen_ConcurrentOpensOnFreshFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			s, err := Open(context.Background(), path)
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
	s := openTest(t)
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
		{"empty webhook key", `INSERT INTO webhook_inbox (idempotency_key, received_at) VALUES ('', ?)`, []any{now}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.w.ExecContext(ctx, tt.sql, tt.args...); err == nil {
				t.Errorf("got nil error, want a constraint failure")
			}
		})
	}
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
	s := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.EnsureCustomer(ctx, "c1")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want an error wrapping context.Canceled", err)
	}
	if !strings.HasPrefix(err.Error(), "store: ensure customer c1: ") {
		t.Errorf("got %q, want it prefixed with the operation", err)
	}
}
