package sandbox

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3" // driver "sqlite3"
)

// schema is the sandbox's whole state. Times are unix nanoseconds (UTC).
// Nothing here is a PIN or a private key, and nothing secret is in clear
// (atrest.go): vault is the Argon2id-sealed shares wrapped under the
// storage key, escrow the wrapped recovery secret of email recovery,
// customers.email_code the wrapped last emailed code (the simulated inbox)
// and challenges.email_code an HMAC of the code.
const schema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	id              TEXT NOT NULL UNIQUE,
	name            TEXT NOT NULL,
	ref_id          TEXT NOT NULL,
	status          TEXT NOT NULL,
	vault           TEXT,
	recovery_method TEXT NOT NULL DEFAULT '',
	recovery_email  TEXT NOT NULL DEFAULT '',
	escrow          BLOB,
	failed_pins     INTEGER NOT NULL DEFAULT 0,
	email_code      TEXT NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS challenges (
	id                TEXT PRIMARY KEY,
	customer_id       TEXT NOT NULL REFERENCES customers(id),
	task              TEXT NOT NULL,
	status            TEXT NOT NULL,
	redirect_url      TEXT NOT NULL,
	blockchains       TEXT NOT NULL DEFAULT '[]',
	email_code        TEXT NOT NULL DEFAULT '',
	recovery_attempts INTEGER NOT NULL DEFAULT 0,
	result            TEXT,
	created_at        INTEGER NOT NULL,
	expires_at        INTEGER NOT NULL,
	completed_at      INTEGER
);
CREATE INDEX IF NOT EXISTS challenges_expires ON challenges(expires_at);
CREATE TABLE IF NOT EXISTS wallets (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	id              TEXT NOT NULL UNIQUE,
	customer_id     TEXT NOT NULL REFERENCES customers(id),
	blockchain      TEXT NOT NULL,
	address         TEXT NOT NULL,
	derivation_path TEXT NOT NULL,
	key_type        TEXT NOT NULL,
	idx             INTEGER NOT NULL,
	challenge_id    TEXT NOT NULL,
	created_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS wallets_customer ON wallets(customer_id, seq);
CREATE TABLE IF NOT EXISTS idempotency (
	key         TEXT PRIMARY KEY,
	fingerprint TEXT NOT NULL,
	status      INTEGER NOT NULL,
	body        BLOB NOT NULL,
	created_at  INTEGER NOT NULL
);
-- Every idempotent POST prunes keys past their retention: without this
-- index that was a scan of every key and its stored answer, which grew with
-- every customer and challenge ever created.
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created_at);
CREATE TABLE IF NOT EXISTS webhooks (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	id              TEXT NOT NULL UNIQUE,
	event           TEXT NOT NULL,
	body            BLOB NOT NULL,
	state           TEXT NOT NULL,
	duplicate       INTEGER NOT NULL DEFAULT 0,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	last_error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS webhooks_due ON webhooks(state, next_attempt_at);
`

// Webhook outbox states.
const (
	webhookPending   = "pending"
	webhookDelivered = "delivered"
	webhookDropped   = "dropped"
	webhookGaveUp    = "failed"
)

type db struct{ x *sqlx.DB }

// openDB opens the SQLite file at path ("" = private in-memory database)
// and creates the schema. One connection: SQLite has one writer anyway,
// and an in-memory database lives only as long as its connection.
func openDB(path string) (*db, error) {
	dsn := "file::memory:?_foreign_keys=on"
	if path != "" {
		if err := privateFile(path); err != nil {
			return nil, err
		}
		dsn = "file:" + path + "?_journal_mode=WAL&_busy_timeout=5000&_foreign_keys=on&_txlock=immediate"
	}
	x, err := sqlx.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("sandbox: open database: %w", err)
	}
	x.SetMaxOpenConns(1)
	x.SetMaxIdleConns(1)
	x.SetConnMaxLifetime(0)
	x.SetConnMaxIdleTime(0)
	if _, err := x.Exec(schema); err != nil {
		x.Close()
		return nil, fmt.Errorf("sandbox: create schema: %w", err)
	}
	return &db{x: x}, nil
}

func (d *db) close() error { return d.x.Close() }

// secret returns the sandbox's own secret (CSRF tokens), made once and
// kept so Gateway pages stay valid across restarts.
func (d *db) secret(rnd io.Reader) ([]byte, error) {
	var v []byte
	err := d.x.Get(&v, `SELECT value FROM meta WHERE key = 'secret'`)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sandbox: read secret: %w", err)
	}
	v = make([]byte, 32)
	if _, err := io.ReadFull(rnd, v); err != nil {
		return nil, err
	}
	// Another process starting on the same fresh file may have stored
	// its own meanwhile: the first one stored is the secret.
	if _, err := d.x.Exec(`INSERT INTO meta(key, value) VALUES ('secret', ?) ON CONFLICT(key) DO NOTHING`, v); err != nil {
		return nil, fmt.Errorf("sandbox: store secret: %w", err)
	}
	if err := d.x.Get(&v, `SELECT value FROM meta WHERE key = 'secret'`); err != nil {
		return nil, fmt.Errorf("sandbox: read secret: %w", err)
	}
	return v, nil
}

// inTx runs fn in a transaction.
func (d *db) inTx(fn func(tx *sqlx.Tx) error) error {
	tx, err := d.x.Beginx()
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func toNanos(t time.Time) int64   { return t.UnixNano() }
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

// customer is a customers row.
type customer struct {
	Seq            int64          `db:"seq"`
	ID             string         `db:"id"`
	Name           string         `db:"name"`
	RefID          string         `db:"ref_id"`
	Status         string         `db:"status"`
	Vault          sql.NullString `db:"vault"`
	RecoveryMethod string         `db:"recovery_method"`
	RecoveryEmail  string         `db:"recovery_email"`
	Escrow         []byte         `db:"escrow"`
	FailedPINs     int            `db:"failed_pins"`
	// Mailbox is the last code emailed to the customer, wrapped.
	Mailbox   string `db:"email_code"`
	CreatedAt int64  `db:"created_at"`
	UpdatedAt int64  `db:"updated_at"`
}

const customerCols = `seq, id, name, ref_id, status, vault, recovery_method, recovery_email, escrow, failed_pins, email_code, created_at, updated_at`

func insertCustomer(q sqlx.Execer, c *customer) error {
	_, err := q.Exec(`INSERT INTO customers(id, name, ref_id, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, c.RefID, c.Status, c.CreatedAt, c.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert customer: %w", err)
	}
	return nil
}

