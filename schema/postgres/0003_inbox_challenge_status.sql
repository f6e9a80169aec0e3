-- 0003_inbox_challenge_status: the challenge status a webhook reported, kept
-- in the inbox, so the intake can tell that a flow was already signalled
-- for the same challenge ending and not signal it again.
--
-- The same change, in the same order, is schema/sqlite/0003.

-- +goose Up

-- data.status of the webhook ('verified', 'failed', 'pending', …); '' when
-- it had none, as rows received before this migration. A constant default
-- adds the column without rewriting the table.
ALTER TABLE webhook_inbox ADD COLUMN challenge_status TEXT NOT NULL DEFAULT '';

-- The intake looks up a challenge's rows by status. The index on
-- challenge_id alone has the same condition and is a prefix of this one, so
-- it goes: one index fewer to write per webhook.
CREATE INDEX webhook_inbox_challenge_status ON webhook_inbox (challenge_id, challenge_status) WHERE challenge_id <> '';
DROP INDEX webhook_inbox_challenge_id;
