-- 0001_init: customers, the flow index, the webhook inbox and the audit log.
--
-- Conventions (the store package relies on them):
--   * Times are UTC text in a fixed-width RFC 3339 form with nine fraction
--     digits ("2006-01-02T15:04:05.000000000Z"), so text order is time order
--     and ORDER BY / comparisons on them are correct. NULL means "never".
--   * Optional strings are NOT NULL DEFAULT '' ("" = unset); unique indexes on
--     them are partial (WHERE col <> '') so unset values never collide.
--   * Booleans are INTEGER 0/1.
--   * Kind and status values mirror package flow; a new value needs a new
--     migration that rebuilds the CHECK.
--   * Nothing secret is stored: no PINs, keys, recovery answers or CSV.

CREATE TABLE customers (
    id                TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    name              TEXT    NOT NULL DEFAULT '',
    ref_id            TEXT    NOT NULL DEFAULT '',
    has_pin           INTEGER NOT NULL DEFAULT 0 CHECK (has_pin IN (0, 1)),
    has_recovery      INTEGER NOT NULL DEFAULT 0 CHECK (has_recovery IN (0, 1)),
    locked_out        INTEGER NOT NULL DEFAULT 0 CHECK (locked_out IN (0, 1)),
    pin_set_at        TEXT,
    pin_updated_at    TEXT,
    recovery_set_at   TEXT,
    last_pin_reset_at TEXT,
    last_export_at    TEXT,
    synced_at         TEXT,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
) STRICT;

CREATE INDEX customers_ref_id ON customers (ref_id) WHERE ref_id <> '';

CREATE TABLE flows (
    id              TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
    customer_id     TEXT NOT NULL REFERENCES customers (id),
    kind            TEXT NOT NULL CHECK (kind IN ('initialize', 'recovery', 'update_pin', 'reset_pin', 'export_private_keys', 'create_wallets')),
    status          TEXT NOT NULL CHECK (status IN ('starting', 'awaiting_user', 'completed', 'failed', 'expired', 'cancelled')),
    challenge_id    TEXT NOT NULL DEFAULT '',
    gateway_url     TEXT NOT NULL DEFAULT '',
    redirect_url    TEXT NOT NULL DEFAULT '',
    -- JSON array of blockchain identifiers, e.g. ["ETH-SEPOLIA"].
    blockchains     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(blockchains) AND json_type(blockchains) = 'array'),
    expires_at      TEXT,
    idempotency_key TEXT NOT NULL DEFAULT '',
    -- Hash of the route and body the idempotency key was first used with.
    request_hash    TEXT NOT NULL DEFAULT '',
    error_code      TEXT NOT NULL DEFAULT '',
    error_message   TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    completed_at    TEXT
) STRICT;

CREATE UNIQUE INDEX flows_challenge_id ON flows (challenge_id) WHERE challenge_id <> '';
CREATE UNIQUE INDEX flows_idempotency_key ON flows (idempotency_key) WHERE idempotency_key <> '';
-- Serves a customer's flow list (newest first) and the active-flow lookup.
CREATE INDEX flows_customer_created ON flows (customer_id, created_at DESC, id DESC);

-- Every verified Planbok webhook, recorded before it is acted on; the unique
-- idempotency key is what makes a redelivered webhook a no-op. customer_id
-- has no foreign key: webhooks may name customers this database never saw.
CREATE TABLE webhook_inbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE CHECK (idempotency_key <> ''),
    webhook_id      TEXT NOT NULL DEFAULT '',
    event_type      TEXT NOT NULL DEFAULT '',
    customer_id     TEXT NOT NULL DEFAULT '',
    challenge_id    TEXT NOT NULL DEFAULT '',
    body_sha256     TEXT NOT NULL DEFAULT '',
    received_at     TEXT NOT NULL,
    -- '' until processed, then e.g. 'signalled' or 'ignored'.
    outcome         TEXT NOT NULL DEFAULT '',
    processed_at    TEXT
) STRICT;

CREATE INDEX webhook_inbox_challenge_id ON webhook_inbox (challenge_id) WHERE challenge_id <> '';

-- Who did what to whom, append-only. No foreign keys: the audit trail must
-- be writable even for customers or flows the tables above do not hold.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL CHECK (action <> ''),
    customer_id TEXT NOT NULL DEFAULT '',
    flow_id     TEXT NOT NULL DEFAULT '',
    outcome     TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX audit_log_customer ON audit_log (customer_id, at DESC, id DESC);
CREATE INDEX audit_log_flow ON audit_log (flow_id, at DESC, id DESC) WHERE flow_id <> '';
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
