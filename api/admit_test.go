package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/custodyflows/custodyflows/flow"
)

// slowAcceptTemporal accepts a start-flow update only after the admit
// timeout, as a worker does while the start's first Planbok calls (local
// activities) keep its workflow task open; the update is found again by
// its id.
type slowAcceptTemporal struct {
	*describingTemporal
	reattached []client.GetWorkflowUpdateHandleOptions
	sentIDs    []string
}

func (t *slowAcceptTemporal) UpdateWithStartWorkflow(ctx context.Context, o client.UpdateWithStartWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	t.sentIDs = append(t.sentIDs, o.UpdateOptions.UpdateID)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (t *slowAcceptTemporal) GetWorkflowUpdateHandle(ref client.GetWorkflowUpdateHandleOptions) client.WorkflowUpdateHandle {
	t.reattached = append(t.reattached, ref)
	res := flow.StartResult{Created: true, Flow: &flow.Flow{ID: "flow_aaaaaaaaaaaaaaaaaaaaaaaa", CustomerID: customerA,
		Kind: flow.KindUpdatePIN, Status: flow.StatusAwaitingUser}}
	return &fakeHandle{id: ref.WorkflowID, value: res}
}

// A start not accepted within flow.StartAdmitTimeout goes on while a worker
// polls the task queue (it is running the start), and answers 503 at once
// when none does.
func TestStart_LateAcceptanceWithAWorker(t *testing.T) {
	for _, pollers := range []int{1, 0} {
		t.Run(map[int]string{1: "worker polls", 0: "no worker"}[pollers], func(t *testing.T) {
			e := newEnv(t)
			tc := &slowAcceptTemporal{describingTemporal: &describingTemporal{fakeTemporal: e.tc, pollers: pollers}}
			srv, err := New(Config{APIKeys: []string{testKey1}, AllowedRedirectHosts: []string{"app.example.com"}, TaskQueue: "tq"}, e.st, e.pb, tc)
			if err != nil {
				t.Fatal(err)
			}
			e.h = srv.Handler()
			began := time.Now()
			rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody)
			took := time.Since(began)
			if took < flow.StartAdmitTimeout || took > flow.StartAdmitTimeout+2*time.Second {
				t.Errorf("answered after %s, want right after the admit timeout (%s)", took.Round(time.Millisecond), flow.StartAdmitTimeout)
			}
			if pollers == 0 {
				wantError(t, rec, http.StatusServiceUnavailable, flow.CodeTemporalUnavailable)
				if len(tc.reattached) != 0 {
					t.Errorf("reattached %v without a worker", tc.reattached)
				}
				return
			}
			if rec.Code != http.StatusCreated {
				t.Fatalf("got %d %s, want 201", rec.Code, rec.Body)
			}
			if len(tc.sentIDs) != 1 || tc.sentIDs[0] == "" || len(tc.reattached) != 1 ||
				tc.reattached[0].UpdateID != tc.sentIDs[0] || tc.reattached[0].WorkflowID != flow.CustomerWorkflowID(customerA) {
				t.Errorf("sent update ids %v, reattached %+v; want the same id on the customer's workflow", tc.sentIDs, tc.reattached)
			}
			if tc.queue != "tq" {
				t.Errorf("described queue %q, want tq", tc.queue)
			}
		})
	}
}
