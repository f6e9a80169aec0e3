package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Retention says how long Prune keeps rows, by age. Zero keeps them
// forever.
//
// WebhookInbox must be longer than Planbok's redelivery window: a webhook
// delivered again after its inbox row is gone is no longer known as a
// duplicate and is acted on again. AuditLog is whatever the app's own
// record keeping asks.
type Retention struct {
	// WebhookInbox is the age (by receivedAt) past which inbox rows go.
	WebhookInbox time.Duration
	// AuditLog is the age (by at) past which audit rows go.
	AuditLog time.Duration
}

// Pruned counts the rows Prune deleted.
type Pruned struct {
	WebhookInbox int64
	AuditLog     int64
}

// pruneBatch bounds one delete: on SQLite a write transaction holds the
// only write lock, so a prune of months of rows must not stall the API's
// writes for its whole length.
const pruneBatch = 1000

// selectOldInbox and selectOldAudit pick one batch of rows older than a
// cutoff, oldest first, through the tables' time indexes.
const (
	selectOldInbox = `SELECT id FROM webhook_inbox WHERE received_at < ? ORDER BY received_at LIMIT ?`
	selectOldAudit = `SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?`
)

// Prune deletes webhook-inbox and audit-log rows older than r says (ages
// measured from now), in batches of pruneBatch rows each in its own
// transaction, and returns how many went. It is the only way rows leave
// the audit log, which is otherwise append-only. Safe to run from several
// processes at once; on an error the rows deleted so far stay deleted and
// are counted. Something else decides when to call it (a timer in the
// worker, a cron job).
func (s *Store) Prune(ctx context.Context, r Retention) (Pruned, error) {
	var p Pruned
	now := s.now()
	if r.WebhookInbox > 0 {
		n, err := s.pruneTable(ctx, `DELETE FROM webhook_inbox WHERE id IN (`+selectOldInbox+`)`, now.Add(-r.WebhookInbox))
		p.WebhookInbox = n
		if err != nil {
			return p, s.redact(fmt.Errorf("store: prune webhook inbox: %w", err))
		}
	}
	if r.AuditLog > 0 {
		n, err := s.pruneTable(ctx, `DELETE FROM audit_log WHERE id IN (`+selectOldAudit+`)`, now.Add(-r.AuditLog))
		p.AuditLog = n
		if err != nil {
			return p, s.redact(fmt.Errorf("store: prune audit log: %w", err))
		}
	}
	return p, nil
}

// pruneTable runs the batched delete until a batch deletes less than a
// full batch.
func (s *Store) pruneTable(ctx context.Context, query string, cutoff time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
			res, err := exec(ctx, tx, query, formatTime(cutoff), pruneBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}
