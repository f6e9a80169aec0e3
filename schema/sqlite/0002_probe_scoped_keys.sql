-- 0002_probe_scoped_keys: a row for the readiness probe's write, idempotency
-- keys scoped per customer, and an index for pruning the webhook inbox.
--
-- The same change, in the same order, is schema/postgres/0002.

-- +goose Up

-- One row that /readyz rewrites: a real write notices a full disk or a
-- read-only database, which a SELECT would not.
CREATE TABLE health_probe (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    written_at TEXT    NOT NULL,
    writes     INTEGER NOT NULL DEFAULT 0
) STRICT;

-- An idempotency key is the client's, and two customers' clients may pick
-- the same one: scope it per customer instead of across the whole database.
DROP INDEX flows_idempotency_key;
CREATE UNIQUE INDEX flows_customer_idempotency_key ON flows (customer_id, idempotency_key) WHERE idempotency_key <> '';

-- Pruning deletes inbox rows by age.
CREATE INDEX webhook_inbox_received_at ON webhook_inbox (received_at);
