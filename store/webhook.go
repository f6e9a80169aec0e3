package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/custodyflows/custodyflows/flow"
)

// InboxEntry is one verified Planbok webhook in the inbox. IdempotencyKey
// is the payload's idempotencyKey (else the intake's key for a body
// without one, derived from the signed body) and is unique. BodySHA256 is the hex digest of the raw body: enough to spot a
// redelivery whose body differs, without keeping the body.
type InboxEntry struct {
	ID             int64
	IdempotencyKey string
	WebhookID      string
	EventType      string
	CustomerID     string
	ChallengeID    string
	// ChallengeStatus is the webhook's data.status ("verified", "failed",
	// "pending", …), "" when it had none.
	ChallengeStatus string
	BodySHA256      string
	ReceivedAt      time.Time
	// Outcome is "" until the webhook was acted on, then what was done
	// (for example "signalled" or "ignored").
	Outcome     string
	ProcessedAt *time.Time
}

type inboxRow struct {
	ID              int64          `db:"id"`
	IdempotencyKey  string         `db:"idempotency_key"`
	WebhookID       string         `db:"webhook_id"`
	EventType       string         `db:"event_type"`
	CustomerID      string         `db:"customer_id"`
	ChallengeID     string         `db:"challenge_id"`
	ChallengeStatus string         `db:"challenge_status"`
	BodySHA256      string         `db:"body_sha256"`
	ReceivedAt      string         `db:"received_at"`
	Outcome         string         `db:"outcome"`
	ProcessedAt     sql.NullString `db:"processed_at"`
}

// RecordWebhook inserts e into the inbox and sets e.ID (ReceivedAt defaults
// to now). When the idempotency key is already there it reports
// duplicate=true with a nil error, sets e.ID to the first delivery's row
// and leaves that row as it was.
func (s *Store) RecordWebhook(ctx context.Context, e *InboxEntry) (duplicate bool, err error) {
	if e.IdempotencyKey == "" {
		return false, errors.New("store: record webhook: empty idempotency key")
	}
	received := s.nowOr(e.ReceivedAt)
	err = s.writeTx(ctx, func(tx *sqlx.Tx) error {
		// ON CONFLICT DO NOTHING rather than catching the constraint error:
		// a duplicate is an expected outcome, not a failed statement (and
		// on PostgreSQL a failed statement would abort the transaction).
		// RETURNING gives no row when the insert did nothing.
		err := queryRow(ctx, tx, `INSERT INTO webhook_inbox
				(idempotency_key, webhook_id, event_type, customer_id, challenge_id, challenge_status, body_sha256, received_at, outcome, processed_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (idempotency_key) DO NOTHING
			RETURNING id`,
			e.IdempotencyKey, e.WebhookID, e.EventType, e.CustomerID, e.ChallengeID, e.ChallengeStatus, e.BodySHA256,
			formatTime(received), e.Outcome, formatTimePtr(e.ProcessedAt)).Scan(&e.ID)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// On PostgreSQL the insert waited for a concurrent delivery's
		// transaction to commit; at READ COMMITTED this read sees its row.
		duplicate = true
		return get(ctx, tx, &e.ID, `SELECT id FROM webhook_inbox WHERE idempotency_key = ?`, e.IdempotencyKey)
	})
	if err != nil {
		return false, s.redact(fmt.Errorf("store: record webhook %s: %w", e.WebhookID, err))
	}
	if !duplicate {
		e.ReceivedAt = received
	}
	return duplicate, nil
}

// SetWebhookOutcome records what was done with the webhook and when (now
// when at is zero). A key not in the inbox is a CodeNotFound error.
func (s *Store) SetWebhookOutcome(ctx context.Context, idempotencyKey, outcome string, at time.Time) error {
	var n int64
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		res, err := exec(ctx, tx, `UPDATE webhook_inbox SET outcome = ?, processed_at = ? WHERE idempotency_key = ?`,
			outcome, formatTime(s.nowOr(at)), idempotencyKey)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return s.redact(fmt.Errorf("store: set webhook outcome: %w", err))
	}
	if n == 0 {
		return flow.Errorf(flow.CodeNotFound, "No webhook with that idempotency key was recorded.")
	}
	return nil
}

// FindWebhook returns the inbox entry for idempotencyKey, or a CodeNotFound
// error.
func (s *Store) FindWebhook(ctx context.Context, idempotencyKey string) (*InboxEntry, error) {
	var row inboxRow
	err := get(ctx, s.r, &row, `SELECT id, idempotency_key, webhook_id, event_type, customer_id, challenge_id,
			challenge_status, body_sha256, received_at, outcome, processed_at
		FROM webhook_inbox WHERE idempotency_key = ?`, idempotencyKey)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, flow.Errorf(flow.CodeNotFound, "No webhook with that idempotency key was recorded.")
	}
	if err != nil {
		return nil, s.redact(fmt.Errorf("store: find webhook: %w", err))
	}
	e := &InboxEntry{
		ID:              row.ID,
		IdempotencyKey:  row.IdempotencyKey,
		WebhookID:       row.WebhookID,
		EventType:       row.EventType,
		CustomerID:      row.CustomerID,
		ChallengeID:     row.ChallengeID,
		ChallengeStatus: row.ChallengeStatus,
		BodySHA256:      row.BodySHA256,
		Outcome:         row.Outcome,
	}
	if e.ReceivedAt, err = parseTime(row.ReceivedAt); err != nil {
		return nil, fmt.Errorf("store: find webhook: %w", err)
	}
	if e.ProcessedAt, err = parseTimePtr(row.ProcessedAt); err != nil {
		return nil, fmt.Errorf("store: find webhook: %w", err)
	}
	return e, nil
}

// outcomeSignalled is the outcome the intake records (api.OutcomeSignalled)
// when it signalled the workflow a webhook concerns.
const outcomeSignalled = "signalled"

// selectChallengeSignalled finds a signalled row for a challenge and status
// other than the one asking. The second condition on challenge_id repeats
// the partial index's, which SQLite must see in the query to use it.
const selectChallengeSignalled = `SELECT EXISTS (SELECT 1 FROM webhook_inbox
	WHERE challenge_id = ? AND challenge_id <> '' AND challenge_status = ?
		AND outcome = '` + outcomeSignalled + `' AND idempotency_key <> ?)`

// ChallengeSignalled reports whether an inbox row other than exceptKey's
// names challengeID with challengeStatus and has the outcome "signalled":
// the intake then knows a workflow was already woken for that challenge
// ending. A row still "received" (being routed, or its outcome never
// written) or "signal_failed" does not count. An empty challengeID is
// never signalled.
func (s *Store) ChallengeSignalled(ctx context.Context, challengeID, challengeStatus, exceptKey string) (bool, error) {
	var found bool
	if err := get(ctx, s.r, &found, selectChallengeSignalled, challengeID, challengeStatus, exceptKey); err != nil {
		return false, s.redact(fmt.Errorf("store: challenge signalled: %w", err))
	}
	return found, nil
}
