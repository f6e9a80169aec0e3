package devstack_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/devstack"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const taskQueue = "devstack-test"

// quietLogger goes to stderr, not t.Log: server goroutines may still log
// while a test is finishing, and t.Log panics after it has finished.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func start(t *testing.T, cfg devstack.Config) *devstack.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	s, err := devstack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: got error %v, want nil", err)
	}
	t.Logf("Start took %v", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("Stop: got error %v, want nil", err)
		}
	})
	return s
}

func dial(t *testing.T, s *devstack.Server) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  s.FrontendAddress(),
		Namespace: s.Namespace(),
		Logger:    sdklog.NewStructuredLogger(quietLogger()),
	})
	if err != nil {
		t.Fatalf("client.Dial: got error %v, want nil", err)
	}
	t.Cleanup(c.Close)
	return c
}

func runWorker(t *testing.T, c client.Client, register func(worker.Registry)) worker.Worker {
	t.Helper()
	w := worker.New(c, taskQueue, worker.Options{})
	register(w)
	if err := w.Start(); err != nil {
		t.Fatalf("worker.Start: got error %v, want nil", err)
	}
	t.Cleanup(w.Stop)
	return w
}

// Greet sets a timer and calls an activity, so a run proves the timer queue
// and workflow and activity task dispatch all work.
func Greet(ctx workflow.Context, name string) (string, error) {
	if err := workflow.Sleep(ctx, 10*time.Millisecond); err != nil {
		return "", err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var upper string
	err := workflow.ExecuteActivity(ctx, "Upper", name).Get(ctx, &upper)
	return "hello " + upper, err
}

func Upper(_ context.Context, s string) (string, error) { return strings.ToUpper(s), nil }

func registerGreet(r worker.Registry) {
	r.RegisterWorkflowWithOptions(Greet, workflow.RegisterOptions{Name: "Greet"})
	r.RegisterActivityWithOptions(Upper, activity.RegisterOptions{Name: "Upper"})
}

func TestServer_RunsWorkflowAndUI(t *testing.T) {
	const codec = "http://127.0.0.1:8080/codec"
	s := start(t, devstack.Config{
		DataDir:       t.TempDir(),
		UIPort:        -1,
		Namespace:     "devstack-test",
		Retention:     48 * time.Hour,
		CodecEndpoint: codec,
	})
	if got, want := s.Namespace(), "devstack-test"; got != want {
		t.Errorf("Namespace: got %q, want %q", got, want)
	}
	if !strings.HasPrefix(s.FrontendAddress(), "127.0.0.1:") {
		t.Errorf("FrontendAddress: got %q, want 127.0.0.1:<port>", s.FrontendAddress())
	}

	c := dial(t, s)
	runWorker(t, c, registerGreet)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "greet-1", TaskQueue: taskQueue}, "Greet", "temporal")
	if err != nil {
		t.Fatalf("ExecuteWorkflow: got error %v, want nil", err)
	}
	var got string
	if err := run.Get(ctx, &got); err != nil {
		t.Fatalf("workflow result: got error %v, want nil", err)
	}
	if want := "hello TEMPORAL"; got != want {
		t.Errorf("workflow result: got %q, want %q", got, want)
	}

	t.Run("PlainGRPC", func(t *testing.T) {
		// What the temporal CLI does: a bare gRPC connection, a health
		// check, then WorkflowService calls.
		conn, err := grpc.NewClient(s.FrontendAddress(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("grpc.NewClient: got error %v, want nil", err)
		}
		defer conn.Close()
		health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{
			Service: "temporal.api.workflowservice.v1.WorkflowService",
		})
		if err != nil {
			t.Fatalf("health check: got error %v, want nil", err)
		}
		if got, want := health.GetStatus(), healthpb.HealthCheckResponse_SERVING; got != want {
			t.Errorf("health: got %v, want %v", got, want)
		}
		svc := workflowservice.NewWorkflowServiceClient(conn)
		ns, err := svc.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.Namespace()})
		if err != nil {
			t.Fatalf("DescribeNamespace: got error %v, want nil", err)
		}
		if got, want := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(), 48*time.Hour; got != want {
			t.Errorf("retention: got %v, want %v", got, want)
		}
		desc, err := svc.DescribeWorkflowExecution(ctx, &workflowservice.DescribeWorkflowExecutionRequest{
			Namespace: s.Namespace(),
			Execution: &commonpb.WorkflowExecution{WorkflowId: "greet-1"},
		})
		if err != nil {
			t.Fatalf("DescribeWorkflowExecution: got error %v, want nil", err)
		}
		if got, want := desc.GetWorkflowExecutionInfo().GetStatus(), enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED; got != want {
			t.Errorf("workflow status: got %v, want %v", got, want)
		}
		// Visibility (what `temporal workflow list` and the UI read) is
		// updated asynchronously.
		waitListed(t, ctx, svc, s.Namespace(), "WorkflowType = 'Greet' AND ExecutionStatus = 'Completed'", "greet-1")
	})

	t.Run("UI", func(t *testing.T) {
		if !strings.HasPrefix(s.UIURL(), "http://127.0.0.1:") {
			t.Fatalf("UIURL: got %q, want http://127.0.0.1:<port>", s.UIURL())
		}
		if body := get(t, s.UIURL()+"/"); !strings.Contains(body, "<html") {
			t.Errorf("GET /: got %.200q, want an HTML page", body)
		}
		var settings struct{ Codec struct{ Endpoint string } }
		if err := json.Unmarshal([]byte(get(t, s.UIURL()+"/api/v1/settings")), &settings); err != nil {
			t.Fatalf("GET /api/v1/settings: got error %v, want JSON", err)
		}
		if got := settings.Codec.Endpoint; got != codec {
			t.Errorf("UI codec endpoint: got %q, want %q", got, codec)
		}
		// Proxied to the frontend over gRPC.
		if body := get(t, s.UIURL()+"/api/v1/namespaces"); !strings.Contains(body, `"devstack-test"`) {
			t.Errorf("GET /api/v1/namespaces: got %.300q, want it to list devstack-test", body)
		}
	})
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: got error %v, want nil", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got status %d, want 200 (body %.200q)", url, resp.StatusCode, body)
	}
	return string(body)
}

