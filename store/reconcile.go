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

// What the reconciler needs of the store: customer ids page by page, the
// active flow rows, and corrections written together with their audit
// rows. Like every store query they are written once for both dialects
// (dialect.go).

// ListCustomerIDs returns up to n (1..1000) stored customer ids greater than
// after, in id order (keyset paging: a page costs the same however far the
// walk has gone, and customers added meanwhile are not skipped).
func (s *Store) ListCustomerIDs(ctx context.Context, after string, n int) ([]string, error) {
	var ids []string
	if err := selectRows(ctx, s.r, &ids, `SELECT id FROM customers WHERE id > ? ORDER BY id LIMIT ?`, after, limit(n)); err != nil {
		return nil, s.redact(fmt.Errorf("store: list customer ids: %w", err))
	}
	return ids, nil
}

// ListActiveFlows returns up to n (1..1000) flows in an active status (starting,
// awaiting_user) last updated before updatedBefore, with ids greater than
// after, in id order.
func (s *Store) ListActiveFlows(ctx context.Context, after string, updatedBefore time.Time, n int) ([]*flow.Flow, error) {
	var rows []flowRow
	err := selectRows(ctx, s.r, &rows, `SELECT `+flowColumns+` FROM flows
		WHERE status IN (?, ?) AND updated_at < ? AND id > ?
		ORDER BY id LIMIT ?`,
		string(flow.StatusStarting), string(flow.StatusAwaitingUser), formatTime(updatedBefore), after, limit(n))
	if err != nil {
		return nil, s.redact(fmt.Errorf("store: list active flows: %w", err))
	}
	out := make([]*flow.Flow, 0, len(rows))
	for i := range rows {
		f, err := rows[i].flow()
		if err != nil {
			return nil, fmt.Errorf("store: list active flows: %w", err)
		}
		out = append(out, f)
	}
	return out, nil
}

// SecurityCorrection changes a customer's security flags to what Planbok
// says, on the condition that they still hold the values the caller read
// (Expect), so a correction never overwrites a flow's or a webhook's newer
// write. Timestamps follow the change: a PIN or recovery that appeared
// gets pinSetAt or recoverySetAt = At when none is known; an unlock sets
// lastPinResetAt = At (only a PIN reset unlocks) and forgets which sync
// locked the customer out. Audit rows are written in the same transaction,
// so a correction is never without its record.
type SecurityCorrection struct {
	Expect flow.Standing
	Truth  flow.Standing
	At     time.Time
	Audit  []*AuditEntry
}

// CorrectSecurity applies c to the customer's stored security status. It
// returns the status after the call and whether c was applied: false when
// the stored flags no longer equal c.Expect (someone else wrote first) or
// the customer row does not exist; nothing is written then.
func (s *Store) CorrectSecurity(ctx context.Context, customerID string, c SecurityCorrection) (flow.Security, bool, error) {
	if customerID == "" {
		return flow.Security{}, false, errors.New("store: correct security: empty customer id")
	}
	at := s.nowOr(c.At)
	stamp := formatTime(at)
	// Only the timestamps the change concerns are set; the statement is
	// built from fixed pieces, never from input.
	set := `has_pin = ?, has_recovery = ?, locked_out = ?, synced_at = ?, updated_at = ?`
	args := []any{c.Truth.HasPIN, c.Truth.HasRecovery, c.Truth.LockedOut, stamp, formatTime(s.now())}
	if c.Truth.HasPIN && !c.Expect.HasPIN {
		set += `, pin_set_at = COALESCE(pin_set_at, ?)`
		args = append(args, stamp)
	}
	if c.Truth.HasRecovery && !c.Expect.HasRecovery {
		set += `, recovery_set_at = COALESCE(recovery_set_at, ?)`
		args = append(args, stamp)
	}
	if !c.Expect.LockedOut || !c.Truth.LockedOut {
		// Only a lockout that stays keeps the sync that made it (see
		// UpdateSecurity); one the reconciler makes belongs to no sync, and
		// the reconciler's audit rows keep it from telling the app twice.
		set += `, locked_out_by = ''`
	}
	if c.Expect.LockedOut && !c.Truth.LockedOut {
		set += `, last_pin_reset_at = CASE WHEN last_pin_reset_at IS NULL OR last_pin_reset_at < ? THEN ? ELSE last_pin_reset_at END`
		args = append(args, stamp, stamp)
	}
	args = append(args, customerID, c.Expect.HasPIN, c.Expect.HasRecovery, c.Expect.LockedOut)
	var (
		sec     flow.Security
		applied bool
	)
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		res, err := exec(ctx, tx, `UPDATE customers SET `+set+`
			WHERE id = ? AND has_pin = ? AND has_recovery = ? AND locked_out = ?`, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if applied = n == 1; applied {
			for _, a := range c.Audit {
				if err := insertAudit(ctx, tx, a, at); err != nil {
					return err
				}
			}
		}
		var row customerRow
		err = get(ctx, tx, &row, `SELECT `+customerColumns+` FROM customers WHERE id = ?`, customerID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		sec, err = row.security()
		return err
	})
	if err != nil {
		return flow.Security{}, false, s.redact(fmt.Errorf("store: correct security of customer %s: %w", customerID, err))
	}
	return sec, applied, nil
}

