package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jmoiron/sqlx"

	"github.com/custodyflows/custodyflows/flow"
)

// FlowMeta is what the store keeps beside a flow for idempotent starts:
// the client's idempotency key and the hash of the request it came with.
type FlowMeta struct {
	IdempotencyKey string
	RequestHash    string
}

// FlowFilter selects flows for FindFlows. Empty fields match everything;
// Limit 0 means 100 (and more than 1000 means 1000).
type FlowFilter struct {
	CustomerID string
	Statuses   []flow.Status
	Limit      int
}

// flowRow is a flows row as scanned.
type flowRow struct {
	ID             string         `db:"id"`
	CustomerID     string         `db:"customer_id"`
	Kind           string         `db:"kind"`
	Status         string         `db:"status"`
	ChallengeID    string         `db:"challenge_id"`
	GatewayURL     string         `db:"gateway_url"`
	RedirectURL    string         `db:"redirect_url"`
	Blockchains    string         `db:"blockchains"`
	ExpiresAt      sql.NullString `db:"expires_at"`
	IdempotencyKey string         `db:"idempotency_key"`
	RequestHash    string         `db:"request_hash"`
	ErrorCode      string         `db:"error_code"`
	ErrorMessage   string         `db:"error_message"`
	CreatedAt      string         `db:"created_at"`
	UpdatedAt      string         `db:"updated_at"`
	CompletedAt    sql.NullString `db:"completed_at"`
}

const flowColumns = `id, customer_id, kind, status, challenge_id, gateway_url, redirect_url, blockchains,
	expires_at, idempotency_key, request_hash, error_code, error_message, created_at, updated_at, completed_at`

func (r *flowRow) flow() (*flow.Flow, error) {
	f := &flow.Flow{
		ID:          r.ID,
		CustomerID:  r.CustomerID,
		Kind:        flow.Kind(r.Kind),
		Status:      flow.Status(r.Status),
		ChallengeID: r.ChallengeID,
		GatewayURL:  r.GatewayURL,
		RedirectURL: r.RedirectURL,
	}
	if err := json.Unmarshal([]byte(r.Blockchains), &f.Blockchains); err != nil {
		return nil, fmt.Errorf("flow %s: decode blockchains: %w", r.ID, err)
	}
	if len(f.Blockchains) == 0 {
		f.Blockchains = nil // "[]" and nil are the same flow; keep one form
	}
	var err error
	if f.ExpiresAt, err = parseTimePtr(r.ExpiresAt); err != nil {
		return nil, err
	}
	if f.CompletedAt, err = parseTimePtr(r.CompletedAt); err != nil {
		return nil, err
	}
	if f.CreatedAt, err = parseTime(r.CreatedAt); err != nil {
		return nil, err
	}
	if f.UpdatedAt, err = parseTime(r.UpdatedAt); err != nil {
		return nil, err
	}
	if r.ErrorCode != "" {
		f.Error = &flow.Error{Code: flow.Code(r.ErrorCode), Message: r.ErrorMessage}
	}
	return f, nil
}

// The lookups by challenge id (once per webhook) and by idempotency key
// (once per start with a key) repeat their partial unique index's
// condition (the column is not empty): a bound parameter alone does not
// prove it, so neither database would use the index and each lookup would
// scan every flow. TestQueryPlans_UseIndexes keeps it so.
const (
	whereChallengeID    = `challenge_id = ? AND challenge_id <> ''`
	whereIdempotencyKey = `customer_id = ? AND idempotency_key = ? AND idempotency_key <> ''
		AND NOT (status = 'failed' AND challenge_id = '')`
)

func flowNotFound(format string, args ...any) error {
	return flow.Errorf(flow.CodeFlowNotFound, format, args...)
}

