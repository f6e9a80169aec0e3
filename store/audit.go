package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// AuditEntry is one audit-log row: who (Actor: an API key id, "worker",
// "planbok"…) did what (Action) to which customer and flow, with what
// Outcome. Detail is a short free-text note; it must never hold secrets.
type AuditEntry struct {
	ID         int64
	At         time.Time
	Actor      string
	Action     string
	CustomerID string
	FlowID     string
	Outcome    string
	Detail     string
	// DedupeKey, when set, makes the row written once: a second
	// RecordAudit with the same key writes nothing and succeeds.
	DedupeKey string
}

// AuditFilter selects audit rows for FindAudit. Empty fields match
// everything; Limit 0 means 100 (and more than 1000 means 1000).
type AuditFilter struct {
	CustomerID string
	FlowID     string
	Limit      int
}

type auditRow struct {
	ID         int64  `db:"id"`
	At         string `db:"at"`
	Actor      string `db:"actor"`
	Action     string `db:"action"`
	CustomerID string `db:"customer_id"`
	FlowID     string `db:"flow_id"`
	Outcome    string `db:"outcome"`
	Detail     string `db:"detail"`
}

// RecordAudit appends a to the audit log and sets a.ID (and a.At to now
// when zero). Action is required. The log is append-only: rows are never
// updated (a trigger refuses it on both dialects); only Prune deletes them,
// by age.
func (s *Store) RecordAudit(ctx context.Context, a *AuditEntry) error {
	if a.Action == "" {
		return errors.New("store: record audit: empty action")
	}
	at := s.nowOr(a.At)
	var id int64
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		// ON CONFLICT DO NOTHING: a repeated key is an expected outcome,
		// and RETURNING then gives no row.
		err := queryRow(ctx, tx, `INSERT INTO audit_log (at, actor, action, customer_id, flow_id, outcome, detail, dedupe_key)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (dedupe_key) WHERE dedupe_key <> '' DO NOTHING
			RETURNING id`,
			formatTime(at), a.Actor, a.Action, a.CustomerID, a.FlowID, a.Outcome, a.Detail, a.DedupeKey).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return s.redact(fmt.Errorf("store: record audit %s: %w", a.Action, err))
	}
	a.ID, a.At = id, at
	return nil
}

// FindAudit returns the audit rows matching filter, newest first (at, then
// id, descending).
func (s *Store) FindAudit(ctx context.Context, filter AuditFilter) ([]*AuditEntry, error) {
	q := `SELECT id, at, actor, action, customer_id, flow_id, outcome, detail FROM audit_log WHERE 1 = 1`
	var args []any
	if filter.CustomerID != "" {
		q += ` AND customer_id = ?`
		args = append(args, filter.CustomerID)
	}
	if filter.FlowID != "" {
		q += ` AND flow_id = ?`
		args = append(args, filter.FlowID)
	}
	q += ` ORDER BY at DESC, id DESC LIMIT ?`
	args = append(args, limit(filter.Limit))
	var rows []auditRow
	if err := selectRows(ctx, s.r, &rows, q, args...); err != nil {
		return nil, s.redact(fmt.Errorf("store: find audit: %w", err))
	}
	out := make([]*AuditEntry, 0, len(rows))
	for _, r := range rows {
		at, err := parseTime(r.At)
		if err != nil {
			return nil, fmt.Errorf("store: find audit: %w", err)
		}
		out = append(out, &AuditEntry{
			ID: r.ID, At: at, Actor: r.Actor, Action: r.Action,
			CustomerID: r.CustomerID, FlowID: r.FlowID, Outcome: r.Outcome, Detail: r.Detail,
		})
	}
	return out, nil
}
