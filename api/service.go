package api

import (
	"context"
	_ "embed"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
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

// readiness is the body of /readyz. Checks say "ok" or "unavailable"
// (checks.worker: "ok", "no_pollers" or "unknown"); the reasons go to the
// log only, as they may name hosts or files.
type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// WriteProber is a store that can prove it still accepts writes (a disk
// that is full or remounted read-only still answers a ping). When the Store
// implements it, /readyz writes through it instead of pinging.
type WriteProber interface {
	ProbeWrite(ctx context.Context) error
}

// taskQueueDescriber is the part of the Temporal client that tells whether
// a worker polls a task queue; client.Client has it, test fakes may not.
type taskQueueDescriber interface {
	DescribeTaskQueue(ctx context.Context, taskQueue string, taskQueueType enumspb.TaskQueueType) (*workflowservice.DescribeTaskQueueResponse, error)
}

// errNoPollers says no worker polled the task queue lately.
var errNoPollers = errors.New("no worker polls the task queue")

// workerPolls reports whether a worker polled the task queue lately
// (errNoPollers when none did), within readyCheckTimeout.
func (s *Server) workerPolls(ctx context.Context) error {
	d, ok := s.temporal.(taskQueueDescriber)
	if !ok {
		return errors.New("the Temporal client cannot describe task queues")
	}
	ctx, cancel := context.WithTimeout(ctx, readyCheckTimeout)
	defer cancel()
	resp, err := d.DescribeTaskQueue(ctx, s.cfg.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
	if err != nil {
		return err
	}
	if len(resp.GetPollers()) == 0 {
		return errNoPollers
	}
	return nil
}

// readyz answers 200 while the database takes writes and Temporal answers,
// 503 otherwise. Whether a worker polls the task queue is reported as
// checks.worker ("ok" or "no_pollers") without failing readiness: the API
// still takes webhooks and answers reads without one, and pulling every API
// replica out of a load balancer because the workers are down would lose
// those too.
func (s *Server) readyz(c *gin.Context) {
	database := s.store.Ping
	if p, ok := s.store.(WriteProber); ok {
		database = p.ProbeWrite
	}
	checks := map[string]func(context.Context) error{
		"database": database,
		"temporal": func(ctx context.Context) error {
			_, err := s.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
	}
	if s.cfg.Ready != nil {
		checks["service"] = s.cfg.Ready
	}
	informational := map[string]bool{}
	if _, ok := s.temporal.(taskQueueDescriber); ok {
		informational["worker"] = true
		checks["worker"] = s.workerPolls
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
		switch {
		case r.err == nil:
		case informational[r.name]:
			body.Checks[r.name] = "unknown"
			if errors.Is(r.err, errNoPollers) {
				body.Checks[r.name] = "no_pollers"
			}
			s.logger.WarnContext(c.Request.Context(), "readiness: no worker seen", "check", r.name, "taskQueue", s.cfg.TaskQueue, "err", r.err.Error())
		default:
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
