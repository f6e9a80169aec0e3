package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"

	"github.com/custodyflows/custodyflows/schema"
)

// This file holds everything that differs between SQLite and PostgreSQL:
// opening, migrating, row locks and error decoding. The queries elsewhere
// are written once, with ? placeholders that each call rebinds for the
// driver (sqlx.Rebind), and SQL both dialects accept (ON CONFLICT …,
// RETURNING, partial unique indexes).

// dialect is the kind of database behind a Store.
type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// pgMaxConns bounds each process's PostgreSQL pool. A deployment of two api
// and two worker processes then holds at most 40 sessions, well under
// PostgreSQL's default max_connections of 100.
const pgMaxConns = 10

// isPostgresURL reports whether dsn names a PostgreSQL database rather than
// a SQLite file.
func isPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// RedactDSN returns dsn fit for logs and error messages: a SQLite path as
// it is, a PostgreSQL URL with its password (in the user info or a password
// parameter) replaced by "xxxxx". A URL that does not parse is replaced
// whole, since where its password sits is unknown.
func RedactDSN(dsn string) string {
	if !isPostgresURL(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparseable URL)"
	}
	return redactURL(u)
}

func redactURL(u *url.URL) string {
	r := *u
	if _, ok := r.User.Password(); ok {
		r.User = url.UserPassword(r.User.Username(), "xxxxx")
	}
	if q := r.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		r.RawQuery = q.Encode()
	}
	return r.String()
}

// openPostgres opens a pool on the PostgreSQL database at dsn, checks that
// it answers and applies any pending migrations.
func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// url.Parse's error repeats the URL, password and all.
		return nil, errors.New("store: open postgres: the database URL does not parse (not shown: it may hold a password)")
	}
	s := &Store{d: dialectPostgres, path: redactURL(u), now: time.Now}
	if pw, ok := u.User.Password(); ok {
		s.secrets = append(s.secrets, pw, url.QueryEscape(pw), url.PathEscape(pw))
	}
	if pw := u.Query().Get("password"); pw != "" {
		s.secrets = append(s.secrets, pw, url.QueryEscape(pw))
	}
	db, err := sqlx.Open("pgx", dsn)
	if err != nil {
		return nil, s.redact(fmt.Errorf("store: open %s: %w", s.path, err))
	}
	db.SetMaxOpenConns(pgMaxConns)
	db.SetMaxIdleConns(pgMaxConns)
	// Recycle sessions so that a failover or a PgBouncer restart is
	// absorbed without a process restart.
	db.SetConnMaxLifetime(30 * time.Minute)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s.w, s.r = db, db
	if err := db.PingContext(ctx); err != nil {
		_ = s.Close()
		return nil, s.redact(fmt.Errorf("store: open %s: %w", s.path, err))
	}
	if err := s.Migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// cleanError is an error whose text had a secret removed. It unwraps only
// to a context error, never to pgx's errors: a *pgconn.ConnectError holds
// the whole connection config, password included, for anyone who asks for
// it with errors.As.
type cleanError struct {
	msg   string
	cause error // context.Canceled, context.DeadlineExceeded or nil
}

func (e *cleanError) Error() string { return e.msg }
func (e *cleanError) Unwrap() error { return e.cause }

// redact returns err with every secret of the DSN cut from its text, and
// cut loose from any pgx connect error it wraps. Errors of a SQLite store
// come back unchanged.
func (s *Store) redact(err error) error {
	if err == nil || s.d != dialectPostgres {
		return err
	}
	msg := err.Error()
	for _, secret := range s.secrets {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "xxxxx")
		}
	}
	var ce *pgconn.ConnectError
	if msg == err.Error() && !errors.As(err, &ce) {
		return err
	}
	clean := &cleanError{msg: msg}
	for _, c := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, c) {
			clean.cause = c
		}
	}
	return clean
}

