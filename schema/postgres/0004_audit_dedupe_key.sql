-- 0004_audit_dedupe_key: an optional key that makes an audit row written
-- once however often its writer runs. A flow records its end as a local
-- activity in the workflow task that ends it; when that task is retried
-- (new events arrived while it ran, a worker crashed) the activity runs
-- again, and the end must still be one row.
--
-- The same change, in the same order, is schema/sqlite/0004.

-- +goose Up

-- '' (no key) for every row written before this migration and for rows
-- that may repeat (a start answered twice is audited twice).
ALTER TABLE audit_log ADD COLUMN dedupe_key TEXT NOT NULL DEFAULT '';

CREATE UNIQUE INDEX audit_log_dedupe_key ON audit_log (dedupe_key) WHERE dedupe_key <> '';
