package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/custodyflows/custodyflows/devstack"
	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/sandbox"
	"github.com/custodyflows/custodyflows/sandbox/keys"
)

// `custodyflows api` and `worker` on a task queue that is not the default
// (the worker from the environment, the API from its flag): the customer
// workflow and the flow it starts run on that queue, and the flow
// completes. Then, with Temporal stopped, a start answers 503
// temporal_unavailable with Retry-After in seconds, not after the whole
// request timeout.
func TestServices_NonDefaultTaskQueueAndTemporalDown(t *testing.T) {
	const (
		queue      = "custodyflows-blue"
		planbokKey = "pbk-queue-test"
		secret     = "whsec-queue-test"
		apiKey     = "app-key-queue-test"
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	temporal, err := devstack.Start(ctx, devstack.Config{DataDir: dir + "/temporal", LogLevel: "error"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			temporal.Stop()
		}
	}()

	apiAddr := freeAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sandboxURL := "http://" + ln.Addr().String()
	sb, err := sandbox.New(sandbox.Options{
		APIKey: planbokKey, BaseURL: sandboxURL, KDF: keys.LightParams,
		WebhookURL: "http://" + apiAddr + "/v1/webhooks/planbok", WebhookSecret: []byte(secret),
	})
	if err != nil {
		t.Fatal(err)
	}
	sbServer := &httptest.Server{Listener: ln, Config: &http.Server{Handler: sb}}
	sbServer.Start()
	defer sb.Close()
	defer sbServer.Close()

	payloadKey := make([]byte, 32)
	rand.Read(payloadKey)
	environment := map[string]string{
		"CUSTODYFLOWS_TEMPORAL_ADDRESS": temporal.FrontendAddress(),
		"CUSTODYFLOWS_DB":               dir + "/app.db",
		"CUSTODYFLOWS_PLANBOK_URL":      sandboxURL,
		"CUSTODYFLOWS_PLANBOK_API_KEY":  planbokKey,
		"CUSTODYFLOWS_PAYLOAD_KEYS":     "k1:" + base64.StdEncoding.EncodeToString(payloadKey),
		"CUSTODYFLOWS_WEBHOOK_SECRETS":  secret,
		"CUSTODYFLOWS_API_KEYS":         apiKey,
	}
	workerEnv := map[string]string{"CUSTODYFLOWS_TASK_QUEUE": queue}
	for k, v := range environment {
		workerEnv[k] = v
	}
	var logs lockedBuffer
	done := make(chan error, 2)
	go func() {
		done <- run(ctx, []string{"worker", "--metrics-addr", freeAddr(t)}, io.Discard, &logs, lookupFrom(workerEnv))
	}()
	go func() {
		done <- run(ctx, []string{"api", "--http-addr", apiAddr, "--allow-localhost-redirects", "--task-queue", queue},
			io.Discard, &logs, lookupFrom(environment))
	}()
	if err := waitReady(ctx, "http://"+apiAddr+"/readyz", 60*time.Second); err != nil {
		t.Fatalf("api: %v\n%s", err, logs.String())
	}

	api := &apiClient{t: t, base: "http://" + apiAddr, key: apiKey}
	cust := api.createCustomer("Blue Queue", "user-blue")
	f, _ := api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)

	tc, err := client.Dial(client.Options{HostPort: temporal.FrontendAddress(), Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{flow.CustomerWorkflowID(cust.ID), f.ID} {
		d, err := tc.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			t.Fatalf("describe %s: %v", id, err)
		}
		if got := d.GetExecutionConfig().GetTaskQueue().GetName(); got != queue {
			t.Errorf("%s runs on task queue %q, want %q", id, got, queue)
		}
	}
	tc.Close()
	helper := sandbox.NewHelperClient(sandboxURL, planbokKey, nil)
	if _, err := helper.Complete(ctx, f.ChallengeID, map[string]any{"pin": testPIN, "recovery": securityQuestions(testAnswers...)}); err != nil {
		t.Fatal(err)
	}
	api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)

	// Temporal goes away; the API stays up.
	stopped = true
	if err := temporal.Stop(); err != nil {
		t.Fatalf("stop Temporal: %v", err)
	}
	other := api.createCustomer("Down Time", "user-down")
	began := time.Now()
	_, r := api.start(other.ID, flow.KindInitialize, nil, http.StatusServiceUnavailable)
	took := time.Since(began)
	mustEqual(t, "code", r.errorCode(), "temporal_unavailable")
	if r.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	t.Logf("with Temporal stopped, a start answered 503 after %s", took.Round(time.Millisecond))
	if took > flow.StartAdmitTimeout+3*time.Second {
		t.Errorf("503 after %s, want within about %s (not the request's %s)", took, flow.StartAdmitTimeout, flow.StartTimeout)
	}

	cancel()
	for range 2 {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("a command did not stop within 30s of cancellation")
		}
	}
}
