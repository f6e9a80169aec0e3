package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

// Webhook outcomes recorded in the inbox.
const (
	OutcomeReceived     = "received"
	OutcomeSignalled    = "signalled"     // a flow or customer workflow was signalled
	OutcomeFlowFinished = "flow_finished" // the flow of the challenge no longer runs
	OutcomeUnmatched    = "unmatched"     // a challenge no flow knows
	OutcomeIgnored      = "ignored"       // an event custodyflows does not act on
	OutcomeSignalFailed = "signal_failed" // Temporal (or the store) failed; the flow's polling covers it
)

const (
	maxWebhookField = 255
	signalTimeout   = 5 * time.Second
)

// webhookAck is the body of a 200 answer to Planbok.
type webhookAck struct {
	Received  bool `json:"received"`
	Duplicate bool `json:"duplicate"`
}

// webhookWire is the body of a Planbok webhook as received, before the
// shape checks.
type webhookWire struct {
	Event          *string         `json:"event"`
	Timestamp      json.RawMessage `json:"timestamp"`
	IdempotencyKey *string         `json:"idempotencyKey"`
	Data           json.RawMessage `json:"data"`
}

// webhook is Planbok's webhook intake (API.md §3): size cap, signature
// (before any parsing), shape, durable record with de-duplication, then a
// signal to the workflow the event concerns.
//
// Once an event is verified and recorded the answer is 200 whatever
// happens next: if Temporal cannot be signalled the outcome is
// signal_failed and the flow's own polling of Planbok finds the truth, so
// Planbok never retries an event custodyflows already holds.
func (s *Server) webhook(c *gin.Context) {
	body, aerr := readBody(c, maxWebhookBody)
	if aerr != nil {
		s.renderError(c, aerr)
		return
	}
	now := s.now()
	if err := planbok.VerifyWebhook(c.Request.Header, body, now, s.cfg.WebhookSecrets...); err != nil {
		s.logger.WarnContext(c.Request.Context(), "webhook refused", "request_id", requestID(c), "reason", err.Error())
		s.renderError(c, newError(flow.CodeInvalidSignature, "The webhook signature is missing, wrong or too old."))
		return
	}
	ev, aerr := parseWebhook(body)
	if aerr != nil {
		s.renderError(c, aerr)
		return
	}
	webhookID := c.GetHeader(planbok.HeaderWebhookID)
	key := ev.IdempotencyKey
	if key == "" {
		key = webhookID
	}
	if key == "" {
		s.renderError(c, newError(flow.CodeInvalidRequest, "The webhook has neither an idempotencyKey nor an X-Webhook-Id."))
		return
	}
	if len(key) > maxWebhookField || !printable(key) {
		s.renderError(c, newError(flow.CodeInvalidRequest, "The webhook's idempotencyKey or X-Webhook-Id is malformed."))
		return
	}
	if len(webhookID) > maxWebhookField || !printable(webhookID) {
		// The header is not signed and only a fallback key: an odd one is
		// not kept, and does not cost a verified event.
		webhookID = ""
	}

	// The record and the routing must not die with Planbok's connection.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), s.cfg.RequestTimeout)
	defer cancel()
	sum := sha256.Sum256(body)
	dup, err := s.store.RecordWebhook(ctx, &store.InboxEntry{
		IdempotencyKey: key,
		WebhookID:      webhookID,
		EventType:      ev.Event,
		CustomerID:     ev.Data.CustomerID,
		ChallengeID:    ev.Data.ChallengeID,
		BodySHA256:     hex.EncodeToString(sum[:]),
		ReceivedAt:     now.UTC(),
		Outcome:        OutcomeReceived,
	})
	if err != nil {
		// Not recorded: a 5xx makes Planbok send it again.
		s.renderError(c, &apiError{code: flow.CodeInternal, cause: fmt.Errorf("record webhook: %w", err)})
		return
	}
	if dup {
		c.JSON(http.StatusOK, webhookAck{Received: true, Duplicate: true})
		return
	}

	outcome := s.routeWebhook(ctx, c, ev, key, now.UTC())
	if err := s.store.SetWebhookOutcome(ctx, key, outcome, s.now().UTC()); err != nil {
		s.logger.WarnContext(ctx, "set webhook outcome", "request_id", requestID(c), "err", err.Error())
	}
	s.logger.InfoContext(ctx, "webhook", "request_id", requestID(c), "event", ev.Event, "outcome", outcome)
	c.JSON(http.StatusOK, webhookAck{Received: true, Duplicate: false})
}

