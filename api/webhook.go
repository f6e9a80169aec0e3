package api

import (
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
	OutcomeCoalesced    = "coalesced"     // the flow was already signalled for this challenge and status
)

const (
	maxWebhookField = 255
	signalTimeout   = 5 * time.Second
)

// webhookAck is the body of a 200 answer to Planbok.
type webhookAck struct {
	Received  bool `json:"received"`
	Duplicate bool `json:"duplicate"`
	// Conflict: a duplicate whose body differs from the first delivery's
	// under the same idempotencyKey. Not acted on, but counted and
	// audited rather than dropped silently.
	Conflict bool `json:"conflict,omitempty"`
}

// webhookWire is the body of a Planbok webhook as received, before the
// shape checks.
type webhookWire struct {
	Event          *string              `json:"event"`
	Timestamp      json.RawMessage      `json:"timestamp"`
	IdempotencyKey *string              `json:"idempotencyKey"`
	Data           *planbok.WebhookData `json:"data"`
}

// bodyKeyPrefix starts the de-duplication key of a body without an
// idempotencyKey: the hex SHA-256 of the signed body follows.
const bodyKeyPrefix = "body-sha256:"

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
	// The de-duplication key must come from what the signature covers: the
	// body's idempotencyKey, else a hash of the body itself. X-Webhook-Id
	// is not signed, so keying on it let a captured body be replayed under
	// a new id within the 300 s window and acted on again.
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	key := ev.IdempotencyKey
	if key == "" {
		key = bodyKeyPrefix + bodyHash
	}
	if len(key) > maxWebhookField || !printable(key) {
		s.renderError(c, newError(flow.CodeInvalidRequest, "The webhook's idempotencyKey is malformed."))
		return
	}
	webhookID := c.GetHeader(planbok.HeaderWebhookID)
	if len(webhookID) > maxWebhookField || !printable(webhookID) {
		// The header is not signed and only kept for the record: an odd
		// one is dropped, and does not cost a verified event.
		webhookID = ""
	}

	// The record and the routing must not die with Planbok's connection.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), s.cfg.RequestTimeout)
	defer cancel()
	dup, err := s.store.RecordWebhook(ctx, &store.InboxEntry{
		IdempotencyKey:  key,
		WebhookID:       webhookID,
		EventType:       ev.Event,
		CustomerID:      ev.Data.CustomerID,
		ChallengeID:     ev.Data.ChallengeID,
		ChallengeStatus: ev.Data.Status,
		BodySHA256:      bodyHash,
		ReceivedAt:      now.UTC(),
		Outcome:         OutcomeReceived,
	})
	if err != nil {
		// Not recorded: a 5xx makes Planbok send it again.
		s.renderError(c, &apiError{code: flow.CodeInternal, cause: fmt.Errorf("record webhook: %w", err)})
		return
	}
	if dup {
		conflict, aerr := s.webhookConflict(ctx, c, key, bodyHash, ev)
		if aerr != nil {
			s.renderError(c, aerr)
			return
		}
		c.JSON(http.StatusOK, webhookAck{Received: true, Duplicate: true, Conflict: conflict})
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
// "idempotencyKey". Unknown fields are allowed (Planbok may add some), but
// not a repeated key or a case variant of a known one (decodeJSON): a body
// with "event", "event", "EVENT" must not be read as whichever came last.
func parseWebhook(body []byte) (planbok.WebhookEvent, *apiError) {
	var ev planbok.WebhookEvent
	bad := func(why string) *apiError { return newError(flow.CodeInvalidRequest, "The webhook body "+why+".") }
	var w webhookWire
	if aerr := decodeJSON(body, &w, true); aerr != nil {
		aerr.message = "The webhook body is not the documented shape: " + aerr.message
		return ev, aerr
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
	if w.Data == nil {
		return ev, bad(`needs an object "data"`)
	}
	ev.Data = *w.Data
	for _, v := range []string{ev.Data.CustomerID, ev.Data.ChallengeID, ev.Data.Status, string(ev.Data.Task)} {
		if len(v) > maxWebhookField || !printable(v) {
			return ev, bad(`has a malformed "data" field`)
		}
	}
	return ev, nil
}

// webhookConflict compares a duplicate's body with the first delivery's.
// A different body under the same key is not the same event sent again:
// either the sender reuses keys or something rewrote a body it signed.
// It is not acted on (the first delivery was), but it is counted and
// audited so an operator sees it. A store failure here is a 500, so the
// sender tries again and the conflict is not lost.
func (s *Server) webhookConflict(ctx context.Context, c *gin.Context, key, bodyHash string, ev planbok.WebhookEvent) (bool, *apiError) {
	first, err := s.store.FindWebhook(ctx, key)
	if err != nil {
		return false, &apiError{code: flow.CodeInternal, cause: fmt.Errorf("find first webhook delivery: %w", err)}
	}
	if first.BodySHA256 == bodyHash {
		return false, nil
	}
	err = s.store.RecordAudit(ctx, &store.AuditEntry{
		Actor:      "planbok",
		Action:     "webhook.conflict",
		CustomerID: ev.Data.CustomerID,
		Outcome:    "ignored",
		Detail: fmt.Sprintf("key %s: event %s, body sha256 %s differs from the first delivery's %s (%s)",
			key, ev.Event, bodyHash, first.BodySHA256, first.EventType),
	})
	if err != nil {
		return false, &apiError{code: flow.CodeInternal, cause: fmt.Errorf("audit webhook conflict: %w", err)}
	}
	s.intake.conflicts.Inc()
	s.logger.WarnContext(ctx, "webhook conflict: same idempotency key, different body",
		"request_id", requestID(c), "event", ev.Event, "first_event", first.EventType)
	return true, nil
}

// routeWebhook signals the workflow an event concerns and returns the
// outcome to record. Errors never reach Planbok: they become outcomes.
func (s *Server) routeWebhook(reqCtx context.Context, c *gin.Context, ev planbok.WebhookEvent, key string, now time.Time) string {
	if ev.Event == planbok.EventCustomerCreated && validCustomerID(ev.Data.CustomerID) &&
		s.customerStored(reqCtx, ev.Data.CustomerID) {
		return OutcomeIgnored
	}
	ctx, cancel := context.WithTimeout(reqCtx, signalTimeout)
	defer cancel()
	logFail := func(what string, err error) {
		s.logger.WarnContext(ctx, "webhook routing failed", "request_id", requestID(c), "step", what, "event", ev.Event, "err", err.Error())
	}

	if ev.Data.ChallengeID != "" {
		f, err := s.store.FindFlowByChallengeID(ctx, ev.Data.ChallengeID)
		switch {
		case err == nil:
			if s.alreadySignalled(ctx, c, ev, key) {
				return OutcomeCoalesced
			}
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

// alreadySignalled reports whether the flow of ev's challenge was already
// signalled for the same terminal status by another webhook, so this one
// can be recorded as coalesced instead of signalled. Planbok sends several
// webhooks for one challenge ending (for an initialize flow
// customer.pin_setup, a recovery event and challenge.completed), and the
// flow's only reaction to a signal is to read the challenge at Planbok:
// one signal per ending is enough, and each costs a Temporal action.
//
// Only a terminal status counts: a pending or missing one says nothing
// about the ending, so it never stands in for a later decisive webhook.
// Only the outcome signalled counts, so a failed signal is tried again by
// the next webhook. Two webhooks handled at once may both signal (one
// signal too many, never one too few), and a failed lookup signals.
//
// An earlier webhook that went to the customer workflow because no flow
// owned the challenge yet would count too; the flow records its challenge
// before the start answer hands out the Gateway URL, so none can end that
// early, and the flow's own polling would cover it anyway.
func (s *Server) alreadySignalled(ctx context.Context, c *gin.Context, ev planbok.WebhookEvent, key string) bool {
	if ev.Data.Status != planbok.ChallengeVerified && ev.Data.Status != planbok.ChallengeFailed {
		return false
	}
	done, err := s.store.ChallengeSignalled(ctx, ev.Data.ChallengeID, ev.Data.Status, key)
	if err != nil {
		s.logger.WarnContext(ctx, "webhook coalescing lookup failed; signalling", "request_id", requestID(c),
			"event", ev.Event, "err", err.Error())
		return false
	}
	return done
}

// customerStored reports whether the store holds the customer, waiting up
// to Config.CustomerCreatedGrace for it to appear. Planbok announces every
// customer it creates, and for one created through this API the event
// commonly arrives before the create request has stored it: the request
// is still reading Planbok's answer. Waking the customer workflow then
// would change nothing and cost a workflow run per customer (its start, a
// signal, a Planbok read, an idle timer). So the event waits for the
// store, briefly: re-reads back off from 5 ms to 250 ms. A customer
// created outside this API never appears and is acted on after the grace;
// a failed lookup counts as unknown and is acted on at once.
func (s *Server) customerStored(ctx context.Context, id string) bool {
	deadline := time.Now().Add(s.cfg.CustomerCreatedGrace)
	wait := 5 * time.Millisecond
	for {
		_, err := s.store.FindCustomerByID(ctx, id)
		if err == nil {
			return true
		}
		left := time.Until(deadline)
		if !isCode(err, flow.CodeCustomerNotFound) || left <= 0 {
			return false
		}
		t := time.NewTimer(min(wait, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// isCustomerEvent reports whether event is a customer-level event
// (customer.*), which the customer workflow handles.
func isCustomerEvent(event string) bool { return strings.HasPrefix(event, "customer.") }
