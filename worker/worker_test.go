package worker

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/custodyflows/custodyflows/activities"
	"github.com/custodyflows/custodyflows/codec"
	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/workflows"
)

var update = flag.Bool("update", false, "rewrite testdata/names.golden")

func namesText() string {
	wfs, acts := Names()
	var b strings.Builder
	b.WriteString("# Registered Temporal type names: part of the history contract.\n")
	b.WriteString("# A change here breaks running workflows; regenerate with go test ./worker -update.\n")
	for _, n := range wfs {
		b.WriteString("workflow " + n + "\n")
	}
	for _, n := range acts {
		b.WriteString("activity " + n + "\n")
	}
	signals, queries, updates := MessageNames()
	for _, n := range signals {
		b.WriteString("signal " + n + "\n")
	}
	for _, n := range queries {
		b.WriteString("query " + n + "\n")
	}
	for _, n := range updates {
		b.WriteString("update " + n + "\n")
	}
	return b.String()
}

func TestNames_Golden(t *testing.T) {
	path := filepath.Join("testdata", "names.golden")
	got := namesText()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden: %v", err)
	}
	if got != string(want) {
		t.Errorf("registered names changed:\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// TestNames_CoverFlowConstants ties the golden file to the flow package:
// every workflow and activity constant is registered.
func TestNames_CoverFlowConstants(t *testing.T) {
	wfs, acts := Names()
	wantWorkflows := []string{
		flow.WorkflowCustomer, flow.WorkflowInitialize, flow.WorkflowRecovery, flow.WorkflowUpdatePIN,
		flow.WorkflowResetPIN, flow.WorkflowExportPrivateKeys, flow.WorkflowCreateWallets, flow.WorkflowNotifyApp,
		flow.WorkflowReconcile,
	}
	wantActivities := []string{
		flow.ActivityPreflight, flow.ActivityCreateChallenge, flow.ActivityGetChallenge, flow.ActivityRecordFlow, flow.ActivityReadFlow,
		flow.ActivitySyncCustomer, flow.ActivityRecordAudit, flow.ActivityDeliverEvent, flow.ActivityAwaitChallenge,
		flow.ActivityListCustomerIDs, flow.ActivityReconcileCustomer, flow.ActivityListActiveFlows, flow.ActivityRepairFlow,
	}
	for _, tt := range []struct {
		what      string
		got, want []string
	}{{"workflows", wfs, wantWorkflows}, {"activities", acts, wantActivities}} {
		got := map[string]bool{}
		for _, n := range tt.got {
			got[n] = true
		}
		for _, n := range tt.want {
			if !got[n] {
				t.Errorf("%s: %q is not registered", tt.what, n)
			}
		}
		if len(tt.got) != len(tt.want) {
			t.Errorf("%s: got %d names %v, want %d", tt.what, len(tt.got), tt.got, len(tt.want))
		}
	}
	for _, k := range flow.Kinds {
		found := false
		for _, n := range wfs {
			found = found || n == k.WorkflowType()
		}
		if !found {
			t.Errorf("kind %s: workflow %q is not registered", k, k.WorkflowType())
		}
	}
}

// TestPollWorkerOptions pins the poll queue's worker: activities only, and
// the deployment-wide rate the server enforces.
func TestPollWorkerOptions(t *testing.T) {
	o := pollWorkerOptions(Options{}, slog.Default())
	if !o.DisableWorkflowWorker || o.TaskQueueActivitiesPerSecond != DefaultPollsPerSecond {
		t.Errorf("got DisableWorkflowWorker %v, rate %v; want true, %v", o.DisableWorkflowWorker, o.TaskQueueActivitiesPerSecond, float64(DefaultPollsPerSecond))
	}
	if o := pollWorkerOptions(Options{PollsPerSecond: 2.5}, slog.Default()); o.TaskQueueActivitiesPerSecond != 2.5 {
		t.Errorf("got rate %v, want 2.5", o.TaskQueueActivitiesPerSecond)
	}
	regs := pollRegistrations(&activities.Activities{})
	if len(regs) != 1 || regs[0].Name != flow.ActivityAwaitChallenge {
		t.Errorf("got poll registrations %v, want only %s", regs, flow.ActivityAwaitChallenge)
	}
}

// lazyClient is a client that never connects: enough to build (not start)
// a worker.
func lazyClient(t *testing.T) client.Client {
	t.Helper()
	c, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testWorkflow(ctx workflow.Context) error { return nil }

func TestRegister_Errors(t *testing.T) {
	a := &activities.Activities{}
	acts := activityRegistrations(a)
	tests := []struct {
		name string
		wfs  []workflows.Registration
		acts []registration
		want string
	}{
		{"duplicate workflow", []workflows.Registration{{Name: "A", Fn: testWorkflow}, {Name: "A", Fn: testWorkflow}}, acts, `workflow "A" registered twice`},
		{"empty workflow name", []workflows.Registration{{Name: "", Fn: testWorkflow}}, acts, "has no name"},
		{"nil workflow", []workflows.Registration{{Name: "A", Fn: nil}}, acts, "has no function"},
		{"duplicate activity", nil, append(acts, registration{flow.ActivityPreflight, a.Preflight}), `activity "Preflight" registered twice`},
		{"not a function", []workflows.Registration{{Name: "A", Fn: 42}}, acts, "worker: register:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := sdkworker.New(lazyClient(t), "q", sdkworker.Options{DisableRegistrationAliasing: true})
			err := register(w, tt.wfs, tt.acts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestNew_Errors(t *testing.T) {
	if _, err := New(nil, Options{Activities: &activities.Activities{}}); err == nil {
		t.Error("got nil error for a nil client, want one")
	}
	if _, err := New(lazyClient(t), Options{}); err == nil {
		t.Error("got nil error without activities, want one")
	}
}

func TestWorkerOptions_Defaults(t *testing.T) {
	tests := []struct {
		name string
		in   Options
		want sdkworker.Options
	}{
		{"defaults", Options{}, sdkworker.Options{
			MaxConcurrentActivityExecutionSize: DefaultMaxConcurrentActivities, MaxConcurrentWorkflowTaskExecutionSize: DefaultMaxConcurrentWorkflowTasks,
			WorkerStopTimeout: DefaultStopTimeout, DisableRegistrationAliasing: true,
		}},
		{"tuned", Options{MaxConcurrentActivities: 5, MaxConcurrentWorkflowTasks: 6, ActivitiesPerSecond: 9, StopTimeout: time.Minute}, sdkworker.Options{
			MaxConcurrentActivityExecutionSize: 5, MaxConcurrentWorkflowTaskExecutionSize: 6, TaskQueueActivitiesPerSecond: 9,
			WorkerStopTimeout: time.Minute, DisableRegistrationAliasing: true,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := workerOptions(tt.in, slog.Default())
			if got.OnFatalError == nil {
				t.Error("got no OnFatalError, want one that logs")
			}
			got.OnFatalError = nil
			if got.MaxConcurrentActivityExecutionSize != tt.want.MaxConcurrentActivityExecutionSize ||
				got.MaxConcurrentWorkflowTaskExecutionSize != tt.want.MaxConcurrentWorkflowTaskExecutionSize ||
				got.TaskQueueActivitiesPerSecond != tt.want.TaskQueueActivitiesPerSecond ||
				got.WorkerStopTimeout != tt.want.WorkerStopTimeout ||
				got.DisableRegistrationAliasing != tt.want.DisableRegistrationAliasing {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestClientOptions(t *testing.T) {
	k, err := codec.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.New([]codec.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	o := ClientOptions(ClientConfig{HostPort: "temporal:7233", Codec: c, Logger: logger})
	if o.HostPort != "temporal:7233" || o.Namespace != DefaultNamespace {
		t.Errorf("got host %q namespace %q, want temporal:7233 %s", o.HostPort, o.Namespace, DefaultNamespace)
	}
	if o.Logger == nil || o.DataConverter == nil || o.FailureConverter == nil {
		t.Fatalf("got %+v, want logger, data and failure converters", o)
	}
	p, err := o.DataConverter.ToPayload("cus_123")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.Metadata["encoding"]); got != codec.MetadataEncodingValue {
		t.Errorf("got encoding %q, want %q", got, codec.MetadataEncodingValue)
	}
	f := o.FailureConverter.ErrorToFailure(context.DeadlineExceeded)
	if strings.Contains(f.GetMessage(), "deadline") {
		t.Errorf("got failure message %q in clear, want it encrypted", f.GetMessage())
	}
	o.Logger.Info("hello from the sdk", "k", "v")
	if !strings.Contains(logs.String(), "hello from the sdk") {
		t.Errorf("got logs %q, want the SDK's line in slog", logs.String())
	}

	plain := ClientOptions(ClientConfig{Namespace: "ns"})
	if plain.Namespace != "ns" || plain.FailureConverter != nil {
		t.Errorf("got %+v, want namespace ns and the default failure converter", plain)
	}
}

func TestNewMetricsHandler(t *testing.T) {
	if _, _, err := NewMetricsHandler(nil); err == nil {
		t.Error("got nil error for a nil registerer, want one")
	}
	reg := prometheus.NewRegistry()
	h, closer, err := NewMetricsHandler(reg)
	if err != nil {
		t.Fatal(err)
	}
	h.WithTags(map[string]string{"namespace": "default"}).Counter("temporal_test_requests").Inc(3)
	h.Timer("temporal_test_latency").Record(250 * time.Millisecond)
	if err := closer.Close(); err != nil { // flushes
		t.Fatal(err)
	}
	families := gather(t, reg)
	c, ok := families["temporal_test_requests_total"]
	if !ok {
		t.Fatalf("got families %v, want temporal_test_requests_total", keys(families))
	}
	if got := c.GetMetric()[0].GetCounter().GetValue(); got != 3 {
		t.Errorf("got counter %v, want 3", got)
	}
	if got := c.GetMetric()[0].GetLabel(); len(got) != 1 || got[0].GetName() != "namespace" || got[0].GetValue() != "default" {
		t.Errorf("got labels %v, want namespace=default", got)
	}
	if h, ok := families["temporal_test_latency_seconds"]; !ok || h.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("got %v, want a temporal_test_latency_seconds histogram", h)
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestWorker_Temporal registers everything on a worker connected to an
// in-memory Temporal server, runs the NotifyApp workflow by its registered
// name (its DeliverEvent activity is a no-op without a notify URL), and
// checks that SDK metrics reached Prometheus.
func TestWorker_Temporal(t *testing.T) {
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	k, err := codec.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cdc, err := codec.New([]codec.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	mh, closer, err := NewMetricsHandler(reg)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	c := ts.NewClientWithOptions(ClientOptions(ClientConfig{
		HostPort: ts.GetFrontendHostPort(), Namespace: ts.GetDefaultNamespace(), Codec: cdc, Metrics: mh,
	}))

	w, err := New(c, Options{TaskQueue: "worker-test", Activities: &activities.Activities{}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := w.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer w.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := flow.DeliverEventInput{ID: "evt_test", Event: flow.AppEvent{Type: flow.EventPINSetup, Timestamp: time.Now()}}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: flow.NotifyWorkflowID(in.ID), TaskQueue: "worker-test",
	}, flow.WorkflowNotifyApp, in)
	if err != nil {
		t.Fatalf("start %s: %v", flow.WorkflowNotifyApp, err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatalf("%s: %v", flow.WorkflowNotifyApp, err)
	}

	// The reporter flushes every second.
	deadline := time.Now().Add(5 * time.Second)
	for {
		fams := gather(t, reg)
		if _, ok := fams["temporal_workflow_completed_total"]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got metrics %v, want temporal_workflow_completed_total", keys(fams))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
