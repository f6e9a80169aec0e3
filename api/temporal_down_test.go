package api

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"

	"github.com/custodyflows/custodyflows/flow"
)

// frontend is a Temporal frontend that answers the client's handshake and
// then never answers a start (hang) — or is stopped outright.
type frontend struct {
	workflowservice.UnimplementedWorkflowServiceServer
}

func (frontend) GetSystemInfo(context.Context, *workflowservice.GetSystemInfoRequest) (*workflowservice.GetSystemInfoResponse, error) {
	return &workflowservice.GetSystemInfoResponse{}, nil
}

func (frontend) ExecuteMultiOperation(ctx context.Context, _ *workflowservice.ExecuteMultiOperationRequest) (*workflowservice.ExecuteMultiOperationResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// While Temporal does not answer, or is down, a start answers 503
// temporal_unavailable with Retry-After within flow.StartAdmitTimeout, not
// after the whole request timeout (the SDK keeps retrying an unreachable
// frontend until its context ends). A real client, connected to a frontend
// that then hangs or stops.
func TestStart_TemporalDownAnswersPromptly(t *testing.T) {
	for _, mode := range []string{"hangs", "stopped"} {
		t.Run(mode, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			gs := grpc.NewServer()
			workflowservice.RegisterWorkflowServiceServer(gs, frontend{})
			go gs.Serve(ln)
			defer gs.Stop()
			tc, err := client.Dial(client.Options{HostPort: ln.Addr().String(), Namespace: "default"})
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			if mode == "stopped" {
				gs.Stop()
			}

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
		})
	}
}
