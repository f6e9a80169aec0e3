package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/custodyflows/custodyflows/flow"
)

// HeaderRequestID carries the request id in and out.
const HeaderRequestID = "X-Request-Id"

const (
	ctxRequestID = "custodyflows.requestID"
	ctxActor     = "custodyflows.actor"
)

// requestIDMiddleware keeps a well-formed incoming X-Request-Id, or makes
// one, and echoes it on the response.
func (s *Server) requestIDMiddleware(c *gin.Context) {
	id := c.GetHeader(HeaderRequestID)
	if !validRequestID(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(ctxRequestID, id)
	c.Header(HeaderRequestID, id)
	c.Next()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '-' || ch == '_' || ch == '.' || ch == ':') {
			return false
		}
	}
	return true
}

func requestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

func actor(c *gin.Context) string { return c.GetString(ctxActor) }

// accessLog logs one line per request and records the HTTP metrics. It logs
// the path without the query string and never a header.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	d := time.Since(start)
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	s.metrics.observe(c.Request.Method, route, status, d)
	s.logger.InfoContext(c.Request.Context(), "http request",
		"request_id", requestID(c),
		"method", c.Request.Method,
		"route", route,
		"path", c.Request.URL.Path,
		"status", status,
		"duration_ms", float64(d.Microseconds())/1000,
		"bytes", c.Writer.Size(),
		"actor", actor(c),
	)
}

// recoverPanics turns a panic into 500 internal with no details; the panic
// is logged with the request id.
func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.logger.ErrorContext(c.Request.Context(), "panic in handler",
				"request_id", requestID(c), "route", c.FullPath(), "panic", panicString(p))
			if c.Writer.Written() {
				c.Abort()
				return
			}
			s.renderError(c, newError(flow.CodeInternal, ""))
		}
	}()
	c.Next()
}

func panicString(p any) string {
	switch v := p.(type) {
	case error:
		return v.Error()
	case string:
		return v
	}
	return "non-error panic"
}

// authenticate accepts "Authorization: Bearer <key>" when the key is one of
// the configured keys (KeyRing.Match).
func (s *Server) authenticate(c *gin.Context) {
	id, ok := s.keys.Match(c.GetHeader("Authorization"))
	if !ok {
		s.renderError(c, newError(flow.CodeUnauthorized, "A valid API key is required: Authorization: Bearer <key>."))
		return
	}
	c.Set(ctxActor, id)
	c.Next()
}

// httpMetrics are the HTTP server metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry) (*httpMetrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custodyflows_http_requests_total",
		Help: "HTTP requests by method, route template and status.",
	}, []string{"method", "route", "status"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "custodyflows_http_request_duration_seconds",
		Help:    "HTTP request latency by method and route template.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"method", "route"})
	var err error
	if requests, err = register(reg, requests); err != nil {
		return nil, err
	}
	if duration, err = register(reg, duration); err != nil {
		return nil, err
	}
	return &httpMetrics{requests: requests, duration: duration}, nil
}

// register registers c, or returns the collector already registered under
// the same name (several Servers on one registry, as in tests).
func register[C prometheus.Collector](reg *prometheus.Registry, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *httpMetrics) observe(method, route string, status int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
	default:
		method = "OTHER" // arbitrary methods must not grow the label set
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}

func (s *Server) metricsHandler() gin.HandlerFunc {
	h := promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{Registry: s.cfg.Registry})
	return gin.WrapH(h)
}