// parseWebhook checks the shape of a verified body: an object with a
// non-empty string "event", an object "data" whose known fields are
// strings, and, when present, an RFC 3339 "timestamp" and a string
// "idempotencyKey". Unknown fields are allowed (Planbok may add some).
func parseWebhook(body []byte) (planbok.WebhookEvent, *apiError) {
	var ev planbok.WebhookEvent
	bad := func(why string) *apiError { return newError(flow.CodeInvalidRequest, "The webhook body "+why+".") }
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ev, bad("must be a JSON object")
	}
	var w webhookWire
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return ev, bad("is not the documented shape")
	}
	if _, err := dec.Token(); err == nil {
		return ev, bad("must hold a single JSON object")
	}
	if w.Event == nil || *w.Event == "" || len(*w.Event) > maxWebhookField || !printable(*w.Event) {
		return ev, bad(`needs a non-empty string "event"`)
	}
	ev.Event = *w.Event
	if w.IdempotencyKey != nil {
		ev.IdempotencyKey = *w.IdempotencyKey
	}
	if len(w.Timestamp) > 0 && string(w.Timestamp) != "null" {
		if err := json.Unmarshal(w.Timestamp, &ev.Timestamp); err != nil {
			return ev, bad(`has a "timestamp" that is not an RFC 3339 time`)
		}
	}
	d := bytes.TrimLeft(w.Data, " \t\r\n")
	if len(d) == 0 || d[0] != '{' {
		return ev, bad(`needs an object "data"`)
	}
	if err := json.Unmarshal(d, &ev.Data); err != nil {
		return ev, bad(`has a "data" whose fields are not strings`)
	}
	for _, v := range []string{ev.Data.CustomerID, ev.Data.ChallengeID, ev.Data.Status, string(ev.Data.Task)} {
		if len(v) > maxWebhookField || !printable(v) {
			return ev, bad(`has a malformed "data" field`)
		}
	}
	return ev, nil
}

// routeWebhook signals the workflow an event concerns and returns the
// outcome to record. Errors never reach Planbok: they become outcomes.
func (s *Server) routeWebhook(ctx context.Context, c *gin.Context, ev planbok.WebhookEvent, key string, now time.Time) string {
	ctx, cancel := context.WithTimeout(ctx, signalTimeout)
	defer cancel()
	logFail := func(what string, err error) {
		s.logger.WarnContext(ctx, "webhook routing failed", "request_id", requestID(c), "step", what, "event", ev.Event, "err", err.Error())
	}

	if ev.Data.ChallengeID != "" {
		f, err := s.store.FindFlowByChallengeID(ctx, ev.Data.ChallengeID)
		switch {
		case err == nil:
			err = s.temporal.SignalWorkflow(ctx, f.ID, "", flow.SignalChallengeEvent, flow.ChallengeEvent{
				ChallengeID: ev.Data.ChallengeID,
				Event:       ev.Event,
				Status:      ev.Data.Status,
				WebhookID:   key,
				Received:    now,
			})
			var nf *serviceerror.NotFound
			switch {
			case err == nil:
				return OutcomeSignalled
			case errors.As(err, &nf):
				return OutcomeFlowFinished
			default:
				logFail("signal flow", err)
				return OutcomeSignalFailed
			}
		case isCode(err, flow.CodeFlowNotFound):
			// No flow has recorded this challenge (yet): a customer-level
			// event still reaches the customer workflow below.
			if !isCustomerEvent(ev.Event) {
				return OutcomeUnmatched
			}
		default:
			logFail("find flow by challenge", err)
			return OutcomeSignalFailed
		}
	}

	if ev.Data.CustomerID != "" && isCustomerEvent(ev.Event) {
		if !validCustomerID(ev.Data.CustomerID) {
			return OutcomeIgnored
		}
		_, err := s.temporal.SignalWithStartWorkflow(ctx, flow.CustomerWorkflowID(ev.Data.CustomerID),
			flow.SignalCustomerEvent,
			flow.CustomerEvent{CustomerID: ev.Data.CustomerID, Event: ev.Event, WebhookID: key, Received: now},
			s.customerWorkflowOptions(ev.Data.CustomerID),
			flow.WorkflowCustomer, flow.CustomerInput{CustomerID: ev.Data.CustomerID})
		if err != nil {
			logFail("signal customer", err)
			return OutcomeSignalFailed
		}
		return OutcomeSignalled
	}
	return OutcomeIgnored
}

// isCustomerEvent reports whether event is a customer-level event
// (customer.*), which the customer workflow handles.
func isCustomerEvent(event string) bool { return strings.HasPrefix(event, "customer.") }
