package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/devstack"
	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/sandbox"
	"github.com/custodyflows/custodyflows/sandbox/keys"
	"github.com/custodyflows/custodyflows/store"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The production shape: `custodyflows api` and `custodyflows worker` as
// separate commands, configured by environment, against a Temporal server
// and Planbok (here the sandbox). A flow goes from start to completed; the
// API refuses redirects off its allow-list; both stop cleanly; no secret
// reaches their logs.
func TestServices_APIAndWorkerAsSeparateCommands(t *testing.T) {
	const (
		planbokKey    = "pbk-live-4f9c2d0e7a"
		webhookSecret = "whsec-intake-8b1e5c"
		apiKeyOld     = "app-key-old-71d3"
		apiKeyNew     = "app-key-new-c0a9"
		codecToken    = "codec-token-5e2f"
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()

	temporal, err := devstack.Start(ctx, devstack.Config{DataDir: dir + "/temporal", LogLevel: "error"})
	if err != nil {
		t.Fatal(err)
	}
	defer temporal.Stop()

	apiAddr, metricsAddr := freeAddr(t), freeAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sandboxURL := "http://" + ln.Addr().String()
	sb, err := sandbox.New(sandbox.Options{
		APIKey: planbokKey, BaseURL: sandboxURL, KDF: keys.LightParams,
		WebhookURL: "http://" + apiAddr + "/v1/webhooks/planbok", WebhookSecret: []byte(webhookSecret),
	})
	if err != nil {
		t.Fatal(err)
	}
	// slowChallenges holds Planbok's challenge creation, so that a start is
	// surely in flight when the API is told to stop.
	var slowChallenges atomic.Bool
	slowed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slowChallenges.Load() && r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v2/customers/") {
			time.Sleep(1500 * time.Millisecond)
		}
		sb.ServeHTTP(w, r)
	})
	sbServer := &httptest.Server{Listener: ln, Config: &http.Server{Handler: slowed}}
	sbServer.Start()
	defer sb.Close()
	defer sbServer.Close()

	payloadKey := make([]byte, 32)
	rand.Read(payloadKey)
	payloadKeys := "k1:" + base64.StdEncoding.EncodeToString(payloadKey)
	environment := map[string]string{
		"CUSTODYFLOWS_TEMPORAL_ADDRESS": temporal.FrontendAddress(),
		"CUSTODYFLOWS_DB":               dir + "/app.db",
		"CUSTODYFLOWS_PLANBOK_URL":      sandboxURL,
		"CUSTODYFLOWS_PLANBOK_API_KEY":  planbokKey,
		"CUSTODYFLOWS_PAYLOAD_KEYS":     payloadKeys,
		"CUSTODYFLOWS_WEBHOOK_SECRETS":  webhookSecret,
		"CUSTODYFLOWS_API_KEYS":         apiKeyOld + "," + apiKeyNew,
		"CUSTODYFLOWS_CODEC_AUTH":       codecToken,
		"CUSTODYFLOWS_LOG_LEVEL":        "debug",
	}
	var logs lockedBuffer
	workerDone, apiDone := make(chan error, 1), make(chan error, 1)
	workerCtx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	apiCtx, stopAPI := context.WithCancel(ctx)
	defer stopAPI()
	go func() {
		workerDone <- run(workerCtx, []string{"worker", "--metrics-addr", metricsAddr}, io.Discard, &logs, lookupFrom(environment))
	}()
	go func() {
		apiDone <- run(apiCtx, []string{"api", "--http-addr", apiAddr, "--allowed-redirect-hosts", "app.example.com"}, io.Discard, &logs, lookupFrom(environment))
	}()
	if err := waitReady(ctx, "http://"+apiAddr+"/readyz", 60*time.Second); err != nil {
		t.Fatalf("api: %v\n%s", err, logs.String())
	}

	api := &apiClient{t: t, base: "http://" + apiAddr, key: apiKeyNew}
	cust := api.createCustomer("Split Deploy", "user-split")
	_, r := api.start(cust.ID, flow.KindInitialize, nil, http.StatusBadRequest) // testRedirect is http://localhost
	mustEqual(t, "localhost redirect outside dev", r.errorCode(), "invalid_redirect_url")
	api.key = apiKeyOld // both keys are valid while rotating
	f, _ := api.start(cust.ID, flow.KindInitialize, map[string]any{"redirectUrl": "https://app.example.com/done"}, http.StatusCreated)
	helper := sandbox.NewHelperClient(sandboxURL, planbokKey, nil)
	if _, err := helper.Complete(ctx, f.ChallengeID, map[string]any{"pin": testPIN, "recovery": securityQuestions(testAnswers...)}); err != nil {
		t.Fatal(err)
	}
	api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	if sec := api.customer(cust.ID).Security; !sec.HasPIN || !sec.HasRecovery {
		t.Fatalf("security after initialize: got %+v", sec)
	}

	// The codec endpoint decrypts every history: outside dev it takes its
	// own token (--codec-auth) and refuses the apps' API keys.
	for key, want := range map[string]int{"": http.StatusUnauthorized, "wrong-key": http.StatusUnauthorized,
		apiKeyNew: http.StatusUnauthorized, apiKeyOld: http.StatusUnauthorized, codecToken: http.StatusOK} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+apiAddr+"/codec/default/decode", strings.NewReader(`{"payloads":[]}`))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("codec decode with key %q: got %d, want %d", key, resp.StatusCode, want)
		}
	}

	// The flow's workflow finishes (audit, notify) just after the API shows
	// it completed, and SDK metrics are reported on an interval: poll.
	var metrics bytes.Buffer
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics.Reset()
		metrics.ReadFrom(resp.Body)
		resp.Body.Close()
		if strings.Contains(metrics.String(), "temporal_workflow_completed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("worker /metrics has no temporal_workflow_completed within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// SIGTERM while a start is in flight: the start finishes (201) and is
	// audited before the database closes, and the API exits cleanly.
	cust2 := api.createCustomer("Stopped Mid-Start", "user-sigterm")
	slowChallenges.Store(true)
	type answer struct {
		status int
		body   string
		err    error
	}
	inFlight := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+apiAddr+"/v1/customers/"+cust2.ID+"/initialize",
			strings.NewReader(`{"redirectUrl":"https://app.example.com/done"}`))
		req.Header.Set("Authorization", "Bearer "+apiKeyNew)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inFlight <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inFlight <- answer{status: resp.StatusCode, body: string(b)}
	}()
	time.Sleep(500 * time.Millisecond)
	stopAPI()
	got := <-inFlight
	if got.err != nil || got.status != http.StatusCreated {
		t.Fatalf("start in flight at SIGTERM: got %d %s %v, want 201", got.status, got.body, got.err)
	}
	select {
	case err := <-apiDone:
		if err != nil {
			t.Fatalf("api stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("api did not stop within 30s of cancellation")
	}
	var started flow.Flow
	json.Unmarshal([]byte(got.body), &started)
	st, err := store.Open(ctx, dir+"/app.db")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := st.FindAudit(ctx, store.AuditFilter{CustomerID: cust2.ID})
	st.Close()
	audited := false
	for _, r := range rows {
		audited = audited || r.FlowID == started.ID
	}
	if err != nil || started.ID == "" || !audited {
		t.Fatalf("audit of the start in flight at SIGTERM (flow %q): got %d rows, %v, want one for the flow", started.ID, len(rows), err)
	}

	stopWorker()
	select {
	case err := <-workerDone:
		if err != nil {
			t.Fatalf("worker stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop within 30s of cancellation")
	}
	for _, secret := range []string{planbokKey, webhookSecret, apiKeyOld, apiKeyNew, codecToken, base64.StdEncoding.EncodeToString(payloadKey)} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a secret reached the logs: %q", secret)
		}
	}
	if !strings.Contains(logs.String(), "worker started") {
		t.Fatalf("no worker log lines captured:\n%s", logs.String())
	}
}
