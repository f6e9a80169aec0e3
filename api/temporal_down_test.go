package api

import (
	"net"
	"net/http"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/custodyflows/custodyflows/flow"
)

// While Temporal cannot be reached, a start answers 503
// temporal_unavailable with Retry-After within flow.StartAdmitTimeout, not
// after the whole request timeout (the SDK retries an unreachable frontend
// until its context ends). A real client, pointed at a port nothing
// listens on.
func TestStart_TemporalUnreachableAnswersPromptly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // stopped: connections are refused from now on
	tc, err := client.NewLazyClient(client.Options{HostPort: addr, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()

	e := newEnv(t)
	srv, err := New(Config{APIKeys: []string{testKey1}, AllowedRedirectHosts: []string{"app.example.com"}}, e.st, e.pb, tc)
	if err != nil {
		t.Fatal(err)
	}
	e.h = srv.Handler()
	began := time.Now()
	rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody)
	took := time.Since(began)
	wantError(t, rec, http.StatusServiceUnavailable, flow.CodeTemporalUnavailable)
	if rec.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if took > flow.StartAdmitTimeout+2*time.Second {
		t.Errorf("answered after %s, want within %s (not the request's %s)", took.Round(time.Millisecond), flow.StartAdmitTimeout, DefaultRequestTimeout)
	}
}