// UpsertFlow records f in the flow index, creating its customer row if
// missing. meta's fields are stored when the row has none yet.
//
// Flow rows are written by retried activities that may run late or twice,
// so an update never loses information:
//   - the status only moves forward (flow.Status.CanMoveTo, or the same
//     status); a write whose status would move backwards is stale and is
//     ignored without error;
//   - fields already set (challenge id, gateway URL, redirect URL,
//     blockchains, expiry, error, completion time, idempotency key) are
//     never cleared by an empty value; createdAt never changes and updatedAt
//     never moves back;
//   - a terminal flow always has a completedAt (its updatedAt when f has
//     none).
//
// Idempotency keys are scoped per customer, as in the customer workflow.
// A flow that failed before its challenge existed gives its key back: the
// same key again starts afresh (rows written before this rule are taken
// over by the next flow that claims their key).
//
// A flow id already stored with another customer or kind is an error, and
// an idempotency key already used by another flow of the same customer is
// a CodeIdempotencyKeyReused error (keys are scoped per customer: two
// customers may use the same key).
func (s *Store) UpsertFlow(ctx context.Context, f *flow.Flow, meta FlowMeta) error {
	if err := validFlow(f); err != nil {
		return fmt.Errorf("store: upsert flow: %w", err)
	}
	err := s.writeTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.ensureCustomer(ctx, tx, f.CustomerID); err != nil {
			return err
		}
		// Twice at most: when the row is missing but another writer inserts
		// it between our read and our insert (PostgreSQL, where writers run
		// side by side), the insert does nothing and the second round
		// updates the row that writer made.
		for range 2 {
			var old flowRow
			err := get(ctx, tx, &old, `SELECT `+flowColumns+` FROM flows WHERE id = ?`+s.forUpdate(), f.ID)
			if err == nil {
				return s.updateFlow(ctx, tx, &old, f, meta)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			inserted, err := s.insertFlow(ctx, tx, f, meta)
			if err != nil || inserted {
				return err
			}
		}
		return errors.New("flow row neither found nor inserted")
	})
	if err != nil {
		if isUniqueViolation(err, "flows.idempotency_key", "flows_customer_idempotency_key") {
			return flow.Errorf(flow.CodeIdempotencyKeyReused, "The idempotency key was already used for another flow of this customer.")
		}
		return s.redact(fmt.Errorf("store: upsert flow %s: %w", f.ID, err))
	}
	return nil
}

func validFlow(f *flow.Flow) error {
	switch {
	case f == nil:
		return errors.New("nil flow")
	case f.ID == "":
		return errors.New("empty flow id")
	case f.CustomerID == "":
		return fmt.Errorf("flow %s: empty customer id", f.ID)
	case !f.Kind.Valid():
		return fmt.Errorf("flow %s: unknown kind %q", f.ID, f.Kind)
	case !slices.Contains(flow.Statuses, f.Status):
		return fmt.Errorf("flow %s: unknown status %q", f.ID, f.Status)
	}
	return nil
}

