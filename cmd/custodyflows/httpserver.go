package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// serverTimeouts bound how long one connection may hold a server's
// resources. Without them a client that sends its body one byte a second
// keeps a goroutine and a file descriptor for as long as it likes: 300 such
// clients on the unauthenticated webhook intake were enough to starve the
// authenticated API.
type serverTimeouts struct {
	// ReadHeader bounds reading the request line and headers.
	ReadHeader time.Duration
	// Read bounds reading the whole request, body included.
	Read time.Duration
	// Write bounds the handler plus writing the response, counted from the
	// end of the request headers.
	Write time.Duration
	// Idle bounds a kept-alive connection waiting for its next request.
	Idle time.Duration
}

// apiTimeouts are the API server's (API, webhook intake, codec endpoint).
//
//   - Read 20 s: the largest bodies are a webhook (1 MiB cap) and a batch of
//     payloads the Temporal UI asks the codec to decode (16 MiB cap, from an
//     operator's browser); every /v1 body is a few hundred bytes. A client
//     that cannot send that in 20 s is cut off, slow-body attackers included.
//   - Write = the API's request budget + 10 s: a flow start waits for
//     Update-with-Start until Planbok's challenge exists, which may take the
//     whole budget (api.DefaultRequestTimeout, 30 s, checked against the
//     workflows' Planbok limits by a test); the margin lets the handler
//     write its coded 502/503 instead of the connection being cut first.
//   - Idle 60 s: long enough for an app backend's pooled keep-alive
//     connections, short enough that abandoned ones free their descriptor.
func apiTimeouts(requestBudget time.Duration) serverTimeouts {
	return serverTimeouts{ReadHeader: 5 * time.Second, Read: 20 * time.Second, Write: requestBudget + 10*time.Second, Idle: 60 * time.Second}
}

// sandboxTimeouts are the sandbox's: Gateway pages post small forms, but a
// submit runs Argon2id (64 MiB) once or twice, which on a busy laptop takes
// seconds.
var sandboxTimeouts = serverTimeouts{ReadHeader: 5 * time.Second, Read: 10 * time.Second, Write: 30 * time.Second, Idle: 60 * time.Second}

// opsTimeouts are the worker's metrics and health server's: bodiless GETs
// from a scraper or a probe; /readyz asks Temporal for at most 3 s.
var opsTimeouts = serverTimeouts{ReadHeader: 5 * time.Second, Read: 5 * time.Second, Write: 15 * time.Second, Idle: 60 * time.Second}

// newHTTPServer is the one constructor of every http.Server the binary runs,
// so none is left without timeouts. The server's own errors (TLS, bad
// requests, panics) go to logger.
func newHTTPServer(h http.Handler, t serverTimeouts, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// httpService is an http.Server on its listener that shuts down gracefully:
// Shutdown stops accepting, waits for the handlers in flight (up to grace),
// then cuts what is left and still waits for those handlers to return, so
// that whatever the caller closes next (the database) is never closed under
// a running handler.
type httpService struct {
	name     string
	srv      *http.Server
	ln       net.Listener
	grace    time.Duration
	log      *slog.Logger
	inflight sync.WaitGroup
	done     chan error
	once     sync.Once
}

// newHTTPService serves h on ln with timeouts t once Start is called.
// grace bounds a graceful shutdown; it should cover t.Write, the longest a
// handler may run.
func newHTTPService(name string, ln net.Listener, h http.Handler, t serverTimeouts, grace time.Duration, logger *slog.Logger) *httpService {
	s := &httpService{name: name, ln: ln, grace: grace, log: logger, done: make(chan error, 1)}
	s.srv = newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		h.ServeHTTP(w, r)
	}), t, logger)
	return s
}

// Addr is the address the service listens on.
func (s *httpService) Addr() string { return s.ln.Addr().String() }

// Start serves in a goroutine; Done reports a server that stopped by itself.
func (s *httpService) Start() {
	go func() {
		err := s.srv.Serve(s.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else if err != nil {
			err = fmt.Errorf("%s server on %s: %w", s.name, s.Addr(), err)
		}
		s.done <- err
	}()
}

// Done delivers the error of a server that stopped without Shutdown.
func (s *httpService) Done() <-chan error { return s.done }

// Shutdown stops the server: no new connections, in-flight requests finish
// (up to the grace period), then it returns once no handler runs. It is
// safe to call more than once and before Start.
func (s *httpService) Shutdown() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.grace)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			// Past the grace period: close the connections, which cancels
			// the handlers' contexts, and still wait for them below.
			s.log.Warn("requests still running after the shutdown grace period; cutting them", "server", s.name, "grace", s.grace)
			_ = s.srv.Close()
		}
		_ = s.ln.Close() // when never served
		s.inflight.Wait()
	})
	return nil
}
