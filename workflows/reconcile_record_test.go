//go:build record

package workflows

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custodyflows/custodyflows/flow"
)

// TestRecordReconcileHistories runs a Reconcile chain on a real in-memory
// Temporal server with fake activities and writes each run's history to
// testdata/Reconcile.<label>-<n>.json, for TestReplay_ReconcileHistories:
// a flow row repaired, then three customers in pages of two (one
// correction with its app event, one missing at Planbok):
//
//	go test -tags record -run TestRecordReconcileHistories ./workflows -args -label v0
func TestRecordReconcileHistories(t *testing.T) {
	if *recordLabel == "" {
		t.Fatal("-label is required")
	}
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c := ts.GetDefaultClient()
	w := newWorld()
	old := time.Now().Add(-time.Hour)
	w.flows = []flow.Flow{{ID: "flow_rec", CustomerID: "c01", Kind: flow.KindRecovery, Status: flow.StatusAwaitingUser, UpdatedAt: old}}
	w.outcome["flow_rec"] = &flow.Flow{ID: "flow_rec", CustomerID: "c01", Kind: flow.KindRecovery, Status: flow.StatusCompleted, UpdatedAt: old}
	for _, id := range []string{"c01", "c02", "c03"} {
		w.stored[id] = flow.Standing{HasPIN: true}
		w.truth[id] = flow.Standing{HasPIN: true}
	}
	w.truth["c02"] = flow.Standing{HasPIN: true, HasRecovery: true}
	delete(w.truth, "c03")
	ts.NewWorkerWithOptions("tq-reconcile", func(r worker.Registry) { w.register(r) }, worker.Options{DisableRegistrationAliasing: true})
	ts.NewWorkerWithOptions("tq", func(r worker.Registry) { w.register(r) }, worker.Options{DisableRegistrationAliasing: true})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "reconcile-record", TaskQueue: "tq-reconcile"},
		flow.WorkflowReconcile, flow.ReconcileInput{NotifyTaskQueue: "tq", PageSize: 2, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	runID := run.GetRunID() // Get follows the chain and moves it on
	var rep flow.ReconcileReport
	if err := run.Get(ctx, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.CorrectionsTotal != 2 || rep.CustomersChecked != 3 {
		t.Fatalf("report: got %+v", rep)
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	for n := 1; runID != ""; n++ {
		var events []*historypb.HistoryEvent
		iter := c.GetWorkflowHistory(ctx, "reconcile-record", runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		next := ""
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				t.Fatal(err)
			}
			if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
				next = a.GetNewExecutionRunId()
			}
			events = append(events, ev)
		}
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(&historypb.History{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", flow.WorkflowReconcile+"."+*recordLabel+"-"+string(rune('0'+n))+".json")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d events", path, len(events))
		runID = next
	}
}