// insertFlow inserts f unless a row with its id exists, and reports
// whether it did.
func (s *Store) insertFlow(ctx context.Context, tx *sqlx.Tx, f *flow.Flow, meta FlowMeta) (bool, error) {
	created := s.nowOr(f.CreatedAt)
	updated := s.nowOr(f.UpdatedAt)
	if updated.Before(created) {
		updated = created
	}
	chains, err := encodeBlockchains(f.Blockchains)
	if err != nil {
		return false, err
	}
	completed := f.CompletedAt
	if completed == nil && f.Status.Terminal() {
		completed = &updated
	}
	key := flowKey(f, meta.IdempotencyKey)
	if err := releaseKey(ctx, tx, f, key); err != nil {
		return false, err
	}
	code, msg := flowErrorColumns(f.Error)
	res, err := exec(ctx, tx, `INSERT INTO flows (`+flowColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`,
		f.ID, f.CustomerID, string(f.Kind), string(f.Status), f.ChallengeID, f.GatewayURL, f.RedirectURL, chains,
		formatTimePtr(f.ExpiresAt), key, meta.RequestHash, code, msg,
		formatTime(created), formatTime(updated), formatTimePtr(completed))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// flowKey is the idempotency key row f holds: none once it failed without
// a challenge.
func flowKey(f *flow.Flow, key string) string {
	if f.Status == flow.StatusFailed && f.ChallengeID == "" {
		return ""
	}
	return key
}

// releaseKey takes key for f from a flow of the customer that failed
// before its challenge existed but still holds it (written before such
// flows gave their keys back). A flow still starting keeps its key: the
// next flow with it is refused until that one's failure is recorded.
func releaseKey(ctx context.Context, tx *sqlx.Tx, f *flow.Flow, key string) error {
	if key == "" {
		return nil
	}
	_, err := exec(ctx, tx, `UPDATE flows SET idempotency_key = ''
		WHERE customer_id = ? AND idempotency_key = ? AND idempotency_key <> '' AND id <> ?
			AND status = 'failed' AND challenge_id = ''`,
		f.CustomerID, key, f.ID)
	return err
}

func (s *Store) updateFlow(ctx context.Context, tx *sqlx.Tx, old *flowRow, f *flow.Flow, meta FlowMeta) error {
	if old.CustomerID != f.CustomerID || old.Kind != string(f.Kind) {
		return fmt.Errorf("flow %s is stored for customer %s, kind %s; got customer %s, kind %s",
			f.ID, old.CustomerID, old.Kind, f.CustomerID, f.Kind)
	}
	cur, err := old.flow()
	if err != nil {
		return err
	}
	if cur.Status != f.Status && !cur.Status.CanMoveTo(f.Status) {
		return nil // stale: a later write already moved the flow on
	}
	next := *cur
	next.Status = f.Status
	next.ChallengeID = orString(f.ChallengeID, cur.ChallengeID)
	next.GatewayURL = orString(f.GatewayURL, cur.GatewayURL)
	next.RedirectURL = orString(f.RedirectURL, cur.RedirectURL)
	if len(f.Blockchains) > 0 {
		next.Blockchains = f.Blockchains
	}
	if f.ExpiresAt != nil {
		next.ExpiresAt = f.ExpiresAt
	}
	if f.Error != nil {
		next.Error = f.Error
	}
	if f.CompletedAt != nil {
		next.CompletedAt = f.CompletedAt
	}
	if u := s.nowOr(f.UpdatedAt); u.After(cur.UpdatedAt) {
		next.UpdatedAt = u
	}
	if next.CompletedAt == nil && next.Status.Terminal() {
		next.CompletedAt = &next.UpdatedAt
	}
	chains, err := encodeBlockchains(next.Blockchains)
	if err != nil {
		return err
	}
	key := flowKey(&next, orString(old.IdempotencyKey, meta.IdempotencyKey))
	if key != old.IdempotencyKey {
		if err := releaseKey(ctx, tx, &next, key); err != nil {
			return err
		}
	}
	code, msg := flowErrorColumns(next.Error)
	_, err = exec(ctx, tx, `UPDATE flows SET
			status = ?, challenge_id = ?, gateway_url = ?, redirect_url = ?, blockchains = ?, expires_at = ?,
			idempotency_key = ?, request_hash = ?, error_code = ?, error_message = ?, updated_at = ?, completed_at = ?
		WHERE id = ?`,
		string(next.Status), next.ChallengeID, next.GatewayURL, next.RedirectURL, chains, formatTimePtr(next.ExpiresAt),
		key, orString(old.RequestHash, meta.RequestHash),
		code, msg, formatTime(next.UpdatedAt), formatTimePtr(next.CompletedAt), f.ID)
	return err
}

// orString returns a unless it is empty, else b.
func orString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func encodeBlockchains(chains []string) (string, error) {
	if len(chains) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(chains)
	if err != nil {
		return "", fmt.Errorf("encode blockchains: %w", err)
	}
	return string(b), nil
}

func flowErrorColumns(e *flow.Error) (code, message string) {
	if e == nil {
		return "", ""
	}
	return string(e.Code), e.Message
}

// FindFlowByID returns the flow, or a CodeFlowNotFound error.
func (s *Store) FindFlowByID(ctx context.Context, id string) (*flow.Flow, error) {
	f, _, err := s.findFlow(ctx, `id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, flowNotFound("Flow %q was not found.", id)
	}
	if err != nil {
		return nil, s.redact(fmt.Errorf("store: find flow %s: %w", id, err))
	}
	return f, nil
}

