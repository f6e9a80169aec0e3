// Package store is custodyflows' app database: customers and their security
// status, an index of flows, the webhook inbox and the audit log, kept in one
// SQLite file through sqlx and mattn/go-sqlite3.
//
// Temporal holds each flow's full history; the store holds what the API
// must answer without asking Temporal (a customer's security status, the
// flow list, idempotency keys) and what must survive any workflow (the
// webhook inbox that de-duplicates deliveries, the audit log).
//
// Missing rows are reported as *flow.Error with flow.CodeCustomerNotFound,
// flow.CodeFlowNotFound or flow.CodeNotFound, so callers branch with
// flow.ErrorCode; every other error is wrapped with context.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"

	"github.com/custodyflows/custodyflows/schema"
)

// BusyTimeout is how long a statement waits for another connection's (or
// process's) write lock before failing with SQLITE_BUSY.
const BusyTimeout = 5 * time.Second

// defaultLimit and maxLimit bound list queries.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// Store is the app database. It is safe for concurrent use.
//
// It holds two pools on the same file. All writes go through one
// connection: SQLite allows one writer at a time anyway, and queueing
// writers in database/sql (which honours ctx) instead of in SQLite's busy
// handler means the process's own writers never see SQLITE_BUSY. Reads use a
// separate pool of read-only connections, which WAL lets run in parallel
// with the writer. Write transactions start with BEGIN IMMEDIATE so that a
// second process on the same file (api and worker, or migrate) waits in the
// busy handler for the lock up front instead of failing when a read lock
// cannot be upgraded.
type Store struct {
	path string
	w    *sqlx.DB // exactly one connection: every write
	r    *sqlx.DB // read-only connections
	now  func() time.Time
}

// Open opens (creating it and its directory if needed) the SQLite database
// at path, turns on WAL, the busy timeout, foreign keys and
// synchronous=NORMAL, and applies any pending migrations. The special path
// ":memory:" gives a private in-memory database (one connection), for tests.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: open: empty database path")
	}
	if strings.ContainsAny(path, "?#") {
		// The driver splits the DSN at '?', so such a path would silently
		// open a different file.
		return nil, fmt.Errorf("store: open %q: path must not contain '?' or '#'", path)
	}
	s := &Store{path: path, now: time.Now}
	if path == ":memory:" {
		db, err := sqlx.Open("sqlite3", dsn(path, true))
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		keepOne(db)
		s.w, s.r = db, db
	} else {
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("store: open %s: %w", path, err)
			}
		}
		w, err := sqlx.Open("sqlite3", dsn(path, true))
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		keepOne(w)
		r, err := sqlx.Open("sqlite3", dsn(path, false))
		if err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		n := max(4, runtime.GOMAXPROCS(0))
		r.SetMaxOpenConns(n)
		r.SetMaxIdleConns(n)
		s.w, s.r = w, r
	}
	// The writer connects first so that the file exists and is in WAL mode
	// before any read-only connection opens it.
	if err := whileLocked(ctx, func() error { return s.w.PingContext(ctx) }); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := whileLocked(ctx, func() error { return s.Migrate(ctx) }); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// whileLocked runs step again while SQLite answers busy or locked, for up to
// BusyTimeout. Opening a fresh file that another process (api and worker
// start together) is switching to WAL at that moment fails at once: SQLite
// returns SQLITE_BUSY there without calling the busy handler, to avoid a
// deadlock. Only opening needs this; statements wait through busy_timeout.
func whileLocked(ctx context.Context, step func() error) error {
	deadline := time.Now().Add(BusyTimeout)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := step()
		var se sqlite3.Error
		if err == nil || !errors.As(err, &se) || (se.Code != sqlite3.ErrBusy && se.Code != sqlite3.ErrLocked) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// keepOne limits db to a single connection that is never closed for
// idleness (closing it would drop an in-memory database).
func keepOne(db *sqlx.DB) {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
}

// dsn returns the mattn/go-sqlite3 DSN for path. The driver runs the
// pragmas on every new connection, so they hold for both pools.
func dsn(path string, write bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(BusyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "on")
	if write {
		// WAL is persistent in the file, so setting it from the writer is
		// enough; readers then inherit it.
		q.Set("_journal_mode", "WAL")
		// NORMAL is durable across application crashes in WAL mode; only a
		// power loss can drop the last commits, which the workflows (whose
		// activities rewrite rows) recover.
		q.Set("_synchronous", "NORMAL")
		q.Set("_txlock", "immediate")
	} else {
		// A guard: a write on the read pool would bypass the single-writer
		// queue and could meet SQLITE_BUSY.
		q.Set("_query_only", "on")
	}
	return path + "?" + q.Encode()
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes both pools.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Ping checks that the database answers on both pools (for /readyz).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Migrate applies the migrations of package schema that the database has
// not seen yet, each in its own transaction, recording each in
// schema_migrations. It is idempotent and safe to run from several
// processes at once: the check for an applied version happens inside the
// migration's write transaction.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := schema.Migrations()
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at TEXT    NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("store: migrate: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
			var n int
			if err := tx.GetContext(ctx, &n, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.Version, m.Name, formatTime(s.now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migrate: %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	return nil
}

// writeTx runs fn in a write transaction (BEGIN IMMEDIATE on the writer
// connection) and commits it when fn returns nil. fn must not use s.w
// directly: the writer's only connection belongs to the transaction.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sqlx.Tx) error) (err error) {
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// timeLayout is RFC 3339 in UTC with a fixed nine-digit fraction, so stored
// times sort as text and parse back to the same instant.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func formatTimePtr(t *time.Time) sql.NullString {
	if t == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(*t), Valid: true}
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

func parseTimePtr(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// nowOr returns t, or the current time when t is zero.
func (s *Store) nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return s.now().UTC()
	}
	return t.UTC()
}

// limit turns a filter's Limit into a LIMIT value.
func limit(n int) int {
	switch {
	case n <= 0:
		return defaultLimit
	case n > maxLimit:
		return maxLimit
	}
	return n
}

// isUniqueViolation reports whether err is a UNIQUE constraint failure,
// optionally on the given "table.column".
func isUniqueViolation(err error, column string) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) || se.ExtendedCode != sqlite3.ErrConstraintUnique {
		return false
	}
	return column == "" || strings.Contains(se.Error(), column)
}
