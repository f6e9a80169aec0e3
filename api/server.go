// Package api is custodyflows' HTTP side: the gin router with the app API
// (/v1, bearer keys), Planbok's webhook intake, the service routes
// (/healthz, /readyz, /metrics, /openapi.json) and the OpenAPI document that
// describes them.
//
// Handlers decode, call one dependency and render. They start and query
// workflows only by the names in package flow, so the HTTP side never links
// workflow code; the store, Planbok and Temporal are reached through the
// small interfaces in deps.go.
//
// Choices where API.md is silent:
//   - Customer ids are checked for shape ([A-Za-z0-9_-]{1,64}); a malformed
//     id is 404 customer_not_found without asking Planbok.
//   - POST /v1/customers sends Planbok an idempotency key derived from name
//     and refId, so a retried create returns the same customer (201).
//   - The per-customer start quota is counted by the customer workflow,
//     once for the whole deployment: only flows created count (replays,
//     the active flow again and refusals are free), checked after the
//     active flow and before the rules. The API sends its configured quota
//     with each start.
//   - RequestHash = sha256 of {kind, customerId, redirectUrl, sorted
//     blockchains}; the idempotency key itself is not part of it. Keys are
//     scoped per customer; a start that failed before its challenge
//     existed releases its key, so the same key again starts afresh.
//   - redirectUrl: absolute https (dev: http or https on localhost and
//     127.0.0.1, any port 1-65535), no user info, no fragment, no
//     percent-encoding in the host, no backslash, at most 2048 bytes; hosts
//     are compared in their IDNA ASCII form and the allow-list matches host
//     names, any port.
//   - GET /v1/customers/{id}/flows reads only the store (unknown customer →
//     empty list); "limit" 1..100 (default 50), "status" repeatable.
//   - GET /v1/flows/{id} and active flows elsewhere prefer the flow
//     workflow's live query, falling back to the store row.
//   - Webhooks: once verified and recorded the answer is 200 even when
//     signalling fails (outcome signal_failed: the flow's own polling
//     covers it); a failure to record is 500 so Planbok sends it again.
//     X-Webhook-Id is not signed, so it is never the de-duplication key:
//     a body without idempotencyKey is keyed by its SHA-256. A key seen
//     with another body is a conflict: answered, counted, audited, not
//     acted on. A flow is signalled once per challenge ending: a verified
//     or failed webhook whose challenge and status were already signalled
//     is recorded as coalesced. At most WebhookConcurrency intake
//     requests run at once.
//   - Every error answer has the one error shape, 404 not_found for an
//     unknown route and 405 invalid_request (with Allow) for a wrong
//     method.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/custodyflows/custodyflows/flow"
)

// Defaults for the zero values of Config.
const (
	DefaultStartsPerHour = 20
	DefaultStartBurst    = 20
	// DefaultRequestTimeout is the start's time budget (flow.StartTimeout),
	// from which the workflow's Planbok budget derives.
	DefaultRequestTimeout = flow.StartTimeout
	// DefaultCustomerCreatedGrace covers the time between Planbok creating
	// a customer (and sending customer.created) and the create request
	// storing it, with room for a loaded process.
	DefaultCustomerCreatedGrace = 2 * time.Second
)

// Config configures a Server. Secrets (API keys, webhook secrets) are never
// logged.
type Config struct {
	// APIKeys are the bearer keys accepted on /v1; several may be valid at
	// once (rotation). New refuses an empty list.
	APIKeys []string
	// WebhookSecrets are Planbok's webhook signing secrets (rotation).
	WebhookSecrets [][]byte
	// AllowedRedirectHosts lists the hosts a redirectUrl may point at:
	// exact host names, or "*.example.com" for any subdomain of
	// example.com (not example.com itself).
	AllowedRedirectHosts []string
	// AllowLocalhostHTTP also allows http://localhost and
	// http://127.0.0.1 on any port (dev).
	AllowLocalhostHTTP bool
	// TaskQueue of the customer workflows (default flow.DefaultTaskQueue).
	// Namespace is informational: the Temporal client is bound to one.
	TaskQueue, Namespace string
	// StartQuota and StartBurst bound flow starts per customer (default
	// 20 per hour, burst 20). rate.Inf turns the quota off. The customer
	// workflow counts them, so the quota holds across API replicas.
	StartQuota rate.Limit
	StartBurst int
	// RequestTimeout bounds the work of one API request (default
	// flow.StartTimeout). A start's Planbok budget is what is left of it
	// after flow.StartReserve.
	RequestTimeout time.Duration
	// ExportHold is how long after a completed PIN reset exports are held
	// (security.exportAvailableAt); 0 = off. The worker enforces it.
	ExportHold time.Duration
	// WebhookConcurrency bounds the unauthenticated webhook intake's
	// requests in flight (default DefaultWebhookConcurrency); over it the
	// intake answers 503 overloaded with Retry-After at once.
	WebhookConcurrency int
	// CustomerCreatedGrace is how long a customer.created webhook for a
	// customer the store does not hold yet waits for a POST /v1/customers
	// in flight to store it, before the customer workflow is started to
	// sync it (default DefaultCustomerCreatedGrace).
	CustomerCreatedGrace time.Duration
	// Ready runs extra readiness checks for /readyz (worker running, …).
	Ready func(ctx context.Context) error
	// Codec, when non-nil, is mounted at /codec/ with that prefix stripped
	// (the Temporal UI's payload codec endpoint: /codec/decode, …).
	Codec http.Handler
	// Registry is served at /metrics; the HTTP metrics are registered on
	// it. Nil means a new registry.
	Registry *prometheus.Registry
	// Logger receives access and error logs; nil discards them.
	Logger *slog.Logger
	// Clock returns now; nil means time.Now.
	Clock func() time.Time
}

