package demo

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/custodyflows/custodyflows/notify"
)

// maxEventBody bounds one event; custodyflows' events are a few hundred
// bytes.
const maxEventBody = 64 << 10

// Event is one event the app received, as the page shows it.
type Event struct {
	// ID is the Standard Webhooks message id (the same on a retry).
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Timestamp  time.Time       `json:"timestamp"`
	ReceivedAt time.Time       `json:"receivedAt"`
	CustomerID string          `json:"customerId"`
	FlowID     string          `json:"flowId,omitempty"`
	Kind       string          `json:"kind,omitempty"`
	Status     string          `json:"status,omitempty"`
	Security   json.RawMessage `json:"security,omitempty"`
	// Deliveries counts how often this id came (delivery is at least
	// once).
	Deliveries int `json:"deliveries"`
}

// Receiver is the app's notify endpoint for the demo: it checks each
// event's Standard Webhooks signature, as an app must, and keeps the last
// events in memory.
type Receiver struct {
	secret []byte
	max    int
	now    func() time.Time

	mu     sync.Mutex
	events []Event // oldest first
}

// NewReceiver returns a receiver that verifies with secret ("whsec_…")
// and keeps the last max events (DefaultMaxEvents when max <= 0).
func NewReceiver(secret string, max int, now func() time.Time) (*Receiver, error) {
	key, err := notify.ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	if max <= 0 {
		max = DefaultMaxEvents
	}
	if now == nil {
		now = time.Now
	}
	return &Receiver{secret: key, max: max, now: now}, nil
}

// ServeHTTP takes one event: 204 once kept, 401 for a bad signature (the
// sender retries, and a forged event is never shown), 400 for a body that
// is not an event.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEventBody+1))
	if err != nil || len(body) > maxEventBody {
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", "The event is too large.")
		return
	}
	now := rc.now()
	if err := notify.Verify(rc.secret, r.Header, body, now, 0); err != nil {
		writeError(w, http.StatusUnauthorized, "invalid_signature", "The event's signature does not verify.")
		return
	}
	var in struct {
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      struct {
			CustomerID string          `json:"customerId"`
			FlowID     string          `json:"flowId"`
			Kind       string          `json:"kind"`
			Status     string          `json:"status"`
			Security   json.RawMessage `json:"security"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Type == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "The body is not an event.")
		return
	}
	ev := Event{
		ID: r.Header.Get(notify.HeaderID), Type: in.Type, Timestamp: in.Timestamp, ReceivedAt: now.UTC(),
		CustomerID: in.Data.CustomerID, FlowID: in.Data.FlowID, Kind: in.Data.Kind, Status: in.Data.Status,
		Security: in.Data.Security, Deliveries: 1,
	}
	rc.keep(ev)
	w.WriteHeader(http.StatusNoContent)
}

// keep adds ev, or counts a repeated delivery of the same id.
func (rc *Receiver) keep(ev Event) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := range rc.events {
		if rc.events[i].ID == ev.ID {
			rc.events[i].Deliveries++
			return
		}
	}
	rc.events = append(rc.events, ev)
	if over := len(rc.events) - rc.max; over > 0 {
		rc.events = slices.Delete(rc.events, 0, over)
	}
}

// ForCustomer returns the kept events of one customer, newest first.
func (rc *Receiver) ForCustomer(customerID string) []Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := []Event{}
	for i := len(rc.events) - 1; i >= 0; i-- {
		if rc.events[i].CustomerID == customerID {
			out = append(out, rc.events[i])
		}
	}
	return out
}

// Len returns how many events are kept.
func (rc *Receiver) Len() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.events)
}
