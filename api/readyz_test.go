package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
)

// probingStore is the fake store plus the write probe a real store has.
type probingStore struct {
	*fakeStore
	probeErr error
}

func (s *probingStore) ProbeWrite(context.Context) error { return s.probeErr }

// describingTemporal is the fake client plus DescribeTaskQueue.
type describingTemporal struct {
	*fakeTemporal
	pollers  int
	queue    string
	describe error
}

func (t *describingTemporal) DescribeTaskQueue(_ context.Context, queue string, typ enumspb.TaskQueueType) (*workflowservice.DescribeTaskQueueResponse, error) {
	if typ != enumspb.TASK_QUEUE_TYPE_WORKFLOW {
		return nil, errors.New("wrong task queue type")
	}
	t.queue = queue
	resp := &workflowservice.DescribeTaskQueueResponse{}
	for range t.pollers {
		resp.Pollers = append(resp.Pollers, &taskqueuepb.PollerInfo{Identity: "worker@host"})
	}
	return resp, t.describe
}

func readyzOf(t *testing.T, st Store, tc Temporal) (int, readiness, string) {
	t.Helper()
	srv, err := New(Config{APIKeys: []string{testKey1}, TaskQueue: "custom-queue"}, st, newFakePlanbok(), tc)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	return rec.Code, decode[readiness](t, rec), rec.Body.String()
}

// A database that answers pings but refuses writes (a full disk, a
// read-only remount) makes the API unready.
func TestReadyz_WriteProbe(t *testing.T) {
	st := &probingStore{fakeStore: newFakeStore()}
	tc := &describingTemporal{fakeTemporal: newFakeTemporal(), pollers: 1}
	if code, r, body := readyzOf(t, st, tc); code != 200 || r.Checks["database"] != "ok" {
		t.Fatalf("writable: got %d %s, want 200", code, body)
	}
	st.probeErr = errors.New("database or disk is full")
	code, r, body := readyzOf(t, st, tc)
	if code != 503 || r.Checks["database"] != "unavailable" {
		t.Fatalf("full disk: got %d %s, want 503 with database unavailable", code, body)
	}
	if strings.Contains(body, "disk is full") {
		t.Errorf("details leaked: %s", body)
	}
}

// With no worker polling the API's task queue /readyz says so, on the
// queue the API starts flows on, and stays 200: webhooks and reads work.
func TestReadyz_NoWorkerPolls(t *testing.T) {
	tc := &describingTemporal{fakeTemporal: newFakeTemporal()}
	code, r, body := readyzOf(t, newFakeStore(), tc)
	if code != 200 || r.Checks["worker"] != "no_pollers" {
		t.Fatalf("no pollers: got %d %s, want 200 with worker no_pollers", code, body)
	}
	if tc.queue != "custom-queue" {
		t.Errorf("described queue %q, want custom-queue", tc.queue)
	}
	tc.pollers = 2
	if code, r, body := readyzOf(t, newFakeStore(), tc); code != 200 || r.Checks["worker"] != "ok" {
		t.Fatalf("pollers: got %d %s, want 200 with worker ok", code, body)
	}
	tc.describe = errors.New("unavailable")
	if code, r, body := readyzOf(t, newFakeStore(), tc); r.Checks["worker"] != "unknown" || code != 200 {
		t.Fatalf("describe fails: got %d %s, want worker unknown", code, body)
	}
}
