package api

import (
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/custodyflows/custodyflows/flow"
)

// DefaultWebhookConcurrency bounds the webhook intake's requests in flight
// when Config.WebhookConcurrency is zero. Planbok sends a few events per
// flow; 64 at once is far above normal and far below the process's file
// limit, so unauthenticated traffic cannot take the connections and
// goroutines the app API needs.
const DefaultWebhookConcurrency = 64

// retryAfterIntake is the Retry-After (seconds) of a 503 from a full intake.
const retryAfterIntake = 2

// intake is the state of the unauthenticated webhook intake: the bound on
// requests in flight and its metrics.
type intake struct {
	slots     chan struct{}
	rejected  prometheus.Counter
	conflicts prometheus.Counter
}

func newIntake(limit int, reg *prometheus.Registry) (*intake, error) {
	if limit <= 0 {
		limit = DefaultWebhookConcurrency
	}
	rejected, err := register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "custodyflows_webhook_intake_rejected_total",
		Help: "Webhook requests answered 503 because the intake already had its maximum in flight.",
	}))
	if err != nil {
		return nil, err
	}
	conflicts, err := register(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "custodyflows_webhook_conflicts_total",
		Help: "Verified webhooks whose idempotencyKey was already recorded with a different body (not acted on, audited).",
	}))
	if err != nil {
		return nil, err
	}
	return &intake{slots: make(chan struct{}, limit), rejected: rejected, conflicts: conflicts}, nil
}

// limitIntake runs the intake only while fewer than the bound are in
// flight. Over it the answer is 503 overloaded with Retry-After at once: a
// request never waits for a slot, so a flood (or slow bodies) queues
// nothing, and Planbok retries what it could not deliver.
func (s *Server) limitIntake(c *gin.Context) {
	select {
	case s.intake.slots <- struct{}{}:
		defer func() { <-s.intake.slots }()
		c.Next()
	default:
		s.intake.rejected.Inc()
		s.renderError(c, &apiError{code: flow.CodeOverloaded, retryAfter: retryAfterIntake,
			message: "The webhook intake is at its limit of requests in flight; try again shortly."})
	}
}
