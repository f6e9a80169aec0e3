package api

import (
	"context"
	_ "embed"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/sdk/client"
)

// openAPIDocument is the OpenAPI 3 description of every route, kept true by
// tests.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the embedded OpenAPI 3 document.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

func (s *Server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openAPIDocument)
}

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

const readyCheckTimeout = 3 * time.Second

// readiness is the body of /readyz. Checks say "ok" or "unavailable";
// the reasons go to the log only, as they may name hosts or files.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func (s *Server) readyz(c *gin.Context) {
	checks := map[string]func(context.Context) error{
		"database": s.store.Ping,
		"temporal": func(ctx context.Context) error {
			_, err := s.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
	}
	if s.cfg.Ready != nil {
		checks["service"] = s.cfg.Ready
	}
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(checks))
	for name, check := range checks {
		go func() {
			ctx, cancel := context.WithTimeout(c.Request.Context(), readyCheckTimeout)
			defer cancel()
			results <- result{name, safeCheck(ctx, check)}
		}()
	}
	body := readiness{Status: "ok", Checks: map[string]string{}}
	for range checks {
		r := <-results
		body.Checks[r.name] = "ok"
		if r.err != nil {
			body.Status, body.Checks[r.name] = "unavailable", "unavailable"
			s.logger.WarnContext(c.Request.Context(), "readiness check failed", "check", r.name, "err", r.err.Error())
		}
	}
	status := http.StatusOK
	if body.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, body)
}

// safeCheck runs check, turning a panic into an error.
func safeCheck(ctx context.Context, check func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errPanicked
		}
	}()
	return check(ctx)
}

var errPanicked = errors.New("readiness check panicked")