// Server serves the HTTP API. Create it with New.
type Server struct {
	cfg      Config
	store    Store
	planbok  Planbok
	temporal Temporal
	logger   *slog.Logger
	now      func() time.Time
	keys     *KeyRing
	redirect redirectPolicy
	// startQuota is sent with every start for the customer workflow to
	// count.
	startQuota flow.Quota
	metrics    *httpMetrics
	intake     *intake
	engine     *gin.Engine
}

// New returns a Server. It refuses a config without API keys or without
// dependencies.
func New(cfg Config, st Store, pb Planbok, tc Temporal) (*Server, error) {
	keys, err := NewKeyRing(cfg.APIKeys)
	if err != nil {
		return nil, err
	}
	if st == nil || pb == nil || tc == nil {
		return nil, errors.New("api: store, Planbok and Temporal clients are required")
	}
	s := &Server{cfg: cfg, keys: keys, store: st, planbok: pb, temporal: tc, logger: cfg.Logger, now: cfg.Clock}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.TaskQueue == "" {
		s.cfg.TaskQueue = flow.DefaultTaskQueue
	}
	if s.cfg.RequestTimeout <= 0 {
		s.cfg.RequestTimeout = DefaultRequestTimeout
	}
	if s.cfg.CustomerCreatedGrace <= 0 {
		s.cfg.CustomerCreatedGrace = DefaultCustomerCreatedGrace
	}
	if s.cfg.StartQuota == 0 {
		s.cfg.StartQuota = rate.Every(time.Hour / DefaultStartsPerHour)
	}
	if s.cfg.StartBurst <= 0 {
		s.cfg.StartBurst = DefaultStartBurst
	}
	if s.cfg.Registry == nil {
		s.cfg.Registry = prometheus.NewRegistry()
	}
	if s.redirect, err = newRedirectPolicy(cfg.AllowedRedirectHosts, cfg.AllowLocalhostHTTP); err != nil {
		return nil, err
	}
	if s.metrics, err = newHTTPMetrics(s.cfg.Registry); err != nil {
		return nil, err
	}
	if s.intake, err = newIntake(s.cfg.WebhookConcurrency, s.cfg.Registry); err != nil {
		return nil, err
	}
	s.startQuota = quotaOf(s.cfg.StartQuota, s.cfg.StartBurst)
	s.engine = s.routes()
	return s, nil
}

// Handler returns the HTTP handler (a gin engine).
func (s *Server) Handler() http.Handler { return s.engine }

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.ContextWithFallback = true
	e.Use(s.requestIDMiddleware, s.accessLog, s.recoverPanics)
	e.NoRoute(func(c *gin.Context) {
		s.renderError(c, newError(flow.CodeNotFound, "No route matches this path."))
	})
	e.NoMethod(func(c *gin.Context) {
		s.renderError(c, &apiError{code: flow.CodeInvalidRequest, status: http.StatusMethodNotAllowed,
			message: "This method is not allowed on this path."})
	})

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", s.metricsHandler())
	e.GET("/openapi.json", s.openAPI)
	if s.cfg.Codec != nil {
		codec := gin.WrapH(http.StripPrefix("/codec", s.cfg.Codec))
		e.Any("/codec/*path", codec)
	}

	e.POST("/v1/webhooks/planbok", s.limitIntake, s.webhook)

	v1 := e.Group("/v1", s.authenticate, s.timeout)
	v1.POST("/customers", s.createCustomer)
	v1.GET("/customers/:customerId", s.getCustomer)
	v1.GET("/customers/:customerId/flows", s.listFlows)
	for _, k := range flow.Kinds {
		v1.POST("/customers/:customerId/"+k.Route(), s.startFlow(k))
	}
	v1.GET("/flows/:flowId", s.getFlow)
	v1.POST("/flows/:flowId/cancel", s.cancelFlow)
	s.reconcileRoutes(v1)
	return e
}

// timeout bounds the work of one /v1 request.
func (s *Server) timeout(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.RequestTimeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// quotaOf is the start quota of limit and burst as the customer workflow
// counts it; rate.Inf is none.
func quotaOf(limit rate.Limit, burst int) flow.Quota {
	if limit == rate.Inf || limit <= 0 || burst <= 0 {
		return flow.Quota{}
	}
	return flow.Quota{Every: time.Duration(float64(time.Second) / float64(limit)), Burst: burst}
}