// RepairFlow moves an active flow row to f's terminal status (with its
// error and completion time) and writes audit in the same transaction. It
// returns false, writing nothing, when the row is gone or no longer active:
// the flow's own workflow (or another repair) got there first.
func (s *Store) RepairFlow(ctx context.Context, f *flow.Flow, audit *AuditEntry) (bool, error) {
	if err := validFlow(f); err != nil {
		return false, fmt.Errorf("store: repair flow: %w", err)
	}
	if !f.Status.Terminal() {
		return false, fmt.Errorf("store: repair flow %s: status %q is not terminal", f.ID, f.Status)
	}
	applied := false
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		var old flowRow
		err := get(ctx, tx, &old, `SELECT `+flowColumns+` FROM flows WHERE id = ?`+s.forUpdate(), f.ID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if !flow.Status(old.Status).Active() {
			return nil
		}
		if err := s.updateFlow(ctx, tx, &old, f, FlowMeta{}); err != nil {
			return err
		}
		applied = true
		if audit != nil {
			return insertAudit(ctx, tx, audit, s.nowOr(f.UpdatedAt))
		}
		return nil
	})
	if err != nil {
		return false, s.redact(fmt.Errorf("store: repair flow %s: %w", f.ID, err))
	}
	return applied, nil
}

// FindAuditByActor returns the customer's audit rows written by actor with
// action, oldest first: how a retried reconcile step learns what its
// earlier attempt did.
func (s *Store) FindAuditByActor(ctx context.Context, customerID, actor, action string) ([]*AuditEntry, error) {
	var rows []auditRow
	err := selectRows(ctx, s.r, &rows, `SELECT id, at, actor, action, customer_id, flow_id, outcome, detail FROM audit_log
		WHERE customer_id = ? AND actor = ? AND action = ? ORDER BY id LIMIT ?`, customerID, actor, action, maxLimit)
	if err != nil {
		return nil, s.redact(fmt.Errorf("store: find audit by actor: %w", err))
	}
	out := make([]*AuditEntry, 0, len(rows))
	for _, r := range rows {
		at, err := parseTime(r.At)
		if err != nil {
			return nil, fmt.Errorf("store: find audit by actor: %w", err)
		}
		out = append(out, &AuditEntry{
			ID: r.ID, At: at, Actor: r.Actor, Action: r.Action,
			CustomerID: r.CustomerID, FlowID: r.FlowID, Outcome: r.Outcome, Detail: r.Detail,
		})
	}
	return out, nil
}

// insertAudit appends a inside tx (at when a.At is zero) and sets a.ID and
// a.At.
func insertAudit(ctx context.Context, tx *sqlx.Tx, a *AuditEntry, at time.Time) error {
	if a.Action == "" {
		return errors.New("audit entry without an action")
	}
	if !a.At.IsZero() {
		at = a.At.UTC()
	}
	var id int64
	err := queryRow(ctx, tx, `INSERT INTO audit_log (at, actor, action, customer_id, flow_id, outcome, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		formatTime(at), a.Actor, a.Action, a.CustomerID, a.FlowID, a.Outcome, a.Detail).Scan(&id)
	if err != nil {
		return fmt.Errorf("insert audit %s: %w", a.Action, err)
	}
	a.ID, a.At = id, at
	return nil
}