// FindFlowByChallengeID returns the flow that owns Planbok challenge
// challengeID, or a CodeFlowNotFound error.
func (s *Store) FindFlowByChallengeID(ctx context.Context, challengeID string) (*flow.Flow, error) {
	if challengeID == "" {
		return nil, flowNotFound("No flow has an empty challenge id.")
	}
	f, _, err := s.findFlow(ctx, whereChallengeID, challengeID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, flowNotFound("No flow owns challenge %q.", challengeID)
	}
	if err != nil {
		return nil, s.redact(fmt.Errorf("store: find flow by challenge %s: %w", challengeID, err))
	}
	return f, nil
}

// FindFlowByIdempotencyKey returns the customer's flow first started with
// key and the metadata stored with it, or a CodeFlowNotFound error. Keys
// are scoped per customer: another customer's flow with the same key is
// not found; and a flow that failed before its challenge existed no longer
// holds its key.
func (s *Store) FindFlowByIdempotencyKey(ctx context.Context, customerID, key string) (*flow.Flow, FlowMeta, error) {
	if key == "" {
		return nil, FlowMeta{}, flowNotFound("No flow has an empty idempotency key.")
	}
	f, meta, err := s.findFlow(ctx, whereIdempotencyKey, customerID, key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, FlowMeta{}, flowNotFound("No flow of this customer was started with that idempotency key.")
	}
	if err != nil {
		// The key is the client's; keep it out of error text all the same.
		return nil, FlowMeta{}, s.redact(fmt.Errorf("store: find flow by idempotency key: %w", err))
	}
	return f, meta, nil
}

func (s *Store) findFlow(ctx context.Context, where string, args ...any) (*flow.Flow, FlowMeta, error) {
	var row flowRow
	if err := get(ctx, s.r, &row, `SELECT `+flowColumns+` FROM flows WHERE `+where, args...); err != nil {
		return nil, FlowMeta{}, err
	}
	f, err := row.flow()
	if err != nil {
		return nil, FlowMeta{}, err
	}
	return f, FlowMeta{IdempotencyKey: row.IdempotencyKey, RequestHash: row.RequestHash}, nil
}

// FindFlows returns the flows matching filter, newest first (createdAt,
// then id, descending). No match is an empty slice, not an error.
func (s *Store) FindFlows(ctx context.Context, filter FlowFilter) ([]*flow.Flow, error) {
	q := `SELECT ` + flowColumns + ` FROM flows WHERE 1 = 1`
	var args []any
	if filter.CustomerID != "" {
		q += ` AND customer_id = ?`
		args = append(args, filter.CustomerID)
	}
	if len(filter.Statuses) > 0 {
		statuses := make([]string, len(filter.Statuses))
		for i, st := range filter.Statuses {
			statuses[i] = string(st)
		}
		in, inArgs, err := sqlx.In(` AND status IN (?)`, statuses)
		if err != nil {
			return nil, fmt.Errorf("store: find flows: %w", err)
		}
		q += in
		args = append(args, inArgs...)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit(filter.Limit))
	var rows []flowRow
	if err := selectRows(ctx, s.r, &rows, q, args...); err != nil {
		return nil, s.redact(fmt.Errorf("store: find flows: %w", err))
	}
	flows := make([]*flow.Flow, 0, len(rows))
	for i := range rows {
		f, err := rows[i].flow()
		if err != nil {
			return nil, fmt.Errorf("store: find flows: %w", err)
		}
		flows = append(flows, f)
	}
	return flows, nil
}

// FindActiveFlow returns the customer's newest flow that is starting or
// awaiting the user, or a CodeFlowNotFound error when there is none.
func (s *Store) FindActiveFlow(ctx context.Context, customerID string) (*flow.Flow, error) {
	flows, err := s.FindFlows(ctx, FlowFilter{
		CustomerID: customerID,
		Statuses:   []flow.Status{flow.StatusStarting, flow.StatusAwaitingUser},
		Limit:      1,
	})
	if err != nil {
		return nil, err
	}
	if len(flows) == 0 {
		return nil, flowNotFound("Customer %q has no active flow.", customerID)
	}
	return flows[0], nil
}
