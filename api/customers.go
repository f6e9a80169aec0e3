package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

const (
	maxNameLen  = 200
	maxRefIDLen = 200
)

// createCustomerBody is the body of POST /v1/customers.
type createCustomerBody struct {
	Name  string `json:"name"`
	RefID string `json:"refId"`
}

// createCustomer creates the customer at Planbok and records it.
//
// The Planbok idempotency key is derived from name and refId, so a client
// retrying the same create (after a timeout, say) gets the same Planbok
// customer instead of a second one. The answer is 201 either way.
func (s *Server) createCustomer(c *gin.Context) {
	ctx := c.Request.Context()
	body, aerr := readBody(c, maxRequestBody)
	if aerr != nil {
		s.renderError(c, aerr)
		return
	}
	var b createCustomerBody
	if aerr := decodeStrict(body, &b); aerr != nil {
		s.renderError(c, aerr)
		return
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{{"name", b.Name, maxNameLen}, {"refId", b.RefID, maxRefIDLen}} {
		if f.value == "" {
			s.renderError(c, newError(flow.CodeInvalidRequest, fmt.Sprintf("Field %q is required.", f.name)))
			return
		}
		if len(f.value) > f.max || !validText(f.value) {
			s.renderError(c, newError(flow.CodeInvalidRequest,
				fmt.Sprintf("Field %q must be at most %d bytes of text without control characters.", f.name, f.max)))
			return
		}
	}

	pc, err := s.planbok.CreateCustomer(ctx, planbok.CreateCustomerParams{
		Name: b.Name, RefID: b.RefID, IdempotencyKey: customerIdempotencyKey(b.Name, b.RefID),
	})
	if err != nil {
		ae := planbokError(flow.CallCreateCustomer, err)
		s.audit(c, "customer.create", "", "", string(ae.code), "")
		s.renderError(c, ae)
		return
	}

	// UpsertCustomer writes name and refId and keeps any stored security
	// status, so a replayed create loses no timestamps; the read after it
	// returns those timestamps.
	created := pc.CreatedAt
	if created.IsZero() {
		created = s.now()
	}
	if err := s.store.UpsertCustomer(ctx, &store.Customer{ID: pc.ID, Name: pc.Name, RefID: pc.RefID, CreatedAt: created.UTC()}); err != nil {
		s.renderError(c, &apiError{code: flow.CodeInternal, cause: fmt.Errorf("upsert customer: %w", err)})
		return
	}
	row, err := s.store.FindCustomerByID(ctx, pc.ID)
	if err != nil {
		s.renderError(c, &apiError{code: flow.CodeInternal, cause: fmt.Errorf("find customer: %w", err)})
		return
	}
	sec := securityFrom(pc, row.Security, s.now().UTC(), s.cfg.ExportHold)
	s.audit(c, "customer.create", pc.ID, "", "created", "")
	c.JSON(http.StatusCreated, flow.Customer{ID: pc.ID, Name: pc.Name, RefID: pc.RefID, Security: sec})
}

// customerIdempotencyKey is a UUID-shaped key (Planbok documents UUIDs)
// derived from the create request.
func customerIdempotencyKey(name, refID string) string {
	sum := sha256.Sum256([]byte("custodyflows/create-customer\x00" + refID + "\x00" + name))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50 // version 5 style: name-based
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// validText refuses control characters and invalid UTF-8.
func validText(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// securityFrom combines Planbok's booleans with the stored timestamps, and
// the export hold (computed at now, so it lapses without a write).
func securityFrom(pc *planbok.Customer, stored flow.Security, now time.Time, exportHold time.Duration) flow.Security {
	sec := stored
	sec.HasPIN, sec.HasRecovery, sec.LockedOut = pc.HasPIN, pc.HasRecovery, pc.Locked()
	sec.CanTransact = sec.Standing().CanTransact()
	sec.SyncedAt = &now
	return sec.WithExportHold(exportHold, now)
}

// getCustomer answers with Planbok's current record, the timestamps kept
// in the store and the active flow.
func (s *Server) getCustomer(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("customerId")
	if !validCustomerID(id) {
		s.renderError(c, newError(flow.CodeCustomerNotFound, "No customer has this id."))
		return
	}
	pc, err := s.planbok.GetCustomer(ctx, id)
	if err != nil {
		s.renderError(c, planbokError(flow.CallGetCustomer, err))
		return
	}
	var stored flow.Security
	row, err := s.store.FindCustomerByID(ctx, id)
	switch {
	case err == nil:
		stored = row.Security
	case isCode(err, flow.CodeCustomerNotFound):
		// Created elsewhere: no timestamps yet.
	default:
		s.renderError(c, &apiError{code: flow.CodeInternal, cause: fmt.Errorf("find customer: %w", err)})
		return
	}
	active, err := s.store.FindActiveFlow(ctx, id)
	switch {
	case err == nil:
		active = s.live(ctx, active)
		if !active.Status.Active() {
			active = nil
		}
	case isCode(err, flow.CodeFlowNotFound):
		active = nil
	default:
		s.renderError(c, &apiError{code: flow.CodeInternal, cause: fmt.Errorf("find active flow: %w", err)})
		return
	}
	c.JSON(http.StatusOK, flow.Customer{
		ID: pc.ID, Name: pc.Name, RefID: pc.RefID,
		Security:   securityFrom(pc, stored, s.now().UTC(), s.cfg.ExportHold),
		ActiveFlow: active,
	})
}

// flowList is the body of GET /v1/customers/{id}/flows.
type flowList struct {
	Flows []*flow.Flow `json:"flows"`
}

const (
	defaultFlowListLimit = 50
	maxFlowListLimit     = 100
)

// listFlows answers with a customer's flows, newest first. It reads only
// the store: an unknown (well-formed) customer id has no flows.
func (s *Server) listFlows(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("customerId")
	if !validCustomerID(id) {
		s.renderError(c, newError(flow.CodeCustomerNotFound, "No customer has this id."))
		return
	}
	filter := store.FlowFilter{CustomerID: id, Limit: defaultFlowListLimit}
	if v, ok := c.GetQuery("limit"); ok {
		n, err := parseLimit(v)
		if err != nil {
			s.renderError(c, newError(flow.CodeInvalidRequest, fmt.Sprintf("Query parameter \"limit\" must be an integer from 1 to %d.", maxFlowListLimit)))
			return
		}
		filter.Limit = n
	}
	if vs, ok := c.GetQueryArray("status"); ok {
		for _, v := range vs {
			st := flow.Status(v)
			if !slices.Contains(flow.Statuses, st) {
				s.renderError(c, newError(flow.CodeInvalidRequest, fmt.Sprintf("Unknown status %q.", clip(v, 40))))
				return
			}
			filter.Statuses = append(filter.Statuses, st)
		}
	}
	flows, err := s.store.FindFlows(ctx, filter)
	if err != nil {
		s.renderError(c, &apiError{code: flow.CodeInternal, cause: fmt.Errorf("find flows: %w", err)})
		return
	}
	if flows == nil {
		flows = []*flow.Flow{}
	}
	for i, f := range flows {
		flows[i] = s.live(ctx, f)
	}
	c.JSON(http.StatusOK, flowList{Flows: flows})
}

func parseLimit(v string) (int, error) {
	n := 0
	if v == "" || len(v) > 3 {
		return 0, errors.New("bad limit")
	}
	for _, ch := range v {
		if ch < '0' || ch > '9' {
			return 0, errors.New("bad limit")
		}
		n = n*10 + int(ch-'0')
	}
	if n < 1 || n > maxFlowListLimit {
		return 0, errors.New("bad limit")
	}
	return n, nil
}

// live returns the flow workflow's own view of f while f is active in the
// store (the store lags the workflow by an activity), and f itself when f
// has ended or the query fails.
func (s *Server) live(ctx context.Context, f *flow.Flow) *flow.Flow {
	if f == nil || !f.Status.Active() {
		return f
	}
	if q, err := s.queryFlow(ctx, f.ID); err == nil && q.ID == f.ID {
		return q
	}
	return f
}

const queryTimeout = 3 * time.Second

func (s *Server) queryFlow(ctx context.Context, id string) (*flow.Flow, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	v, err := s.temporal.QueryWorkflow(ctx, id, "", flow.QueryFlow)
	if err != nil {
		return nil, err
	}
	var f flow.Flow
	if err := v.Get(&f); err != nil {
		return nil, err
	}
	return &f, nil
}