// updateCustomer writes every mutable column of c.
func updateCustomer(q sqlx.Execer, c *customer) error {
	_, err := q.Exec(`UPDATE customers SET status = ?, vault = ?, recovery_method = ?, recovery_email = ?, escrow = ?,
		failed_pins = ?, email_code = ?, updated_at = ? WHERE id = ?`,
		c.Status, c.Vault, c.RecoveryMethod, c.RecoveryEmail, c.Escrow, c.FailedPINs, c.Mailbox, c.UpdatedAt, c.ID)
	if err != nil {
		return fmt.Errorf("update customer: %w", err)
	}
	return nil
}

// findCustomer returns the customer, or nil when there is none.
func findCustomer(q sqlx.Queryer, id string) (*customer, error) {
	var c customer
	err := sqlx.Get(q, &c, `SELECT `+customerCols+` FROM customers WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find customer: %w", err)
	}
	return &c, nil
}

func (d *db) listCustomers(offset, limit int, asc bool) ([]customer, int, error) {
	var total int
	if err := d.x.Get(&total, `SELECT COUNT(*) FROM customers`); err != nil {
		return nil, 0, fmt.Errorf("count customers: %w", err)
	}
	order := "DESC"
	if asc {
		order = "ASC"
	}
	var cs []customer
	err := d.x.Select(&cs, `SELECT `+customerCols+` FROM customers ORDER BY seq `+order+` LIMIT ? OFFSET ?`, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("list customers: %w", err)
	}
	return cs, total, nil
}

// challenge is a challenges row.
type challenge struct {
	ID          string `db:"id"`
	CustomerID  string `db:"customer_id"`
	Task        string `db:"task"`
	Status      string `db:"status"`
	RedirectURL string `db:"redirect_url"`
	Blockchains string `db:"blockchains"`
	// EmailCodeMAC is the HMAC of the code emailed for a reset-pin
	// challenge (hex), "" when none was.
	EmailCodeMAC     string         `db:"email_code"`
	RecoveryAttempts int            `db:"recovery_attempts"`
	Result           sql.NullString `db:"result"`
	CreatedAt        int64          `db:"created_at"`
	ExpiresAt        int64          `db:"expires_at"`
	CompletedAt      sql.NullInt64  `db:"completed_at"`
}

const challengeCols = `id, customer_id, task, status, redirect_url, blockchains, email_code, recovery_attempts, result, created_at, expires_at, completed_at`

func insertChallenge(q sqlx.Execer, c *challenge) error {
	_, err := q.Exec(`INSERT INTO challenges(`+challengeCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.CustomerID, c.Task, c.Status, c.RedirectURL, c.Blockchains, c.EmailCodeMAC, c.RecoveryAttempts,
		c.Result, c.CreatedAt, c.ExpiresAt, c.CompletedAt)
	if err != nil {
		return fmt.Errorf("insert challenge: %w", err)
	}
	return nil
}

func updateChallenge(q sqlx.Execer, c *challenge) error {
	_, err := q.Exec(`UPDATE challenges SET status = ?, recovery_attempts = ?, result = ?, completed_at = ? WHERE id = ?`,
		c.Status, c.RecoveryAttempts, c.Result, c.CompletedAt, c.ID)
	if err != nil {
		return fmt.Errorf("update challenge: %w", err)
	}
	return nil
}

// findChallenge returns the challenge, or nil when there is none or it has
// expired at now (Planbok prunes challenges after their lifetime).
func findChallenge(q sqlx.Queryer, id string, now time.Time) (*challenge, error) {
	var c challenge
	err := sqlx.Get(q, &c, `SELECT `+challengeCols+` FROM challenges WHERE id = ? AND expires_at > ?`, id, toNanos(now))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find challenge: %w", err)
	}
	return &c, nil
}

// pruneChallenges deletes the challenges whose lifetime ended before now.
func (d *db) pruneChallenges(now time.Time) error {
	_, err := d.x.Exec(`DELETE FROM challenges WHERE expires_at <= ?`, toNanos(now))
	return err
}

// wallet is a wallets row. Only public data: the private key is derived
// again from the seed when the user exports.
type wallet struct {
	Seq            int64  `db:"seq"`
	ID             string `db:"id"`
	CustomerID     string `db:"customer_id"`
	Blockchain     string `db:"blockchain"`
	Address        string `db:"address"`
	DerivationPath string `db:"derivation_path"`
	KeyType        string `db:"key_type"`
	Idx            int64  `db:"idx"`
	ChallengeID    string `db:"challenge_id"`
	CreatedAt      int64  `db:"created_at"`
}

const walletCols = `seq, id, customer_id, blockchain, address, derivation_path, key_type, idx, challenge_id, created_at`

func insertWallet(q sqlx.Execer, w *wallet) error {
	_, err := q.Exec(`INSERT INTO wallets(id, customer_id, blockchain, address, derivation_path, key_type, idx, challenge_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.ID, w.CustomerID, w.Blockchain, w.Address, w.DerivationPath, w.KeyType, w.Idx, w.ChallengeID, w.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert wallet: %w", err)
	}
	return nil
}

// walletsOf returns the wallets of the given customers (all wallets when
// ids is empty), oldest first.
func walletsOf(q sqlx.Queryer, ids ...string) ([]wallet, error) {
	var ws []wallet
	query, args := `SELECT `+walletCols+` FROM wallets ORDER BY seq`, []any(nil)
	if len(ids) > 0 {
		query = `SELECT ` + walletCols + ` FROM wallets WHERE customer_id IN (?` + strings.Repeat(", ?", len(ids)-1) + `) ORDER BY seq`
		for _, id := range ids {
			args = append(args, id)
		}
	}
	if err := sqlx.Select(q, &ws, query, args...); err != nil {
		return nil, fmt.Errorf("list wallets: %w", err)
	}
	return ws, nil
}

// nextIndex is the next unused derivation index of a customer's key type.
func nextIndex(q sqlx.Queryer, customerID, keyType string) (int64, error) {
	var n sql.NullInt64
	if err := sqlx.Get(q, &n, `SELECT MAX(idx) FROM wallets WHERE customer_id = ? AND key_type = ?`, customerID, keyType); err != nil {
		return 0, fmt.Errorf("next index: %w", err)
	}
	if !n.Valid {
		return 0, nil
	}
	return n.Int64 + 1, nil
}

// idemRecord is a stored idempotent response.
type idemRecord struct {
	Key         string `db:"key"`
	Fingerprint string `db:"fingerprint"`
	Status      int    `db:"status"`
	Body        []byte `db:"body"`
	CreatedAt   int64  `db:"created_at"`
}

func (d *db) findIdem(key string) (*idemRecord, error) {
	var r idemRecord
	err := d.x.Get(&r, `SELECT key, fingerprint, status, body, created_at FROM idempotency WHERE key = ?`, key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find idempotency key: %w", err)
	}
	return &r, nil
}

func (d *db) putIdem(r *idemRecord, pruneBefore time.Time) error {
	if _, err := d.x.Exec(`DELETE FROM idempotency WHERE created_at < ?`, toNanos(pruneBefore)); err != nil {
		return fmt.Errorf("prune idempotency keys: %w", err)
	}
	_, err := d.x.Exec(`INSERT INTO idempotency(key, fingerprint, status, body, created_at) VALUES (?, ?, ?, ?, ?)`,
		r.Key, r.Fingerprint, r.Status, r.Body, r.CreatedAt)
	if err != nil {
		return fmt.Errorf("store idempotency key: %w", err)
	}
	return nil
}

// outboxRow is a webhooks row.
type outboxRow struct {
	Seq           int64  `db:"seq"`
	ID            string `db:"id"`
	Event         string `db:"event"`
	Body          []byte `db:"body"`
	State         string `db:"state"`
	Duplicate     bool   `db:"duplicate"`
	Attempts      int    `db:"attempts"`
	NextAttemptAt int64  `db:"next_attempt_at"`
	CreatedAt     int64  `db:"created_at"`
	LastError     string `db:"last_error"`
}

const outboxCols = `seq, id, event, body, state, duplicate, attempts, next_attempt_at, created_at, last_error`

func insertOutbox(q sqlx.Execer, o *outboxRow) error {
	_, err := q.Exec(`INSERT INTO webhooks(id, event, body, state, duplicate, attempts, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, ?, 0, ?, ?)`, o.ID, o.Event, o.Body, o.State, o.Duplicate, o.NextAttemptAt, o.CreatedAt)
	if err != nil {
		return fmt.Errorf("enqueue webhook: %w", err)
	}
	return nil
}

func (d *db) dueWebhooks(now time.Time, limit int) ([]outboxRow, error) {
	var rows []outboxRow
	err := d.x.Select(&rows, `SELECT `+outboxCols+` FROM webhooks WHERE state = ? AND next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT ?`,
		webhookPending, toNanos(now), limit)
	if err != nil {
		return nil, fmt.Errorf("due webhooks: %w", err)
	}
	return rows, nil
}

func (d *db) saveWebhookAttempt(o *outboxRow) error {
	_, err := d.x.Exec(`UPDATE webhooks SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ? WHERE seq = ?`,
		o.State, o.Attempts, o.NextAttemptAt, o.LastError, o.Seq)
	if err != nil {
		return fmt.Errorf("save webhook attempt: %w", err)
	}
	return nil
}
