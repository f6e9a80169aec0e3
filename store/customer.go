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

// Customer is a Planbok customer as the store keeps it. ID is Planbok's
// customer id.
type Customer struct {
	ID       string
	Name     string
	RefID    string
	Security flow.Security
	// CreatedAt is when Planbok created the customer when the caller knew
	// it, else when this row was created. UpdatedAt is the row's last write.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// customerRow is a customers row as scanned.
type customerRow struct {
	ID             string         `db:"id"`
	Name           string         `db:"name"`
	RefID          string         `db:"ref_id"`
	HasPIN         bool           `db:"has_pin"`
	HasRecovery    bool           `db:"has_recovery"`
	LockedOut      bool           `db:"locked_out"`
	PINSetAt       sql.NullString `db:"pin_set_at"`
	PINUpdatedAt   sql.NullString `db:"pin_updated_at"`
	RecoverySetAt  sql.NullString `db:"recovery_set_at"`
	LastPINResetAt sql.NullString `db:"last_pin_reset_at"`
	LastExportAt   sql.NullString `db:"last_export_at"`
	SyncedAt       sql.NullString `db:"synced_at"`
	LockedOutBy    string         `db:"locked_out_by"`
	CreatedAt      string         `db:"created_at"`
	UpdatedAt      string         `db:"updated_at"`
}

const customerColumns = `id, name, ref_id, has_pin, has_recovery, locked_out, pin_set_at, pin_updated_at,
	recovery_set_at, last_pin_reset_at, last_export_at, synced_at, locked_out_by, created_at, updated_at`

func (r *customerRow) security() (flow.Security, error) {
	sec := flow.Security{HasPIN: r.HasPIN, HasRecovery: r.HasRecovery, LockedOut: r.LockedOut}
	for _, f := range []struct {
		dst **time.Time
		src sql.NullString
	}{
		{&sec.PINSetAt, r.PINSetAt},
		{&sec.PINUpdatedAt, r.PINUpdatedAt},
		{&sec.RecoverySetAt, r.RecoverySetAt},
		{&sec.LastPINResetAt, r.LastPINResetAt},
		{&sec.LastExportAt, r.LastExportAt},
		{&sec.SyncedAt, r.SyncedAt},
	} {
		t, err := parseTimePtr(f.src)
		if err != nil {
			return flow.Security{}, err
		}
		*f.dst = t
	}
	sec.CanTransact = sec.Standing().CanTransact()
	return sec, nil
}

func (r *customerRow) customer() (*Customer, error) {
	sec, err := r.security()
	if err != nil {
		return nil, err
	}
	c := &Customer{ID: r.ID, Name: r.Name, RefID: r.RefID, Security: sec}
	if c.CreatedAt, err = parseTime(r.CreatedAt); err != nil {
		return nil, err
	}
	if c.UpdatedAt, err = parseTime(r.UpdatedAt); err != nil {
		return nil, err
	}
	return c, nil
}

func customerNotFound(id string) error {
	return flow.Errorf(flow.CodeCustomerNotFound, "Customer %q was not found.", id)
}

// UpsertCustomer inserts c or updates its name and refId, keeping the
// stored security status. An empty Name or RefID leaves the stored value
// unchanged, so a partial caller never erases what another wrote. On
// return c.CreatedAt and c.UpdatedAt hold the stored values.
func (s *Store) UpsertCustomer(ctx context.Context, c *Customer) error {
	if c.ID == "" {
		return errors.New("store: upsert customer: empty id")
	}
	now := s.nowOr(time.Time{})
	var created, updated string
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		return queryRow(ctx, tx, `
			INSERT INTO customers (id, name, ref_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE customers.name END,
				ref_id = CASE WHEN excluded.ref_id <> '' THEN excluded.ref_id ELSE customers.ref_id END,
				updated_at = excluded.updated_at
			RETURNING created_at, updated_at`,
			c.ID, c.Name, c.RefID, formatTime(s.nowOr(c.CreatedAt)), formatTime(now),
		).Scan(&created, &updated)
	})
	if err != nil {
		return s.redact(fmt.Errorf("store: upsert customer %s: %w", c.ID, err))
	}
	if c.CreatedAt, err = parseTime(created); err != nil {
		return fmt.Errorf("store: upsert customer %s: %w", c.ID, err)
	}
	if c.UpdatedAt, err = parseTime(updated); err != nil {
		return fmt.Errorf("store: upsert customer %s: %w", c.ID, err)
	}
	return nil
}

// EnsureCustomer inserts a bare row for id if none exists. Flows and syncs
// may concern customers created at Planbok by someone else.
func (s *Store) EnsureCustomer(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("store: ensure customer: empty id")
	}
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error { return s.ensureCustomer(ctx, tx, id) })
	if err != nil {
		return s.redact(fmt.Errorf("store: ensure customer %s: %w", id, err))
	}
	return nil
}

func (s *Store) ensureCustomer(ctx context.Context, tx *sqlx.Tx, id string) error {
	now := formatTime(s.now())
	_, err := exec(ctx, tx, `INSERT INTO customers (id, created_at, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (id) DO NOTHING`, id, now, now)
	return err
}