// WaitForFinish blocks on a signal, so it is mid-flight across a restart.
func WaitForFinish(ctx workflow.Context, prefix string) (string, error) {
	var v string
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, &v)
	return prefix + v, nil
}

func registerWait(r worker.Registry) {
	r.RegisterWorkflowWithOptions(WaitForFinish, workflow.RegisterOptions{Name: "WaitForFinish"})
}

func TestServer_RestartResumesWorkflow(t *testing.T) {
	dir := t.TempDir()
	cfg := devstack.Config{DataDir: dir, Logger: quietLogger(), Retention: 48 * time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// First life: start the workflow and let it block on the signal.
	first, err := devstack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("first Start: got error %v, want nil", err)
	}
	stopFirst := func() {
		if first != nil {
			_ = first.Stop()
		}
	}
	defer stopFirst()
	c1, err := client.Dial(client.Options{HostPort: first.FrontendAddress(), Logger: sdklog.NewStructuredLogger(quietLogger())})
	if err != nil {
		t.Fatalf("client.Dial: got error %v, want nil", err)
	}
	w1 := worker.New(c1, taskQueue, worker.Options{})
	registerWait(w1)
	if err := w1.Start(); err != nil {
		t.Fatalf("worker.Start: got error %v, want nil", err)
	}
	run, err := c1.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "wait-1", TaskQueue: taskQueue}, "WaitForFinish", "got ")
	if err != nil {
		t.Fatalf("ExecuteWorkflow: got error %v, want nil", err)
	}
	waitForEvent(t, ctx, c1, "wait-1", enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
	w1.Stop()
	c1.Close()
	if err := first.Stop(); err != nil {
		t.Fatalf("first Stop: got error %v, want nil", err)
	}
	if err := first.Stop(); err != nil {
		t.Errorf("second Stop on the same server: got error %v, want nil", err)
	}
	first = nil
	if _, err := os.Stat(filepath.Join(dir, "temporal.db")); err != nil {
		t.Fatalf("stat temporal.db: got error %v, want the file", err)
	}

	// Second life: same directory, new ports, new worker; a changed
	// retention is applied to the existing namespace.
	cfg.Retention = 72 * time.Hour
	s := start(t, cfg)
	c := dial(t, s)
	runWorker(t, c, registerWait)
	if err := c.SignalWorkflow(ctx, "wait-1", run.GetRunID(), "finish", "signal"); err != nil {
		t.Fatalf("SignalWorkflow after restart: got error %v, want nil", err)
	}
	var got string
	if err := c.GetWorkflow(ctx, "wait-1", run.GetRunID()).Get(ctx, &got); err != nil {
		t.Fatalf("workflow result after restart: got error %v, want nil", err)
	}
	if want := "got signal"; got != want {
		t.Errorf("workflow result after restart: got %q, want %q", got, want)
	}
	ns, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.Namespace()})
	if err != nil {
		t.Fatalf("DescribeNamespace: got error %v, want nil", err)
	}
	if got, want := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(), 72*time.Hour; got != want {
		t.Errorf("retention after restart: got %v, want %v", got, want)
	}
	if got, want := s.UIURL(), ""; got != want {
		t.Errorf("UIURL with UIPort 0: got %q, want %q", got, want)
	}
}

