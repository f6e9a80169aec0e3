package sandbox

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/custodyflows/custodyflows/planbok"
)

// CustodyType is the custodyType of every sandbox customer. Planbok's
// values are not documented; "customer" follows the tester's custody
// modes ("organization" | "customer").
const CustodyType = "customer"

// Page sizes of GET /v2/customers.
const (
	defaultPageLimit = 10
	maxPageLimit     = 100
)

// newID returns a 24-hex-character id, the shape of Planbok's ids
// (MongoDB ObjectIds).
func (s *Sandbox) newID() (string, error) {
	b := make([]byte, 12)
	if _, err := io.ReadFull(s.opts.Rand, b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newUUID returns a random UUID v4 string (webhook idempotency keys).
func (s *Sandbox) newUUID() (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(s.opts.Rand, b); err != nil {
		return "", fmt.Errorf("random uuid: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

type createCustomerRequest struct {
	Name  string `json:"name"`
	RefID string `json:"refId"`
}

func (s *Sandbox) createCustomer(w http.ResponseWriter, r *http.Request, body []byte) {
	var req createCustomerRequest
	if err := decodeBytes(body, &req, false); err != nil {
		s.writeErr(w, r, err)
		return
	}
	req.Name, req.RefID = strings.TrimSpace(req.Name), strings.TrimSpace(req.RefID)
	switch {
	case req.Name == "":
		s.writeErr(w, r, errf(http.StatusBadRequest, "name is required"))
		return
	case len(req.Name) > 200 || len(req.RefID) > 200:
		s.writeErr(w, r, errf(http.StatusBadRequest, "name and refId must be at most 200 characters"))
		return
	}
	id, err := s.newID()
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	now := s.now()
	c := &customer{ID: id, Name: req.Name, RefID: req.RefID, Status: planbok.CustomerActive,
		CreatedAt: toNanos(now), UpdatedAt: toNanos(now)}
	err = s.db.inTx(func(tx *sqlx.Tx) error {
		if err := insertCustomer(tx, c); err != nil {
			return err
		}
		return s.enqueue(tx, planbok.EventCustomerCreated, planbok.WebhookData{CustomerID: id, Status: planbok.CustomerActive})
	})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.notifySender()
	s.log.Info("sandbox: customer created", "customerId", id)
	writeData(w, http.StatusCreated, "Customer created successfully", c.wire())
}

func (s *Sandbox) getCustomer(w http.ResponseWriter, r *http.Request) {
	c, err := findCustomer(s.db.x, r.PathValue("id"))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if c == nil {
		writeError(w, http.StatusNotFound, "Customer not found")
		return
	}
	writeData(w, http.StatusOK, "Customer retrieved successfully", c.wire())
}

func (s *Sandbox) listCustomers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, err := queryInt(q.Get("page"), 1)
	if err != nil || page < 1 {
		writeError(w, http.StatusBadRequest, "page must be a positive integer")
		return
	}
	limit, err := queryInt(q.Get("limit"), defaultPageLimit)
	if err != nil || limit < 1 || limit > maxPageLimit {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", maxPageLimit))
		return
	}
	order := q.Get("order")
	if order != "" && order != "asc" && order != "desc" {
		writeError(w, http.StatusBadRequest, `order must be "asc" or "desc"`)
		return
	}
	cs, total, err := s.db.listCustomers((page-1)*limit, limit, order == "asc")
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	list := planbok.CustomerList{Customers: make([]planbok.Customer, 0, len(cs)), Page: page, Limit: limit, Total: total}
	for i := range cs {
		list.Customers = append(list.Customers, cs[i].wire())
	}
	writeData(w, http.StatusOK, "List of customers", list)
}

func queryInt(v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	return strconv.Atoi(v)
}

func (s *Sandbox) listWallets(w http.ResponseWriter, r *http.Request) {
	var ids []string
	for _, v := range r.URL.Query()["customerIds"] {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) > 100 {
		writeError(w, http.StatusBadRequest, "customerIds may list at most 100 customers")
		return
	}
	ws, err := walletsOf(s.db.x, ids...)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]planbok.Wallet, 0, len(ws))
	for i := range ws {
		out = append(out, ws[i].wire())
	}
	writeData(w, http.StatusOK, "Wallets retrieved successfully", out)
}

func (w *wallet) wire() planbok.Wallet {
	return planbok.Wallet{
		ID:             w.ID,
		CustomerID:     w.CustomerID,
		Blockchain:     w.Blockchain,
		Address:        w.Address,
		DerivationPath: w.DerivationPath,
		KeyType:        w.KeyType,
		CreatedAt:      fromNanos(w.CreatedAt),
	}
}