// FindCustomerByID returns the customer with its security status
// (CanTransact computed), or a CodeCustomerNotFound error.
func (s *Store) FindCustomerByID(ctx context.Context, id string) (*Customer, error) {
	var row customerRow
	err := get(ctx, s.r, &row, `SELECT `+customerColumns+` FROM customers WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, customerNotFound(id)
	}
	if err != nil {
		return nil, s.redact(fmt.Errorf("store: find customer %s: %w", id, err))
	}
	c, err := row.customer()
	if err != nil {
		return nil, fmt.Errorf("store: find customer %s: %w", id, err)
	}
	return c, nil
}

// SecurityUpdate is one observation of a customer's security status, read
// from Planbok at SyncedAt (the current time when zero). A nil timestamp
// means "this sync says nothing about it", never "clear it".
type SecurityUpdate struct {
	HasPIN         bool
	HasRecovery    bool
	LockedOut      bool
	SyncedAt       time.Time
	PINSetAt       *time.Time
	PINUpdatedAt   *time.Time
	RecoverySetAt  *time.Time
	LastPINResetAt *time.Time
	LastExportAt   *time.Time
	// By names the sync ("flow:<id>", "webhook:<id>"), the same on every
	// retry of it, so that a retry learns it was the one that locked the
	// customer out. "" is an anonymous sync, told so only by the write
	// that makes the change.
	By string
}

// SecurityResult is what UpdateSecurity leaves stored.
type SecurityResult struct {
	// Security is the merged status, CanTransact computed.
	Security flow.Security
	// LockedOutNow reports that the update's sync is the one that locked
	// the customer out: this update moved locked_out from false to true,
	// or the customer is still locked out by an earlier update with the
	// same non-empty By (a retry of that sync).
	LockedOutNow bool
}

// UpdateSecurity merges u into the customer's stored security status,
// creating the customer row if missing, and returns the result.
//
// Syncs can finish out of order (two activities reading Planbok at nearly
// the same time), so the booleans and syncedAt are replaced only when
// u.SyncedAt is not older than the stored syncedAt. Each non-nil timestamp
// replaces the stored one only when later, so a replayed or late sync never
// moves "last PIN reset" backwards; nil timestamps leave stored ones alone.
//
// Which sync locked the customer out is decided here, with the row locked,
// and u.By recorded with the lockout: the callers tell the app once, from
// the sync that gets LockedOutNow, and that sync may run again (a retried
// workflow task) after its write. An older sync that does not apply its
// flags never makes the change, so never claims it; an unlock forgets who
// locked.
func (s *Store) UpdateSecurity(ctx context.Context, customerID string, u SecurityUpdate) (SecurityResult, error) {
	if customerID == "" {
		return SecurityResult{}, errors.New("store: update security: empty customer id")
	}
	syncedAt := s.nowOr(u.SyncedAt)
	var res SecurityResult
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.ensureCustomer(ctx, tx, customerID); err != nil {
			return err
		}
		var row customerRow
		if err := get(ctx, tx, &row, `SELECT `+customerColumns+` FROM customers WHERE id = ?`+s.forUpdate(), customerID); err != nil {
			return err
		}
		cur, err := row.security()
		if err != nil {
			return err
		}
		wasLocked, by := cur.LockedOut, row.LockedOutBy
		if cur.SyncedAt == nil || !syncedAt.Before(*cur.SyncedAt) {
			cur.HasPIN, cur.HasRecovery, cur.LockedOut = u.HasPIN, u.HasRecovery, u.LockedOut
			cur.SyncedAt = &syncedAt
		}
		switch {
		case !cur.LockedOut:
			by = ""
		case !wasLocked:
			by = u.By
		}
		cur.PINSetAt = later(cur.PINSetAt, u.PINSetAt)
		cur.PINUpdatedAt = later(cur.PINUpdatedAt, u.PINUpdatedAt)
		cur.RecoverySetAt = later(cur.RecoverySetAt, u.RecoverySetAt)
		cur.LastPINResetAt = later(cur.LastPINResetAt, u.LastPINResetAt)
		cur.LastExportAt = later(cur.LastExportAt, u.LastExportAt)
		cur.CanTransact = cur.Standing().CanTransact()
		_, err = exec(ctx, tx, `UPDATE customers SET
				has_pin = ?, has_recovery = ?, locked_out = ?, locked_out_by = ?,
				pin_set_at = ?, pin_updated_at = ?, recovery_set_at = ?, last_pin_reset_at = ?, last_export_at = ?,
				synced_at = ?, updated_at = ?
			WHERE id = ?`,
			cur.HasPIN, cur.HasRecovery, cur.LockedOut, by,
			formatTimePtr(cur.PINSetAt), formatTimePtr(cur.PINUpdatedAt), formatTimePtr(cur.RecoverySetAt),
			formatTimePtr(cur.LastPINResetAt), formatTimePtr(cur.LastExportAt),
			formatTimePtr(cur.SyncedAt), formatTime(s.now()), customerID)
		res.Security = cur
		res.LockedOutNow = cur.LockedOut && (!wasLocked || (u.By != "" && by == u.By))
		return err
	})
	if err != nil {
		return SecurityResult{}, s.redact(fmt.Errorf("store: update security of customer %s: %w", customerID, err))
	}
	return res, nil
}

// later returns the later of the stored and the given time (as UTC); a nil
// given time keeps the stored one.
func later(stored, given *time.Time) *time.Time {
	if given == nil {
		return stored
	}
	if stored != nil && !given.After(*stored) {
		return stored
	}
	t := given.UTC()
	return &t
}
