package codec

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/protobuf/proto"
)

const historyMarker = "MARKER-cus-4f1d-very-private"

func markerActivity(_ context.Context, in string) (string, error) { return in + "/activity", nil }

// markerWorkflow passes the marker through an activity and, when asked,
// fails with it in the error message, so inputs, results and failures all
// land in history.
func markerWorkflow(ctx workflow.Context, in string, fail bool) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var out string
	if err := workflow.ExecuteActivity(ctx, "markerActivity", in).Get(ctx, &out); err != nil {
		return "", err
	}
	if fail {
		return "", temporal.NewNonRetryableApplicationError("refused "+out, "test_failure", nil)
	}
	return out, nil
}

// TestHistory_NoPlaintext runs workflows through a codec client on an
// in-memory Temporal server and reads their histories with a client that
// has no codec: the marker must appear nowhere. A control run without the
// codec proves the search would have found it.
func TestHistory_NoPlaintext(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	raw := ts.GetDefaultClient()

	c := mustCodec(t, mustKey(t, "k1"))
	dc := DataConverter(c)
	enc := ts.NewClientWithOptions(client.Options{DataConverter: dc, FailureConverter: FailureConverter(dc)})

	run := func(t *testing.T, cl client.Client, queue string, fail bool) (string, string, error) {
		t.Helper()
		w := worker.New(cl, queue, worker.Options{})
		w.RegisterWorkflowWithOptions(markerWorkflow, workflow.RegisterOptions{Name: "markerWorkflow"})
		w.RegisterActivity(markerActivity)
		if err := w.Start(); err != nil {
			t.Fatalf("start worker: %v", err)
		}
		defer w.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		wr, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, "markerWorkflow", historyMarker, fail)
		if err != nil {
			t.Fatalf("start workflow: %v", err)
		}
		var out string
		err = wr.Get(ctx, &out)
		return wr.GetID(), out, err
	}
	historyHasMarker := func(t *testing.T, id string) (marker, encrypted bool) {
		t.Helper()
		it := raw.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		n := 0
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatalf("history: %v", err)
			}
			n++
			b, err := proto.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			marker = marker || bytes.Contains(b, []byte(historyMarker))
			encrypted = encrypted || bytes.Contains(b, []byte(MetadataEncodingValue))
		}
		if n == 0 {
			t.Fatal("got an empty history")
		}
		return marker, encrypted
	}

	t.Run("encrypted success", func(t *testing.T) {
		id, out, err := run(t, enc, "codec-enc", false)
		if err != nil {
			t.Fatalf("workflow: %v", err)
		}
		if want := historyMarker + "/activity"; out != want {
			t.Errorf("got result %q, want %q (the codec client decrypts)", out, want)
		}
		marker, encrypted := historyHasMarker(t, id)
		if marker {
			t.Error("raw history holds the marker in clear")
		}
		if !encrypted {
			t.Error("raw history has no encrypted payloads")
		}
	})
	t.Run("encrypted failure message", func(t *testing.T) {
		id, _, err := run(t, enc, "codec-enc-fail", true)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != "test_failure" {
			t.Fatalf("got %v, want the test_failure application error", err)
		}
		if !bytes.Contains([]byte(err.Error()), []byte(historyMarker)) {
			t.Errorf("got %q, want the decrypted message to hold the marker", err)
		}
		if marker, _ := historyHasMarker(t, id); marker {
			t.Error("raw history holds the failure message in clear")
		}
	})
	t.Run("control without codec", func(t *testing.T) {
		id, _, err := run(t, raw, "codec-plain", true)
		if err == nil {
			t.Fatal("got nil error, want the test failure")
		}
		if marker, _ := historyHasMarker(t, id); !marker {
			t.Error("control history lacks the marker: the search is broken")
		}
	})
}