// openSQLite opens (creating it and its directory if needed) the SQLite
// database at path, turns on WAL, the busy timeout, foreign keys and
// synchronous=NORMAL, and applies any pending migrations.
func openSQLite(ctx context.Context, path string) (*Store, error) {
	if strings.ContainsAny(path, "?#") {
		// The driver splits the DSN at '?', so such a path would silently
		// open a different file.
		return nil, fmt.Errorf("store: open %q: path must not contain '?' or '#'", path)
	}
	s := &Store{d: dialectSQLite, path: path, now: time.Now}
	if path == ":memory:" {
		db, err := sqlx.Open("sqlite3", sqliteDSN(path, true))
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
		w, err := sqlx.Open("sqlite3", sqliteDSN(path, true))
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		keepOne(w)
		r, err := sqlx.Open("sqlite3", sqliteDSN(path, false))
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
	if err := s.Migrate(ctx); err != nil {
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

// sqliteDSN returns the mattn/go-sqlite3 DSN for path. The driver runs the
// pragmas on every new connection, so they hold for both pools.
func sqliteDSN(path string, write bool) string {
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

// Migrate applies the migrations of package schema for the store's dialect
// that the database has not seen yet, each in its own transaction, through
// goose (versions recorded in goose_db_version). It is idempotent and safe
// to run from several processes at once: on PostgreSQL goose holds a
// session advisory lock while it migrates, so replicas that start together
// migrate once; on SQLite an flock on the file "<database>-migrate.lock"
// beside the database does the same for processes on one host.
//
// A SQLite database made before goose (its versions recorded by the old
// runner in schema_migrations) is adopted first: its versions are copied
// into goose's table, so goose applies only what is newer.
func (s *Store) Migrate(ctx context.Context) error {
	var (
		gd    goose.Dialect
		fsys  fs.FS
		opts  = []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
		steps = func() error { return nil }
	)
	switch s.d {
	case dialectPostgres:
		gd, fsys = goose.DialectPostgres, schema.Postgres()
		// The default retries every 5 s: a replica that starts a moment
		// after another would idle for 5 s before seeing there is nothing
		// left to do.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return fmt.Errorf("store: migrate: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	default:
		gd, fsys = goose.DialectSQLite3, schema.SQLite()
		if s.path != ":memory:" {
			unlock, err := lockFile(ctx, s.path+"-migrate.lock")
			if err != nil {
				return fmt.Errorf("store: migrate: %w", err)
			}
			defer unlock()
		}
		steps = func() error {
			return whileLocked(ctx, func() error { return s.adoptLegacyVersions(ctx) })
		}
	}
	if err := steps(); err != nil {
		return fmt.Errorf("store: migrate: adopt schema_migrations: %w", err)
	}
	up := func() error {
		// A provider per attempt: it creates goose's table once per
		// instance, even when that first try failed.
		p, err := goose.NewProvider(gd, s.w.DB, fsys, opts...)
		if err != nil {
			return err
		}
		_, err = p.Up(ctx)
		return err
	}
	var err error
	if s.d == dialectSQLite {
		// A fresh file that another process is switching to WAL answers
		// busy without waiting (see whileLocked); each migration is its own
		// transaction, so a retry goes on where the last one stopped.
		err = whileLocked(ctx, up)
	} else {
		err = up()
	}
	if err != nil {
		return s.redact(fmt.Errorf("store: migrate: %w", err))
	}
	return nil
}

// gooseTable is where goose records applied versions.
const gooseTable = "goose_db_version"

// adoptLegacyVersions copies the versions that the store's own runner (up
// to the first release) recorded in schema_migrations into goose's table,
// when goose's table does not exist yet. The old table stays, so a
// downgraded binary still sees its versions as applied.
func (s *Store) adoptLegacyVersions(ctx context.Context) error {
	return s.writeTx(ctx, func(tx *sqlx.Tx) error {
		var tables []string
		if err := tx.SelectContext(ctx, &tables, `SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, 'schema_migrations')`, gooseTable); err != nil {
			return err
		}
		if len(tables) != 1 || tables[0] != "schema_migrations" {
			return nil // a fresh database, or goose's already
		}
		var versions []int64
		if err := tx.SelectContext(ctx, &versions, `SELECT version FROM schema_migrations ORDER BY version`); err != nil {
			return err
		}
		st, err := database.NewStore(goose.DialectSQLite3, gooseTable)
		if err != nil {
			return err
		}
		if err := st.CreateVersionTable(ctx, tx); err != nil {
			return err
		}
		// Version 0 is goose's mark of an initialised table.
		for _, v := range append([]int64{0}, versions...) {
			if err := st.Insert(ctx, tx, database.InsertRequest{Version: v}); err != nil {
				return err
			}
		}
		return nil
	})
}

// lockFile takes an exclusive flock on path (creating the file), waiting
// while another process holds it, and returns its release. The kernel
// drops the lock when its holder dies, so a crashed migration leaves no
// stale lock behind.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// forUpdate is the clause that locks the rows a read-modify-write reads.
// SQLite needs none: write transactions begin IMMEDIATE and so run one at a
// time. PostgreSQL runs them side by side at READ COMMITTED, where two
// writers could read the same row and the later commit would undo the
// earlier; NO KEY UPDATE because the key never changes, so inserts of rows
// that reference it (a flow's customer) are not blocked.
func (s *Store) forUpdate() string {
	if s.d == dialectPostgres {
		return " FOR NO KEY UPDATE"
	}
	return ""
}

// isUniqueViolation reports whether err is a unique-constraint failure on
// the given index: SQLite names the columns ("flows.idempotency_key"),
// PostgreSQL the index ("flows_customer_idempotency_key").
func isUniqueViolation(err error, sqliteColumn, pgIndex string) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique && strings.Contains(se.Error(), sqliteColumn)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505" && pe.ConstraintName == pgIndex
	}
	return false
}

// The query helpers rebind ? placeholders for the driver ($1… for pgx).

func get(ctx context.Context, q sqlx.ExtContext, dest any, query string, args ...any) error {
	return sqlx.GetContext(ctx, q, dest, q.Rebind(query), args...)
}

func selectRows(ctx context.Context, q sqlx.ExtContext, dest any, query string, args ...any) error {
	return sqlx.SelectContext(ctx, q, dest, q.Rebind(query), args...)
}

func exec(ctx context.Context, q sqlx.ExtContext, query string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, q.Rebind(query), args...)
}

func queryRow(ctx context.Context, q sqlx.ExtContext, query string, args ...any) *sqlx.Row {
	return q.QueryRowxContext(ctx, q.Rebind(query), args...)
}
