package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// profileConfig is --pprof-addr: Go's runtime profiles (heap, CPU,
// goroutines) for an operator chasing memory or CPU in a running process.
// Off by default. Profiles carry stack traces and allocation sites, not
// request data, but they do show the program's internals: serve them on
// loopback or a private interface only.
type profileConfig struct {
	Addr string
}

func (p *profileConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&p.Addr, "pprof-addr", "", "address serving Go's runtime profiles under /debug/pprof/ (e.g. 127.0.0.1:6060); empty = none. Keep it off public interfaces")
}

func (p profileConfig) validate() error {
	if p.Addr == "" {
		return nil
	}
	return hostPort("pprof-addr", p.Addr)
}

// profileTimeouts allow a 30-second CPU profile (/debug/pprof/profile's
// default) plus the time to write it.
var profileTimeouts = serverTimeouts{ReadHeader: 5 * time.Second, Read: 5 * time.Second, Write: 2 * time.Minute, Idle: 60 * time.Second}

// start serves the profiles when an address is set; stop ends the server.
func (p profileConfig) start(logger *slog.Logger) (stop func(), err error) {
	if p.Addr == "" {
		return func() {}, nil
	}
	svc, err := p.serve(logger)
	if err != nil {
		return nil, err
	}
	return func() { _ = svc.Shutdown() }, nil
}

// serve listens on p.Addr and serves the profiles.
func (p profileConfig) serve(logger *slog.Logger) (*httpService, error) {
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --pprof-addr: %w", err)
	}
	// Index serves every named profile (heap, goroutine, allocs, …) below
	// it. No /debug/pprof/cmdline: the command line may carry secrets.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	svc := newHTTPService("pprof", ln, mux, profileTimeouts, 5*time.Second, logger)
	svc.Start()
	if host, _, _ := net.SplitHostPort(p.Addr); !isLoopbackHost(host) {
		logger.Warn("runtime profiles are served on a non-loopback address", "addr", svc.Addr())
	} else {
		logger.Info("serving runtime profiles", "addr", svc.Addr())
	}
	return svc, nil
}

// isLoopbackHost reports whether host names this machine only.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