// waitForEvent polls the history until it holds an event of type want.
func waitForEvent(t *testing.T, ctx context.Context, c client.Client, workflowID string, want enumspb.EventType) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		iter := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				break
			}
			if ev.GetEventType() == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("history of %s: got no %v event within 20s, want one", workflowID, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Counter adds update arguments to a running total until told to finish.
func Counter(ctx workflow.Context) (int, error) {
	total, done := 0, false
	if err := workflow.SetUpdateHandler(ctx, "add", func(ctx workflow.Context, n int) (int, error) {
		total += n
		return total, nil
	}); err != nil {
		return 0, err
	}
	workflow.GetSignalChannel(ctx, "done").Receive(ctx, &done)
	return total, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

func TestServer_UpdateWithStart(t *testing.T) {
	s := start(t, devstack.Config{DataDir: t.TempDir()})
	c := dial(t, s)
	runWorker(t, c, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(Counter, workflow.RegisterOptions{Name: "Counter"})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	updateWithStart := func(n int) (result int, runID string) {
		t.Helper()
		op := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
			ID:                       "counter-1",
			TaskQueue:                taskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		}, "Counter")
		h, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: op,
			UpdateOptions: client.UpdateWorkflowOptions{
				UpdateName:   "add",
				Args:         []any{n},
				WaitForStage: client.WorkflowUpdateStageCompleted,
			},
		})
		if err != nil {
			t.Fatalf("UpdateWithStartWorkflow(%d): got error %v, want nil", n, err)
		}
		if err := h.Get(ctx, &result); err != nil {
			t.Fatalf("update result (%d): got error %v, want nil", n, err)
		}
		return result, h.RunID()
	}

	got, firstRun := updateWithStart(2)
	if want := 2; got != want {
		t.Errorf("first UpdateWithStart: got %d, want %d", got, want)
	}
	got, secondRun := updateWithStart(3)
	if want := 5; got != want {
		t.Errorf("second UpdateWithStart: got %d, want %d", got, want)
	}
	if secondRun != firstRun {
		t.Errorf("second UpdateWithStart run: got %s, want the existing run %s", secondRun, firstRun)
	}

	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: "counter-1", UpdateName: "add", Args: []any{10}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		t.Fatalf("UpdateWorkflow: got error %v, want nil", err)
	}
	if err := h.Get(ctx, &got); err != nil || got != 15 {
		t.Errorf("UpdateWorkflow: got %d, %v, want 15, nil", got, err)
	}
	if err := c.SignalWorkflow(ctx, "counter-1", "", "done", true); err != nil {
		t.Fatalf("SignalWorkflow: got error %v, want nil", err)
	}
	if err := c.GetWorkflow(ctx, "counter-1", firstRun).Get(ctx, &got); err != nil || got != 15 {
		t.Errorf("workflow result: got %d, %v, want 15, nil", got, err)
	}
}

func TestStart_RejectsBadConfig(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name string
		cfg  devstack.Config
		want string
	}{
		{"NoDataDir", devstack.Config{}, "DataDir is required"},
		{"NotLoopback", devstack.Config{DataDir: t.TempDir(), Host: "0.0.0.0"}, "not a loopback"},
		{"HostName", devstack.Config{DataDir: t.TempDir(), Host: "localhost"}, "not a loopback"},
		{"BadLogLevel", devstack.Config{DataDir: t.TempDir(), LogLevel: "loud"}, "unknown log level"},
		{"FrontendPortBusy", devstack.Config{DataDir: t.TempDir(), FrontendPort: busyPort}, "frontend port"},
		{"UIPortBusy", devstack.Config{DataDir: t.TempDir(), UIPort: busyPort}, "ui port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = quietLogger()
			s, err := devstack.Start(context.Background(), tt.cfg)
			if err == nil {
				_ = s.Stop()
				t.Fatalf("Start: got nil error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start: got error %q, want one containing %q", err, tt.want)
			}
		})
	}
}
