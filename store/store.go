// Package store is custodyflows' app database: customers and their security
// status, an index of flows, the webhook inbox and the audit log, kept
// through sqlx in one SQLite file (mattn/go-sqlite3) or in PostgreSQL
// (pgx), one API over both.
//
// Temporal holds each flow's full history; the store holds what the API
// must answer without asking Temporal (a customer's security status, the
// flow list, idempotency keys) and what must survive any workflow (the
// webhook inbox that de-duplicates deliveries, the audit log).
//
// SQLite suits one host: api and worker share the file. PostgreSQL lets
// them run on many hosts; every guarantee (one flow per idempotency key
// and customer, one inbox row per webhook, no lost write between
// processes, an audit log that is never rewritten) holds on both, and the
// tests run on both. What differs between the two is in dialect.go.
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
	"time"

	"github.com/jmoiron/sqlx"
)

// BusyTimeout is how long a SQLite statement waits for another
// connection's (or process's) write lock before failing with SQLITE_BUSY.
const BusyTimeout = 5 * time.Second

// defaultLimit and maxLimit bound list queries.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// Store is the app database. It is safe for concurrent use.
//
// On SQLite it holds two pools on the same file. All writes go through one
// connection: SQLite allows one writer at a time anyway, and queueing
// writers in database/sql (which honours ctx) instead of in SQLite's busy
// handler means the process's own writers never see SQLITE_BUSY. Reads use a
// separate pool of read-only connections, which WAL lets run in parallel
// with the writer. Write transactions start with BEGIN IMMEDIATE so that a
// second process on the same file (api and worker, or migrate) waits in the
// busy handler for the lock up front instead of failing when a read lock
// cannot be upgraded.
//
// On PostgreSQL one pool serves reads and writes; write transactions run at
// READ COMMITTED and lock the rows they read before rewriting them.
type Store struct {
	d       dialect
	path    string   // the SQLite path, or the PostgreSQL URL without its password
	secrets []string // the password in the PostgreSQL URL, kept out of errors
	w       *sqlx.DB // SQLite: exactly one connection, every write
	r       *sqlx.DB // SQLite: read-only connections; PostgreSQL: w
	now     func() time.Time
}

// Open opens the app database named by dsn and applies any pending
// migrations.
//
// A dsn starting with postgres:// or postgresql:// is a PostgreSQL URL
// (pgx's syntax: postgres://user:password@host:5432/db?sslmode=verify-full;
// the password may instead come from PGPASSWORD or a passfile). Open checks
// that the server answers, and its errors never show the password.
//
// Anything else is a SQLite path: the file and its directory are created
// if needed, and WAL, the busy timeout, foreign keys and synchronous=NORMAL
// are turned on. The special path ":memory:" gives a private in-memory
// database (one connection), for tests.
func Open(ctx context.Context, dsn string) (*Store, error) {
	switch {
	case dsn == "":
		return nil, errors.New("store: open: empty database path or URL")
	case isPostgresURL(dsn):
		return openPostgres(ctx, dsn)
	default:
		return openSQLite(ctx, dsn)
	}
}

// Path returns the database file's path, or the PostgreSQL URL with its
// password replaced by "xxxxx" (fit for logs).
func (s *Store) Path() string { return s.path }

// Close closes the store's pools.
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

// Ping checks that the database answers on every pool (for /readyz). It
// only reads: ProbeWrite also proves that the database takes writes.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return s.redact(fmt.Errorf("store: ping: %w", err))
	}
	if err := s.w.PingContext(ctx); err != nil {
		return s.redact(fmt.Errorf("store: ping: %w", err))
	}
	return nil
}

// ProbeWrite makes a tiny real write (one row of health_probe rewritten),
// for /readyz: a full disk, a read-only file or mount, or a PostgreSQL
// server that turned read-only (a replica after failover) fails it while
// reads still succeed.
func (s *Store) ProbeWrite(ctx context.Context) error {
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		_, err := exec(ctx, tx, `INSERT INTO health_probe (id, written_at, writes) VALUES (1, ?, 1)
			ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, writes = health_probe.writes + 1`,
			formatTime(s.now()))
		return err
	})
	if err != nil {
		return s.redact(fmt.Errorf("store: probe write: %w", err))
	}
	return nil
}

// writeTx runs fn in a write transaction (on SQLite BEGIN IMMEDIATE on the
// writer connection, on PostgreSQL READ COMMITTED) and commits it when fn
// returns nil. fn must not use s.w directly: on SQLite the writer's only
// connection belongs to the transaction.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sqlx.Tx) error) (err error) {
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return s.redact(fmt.Errorf("begin: %w", err))
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
