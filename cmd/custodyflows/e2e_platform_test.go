package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
)

// The webhook intake over real HTTP: signatures, timestamps, duplicates,
// malformed and oversized bodies.
func TestDev_WebhookIntake(t *testing.T) {
	s := startStack(t)
	post := func(body []byte, mutate func(h http.Header)) response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.APIURL+"/v1/webhooks/planbok", bytes.NewReader(body))
		planbok.SetWebhookHeaders(req.Header, []byte(testWebhookSecret), "wh-1", "customer.created", time.Now(), body)
		req.Header.Set("Content-Type", "application/json")
		if mutate != nil {
			mutate(req.Header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return response{Status: resp.StatusCode, Header: resp.Header, Body: buf.Bytes()}
	}
	body := []byte(`{"event":"customer.created","timestamp":"2026-11-25T10:00:00Z","idempotencyKey":"evt-e2e-1","data":{"customerId":"0123456789abcdef01234567"}}`)

	r := post(body, nil)
	mustEqual(t, "first delivery", r.Status, http.StatusOK)
	mustEqual(t, "first delivery body", strings.TrimSpace(string(r.Body)), `{"received":true,"duplicate":false}`)
	r = post(body, nil)
	mustEqual(t, "second delivery body", strings.TrimSpace(string(r.Body)), `{"received":true,"duplicate":true}`)

	r = post(body, func(h http.Header) { h.Set(planbok.HeaderWebhookSignature, "sha256=00") })
	mustEqual(t, "wrong signature", r.errorCode(), "invalid_signature")
	r = post(body, func(h http.Header) { h.Del(planbok.HeaderWebhookSignature) })
	mustEqual(t, "missing signature", r.Status, http.StatusUnauthorized)
	stale := time.Now().Add(-10 * time.Minute)
	r = post(body, func(h http.Header) {
		planbok.SetWebhookHeaders(h, []byte(testWebhookSecret), "wh-1", "customer.created", stale, body)
	})
	mustEqual(t, "stale timestamp", r.errorCode(), "invalid_signature")
	r = post(append(bytes.Clone(body), ' '), func(h http.Header) {
		// Signed for the original body, sent with one more byte.
		planbok.SetWebhookHeaders(h, []byte(testWebhookSecret), "wh-1", "customer.created", time.Now(), body)
	})
	mustEqual(t, "tampered body", r.Status, http.StatusUnauthorized)

	r = post([]byte(`{"event": 42}`), nil)
	mustEqual(t, "malformed body", r.errorCode(), "invalid_request")
	big := bytes.Repeat([]byte("a"), 1<<20+1)
	r = post(big, nil)
	mustEqual(t, "oversized body", r.Status, http.StatusRequestEntityTooLarge)

	unknown := []byte(`{"event":"something.new","timestamp":"2026-11-25T10:00:00Z","idempotencyKey":"evt-e2e-2","data":{}}`)
	r = post(unknown, nil)
	mustEqual(t, "unknown event", r.Status, http.StatusOK)
}

// Stopping everything mid-wait and starting again on the same data dir
// resumes the flow: Temporal's state, the worker and the sandbox's
// challenge all survive, and the flow completes.
func TestDev_RestartResumesFlow(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, withDataDir(dir))
	cust := s.onboard("user-restart")
	f, _ := s.api.start(cust.ID, flow.KindUpdatePIN, nil, http.StatusCreated)
	if err := s.Close(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	s = startStack(t, withDataDir(dir))
	mustEqual(t, "status after restart", s.api.flow(f.ID).Status, flow.StatusAwaitingUser)
	s.complete(f.ChallengeID, map[string]any{"currentPin": testPIN, "newPin": "112233"})
	s.api.waitFlow(f.ID, flow.StatusCompleted, 45*time.Second)
	if s.api.customer(cust.ID).Security.PINUpdatedAt == nil {
		t.Fatal("pinUpdatedAt not set after the resumed flow completed")
	}
}

// Payloads in Temporal history are encrypted: a client without the codec
// sees neither the redirect URL nor the customer's name or refId.
func TestDev_HistoryIsEncrypted(t *testing.T) {
	s := startStack(t)
	const name, refID, redirect = "Grace Hopper-secret-name", "ref-secret-7f3a", "http://localhost:3000/secret-return"
	cust := s.api.createCustomer(name, refID)
	f, _ := s.api.start(cust.ID, flow.KindInitialize, map[string]any{"redirectUrl": redirect}, http.StatusCreated)
	s.complete(f.ChallengeID, map[string]any{"pin": testPIN, "recovery": securityQuestions(testAnswers...)})
	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)

	raw, err := client.Dial(client.Options{HostPort: s.TemporalURL, Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, id := range []string{f.ID, flow.CustomerWorkflowID(cust.ID)} {
		// Binary protobuf: payload bytes appear as they are stored, where
		// protojson would hide plaintext behind base64.
		var all bytes.Buffer
		it := raw.GetWorkflowHistory(context.Background(), id, "", false, 0)
		events := 0
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			events++
			b, err := proto.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			all.Write(b)
		}
		if events == 0 {
			t.Fatalf("history of %s is empty", id)
		}
		for _, secret := range []string{redirect, name, refID, "secret-return", testPIN} {
			if strings.Contains(all.String(), secret) {
				t.Fatalf("history of %s holds %q in plaintext", id, secret)
			}
		}
		if !strings.Contains(all.String(), "binary/encrypted") {
			t.Fatalf("history of %s has no encrypted payloads", id)
		}
	}

	// The codec endpoint the Temporal UI uses decrypts the same payloads
	// for operators.
	first, err := raw.GetWorkflowHistory(context.Background(), f.ID, "", false, 0).Next()
	if err != nil {
		t.Fatal(err)
	}
	input := first.GetWorkflowExecutionStartedEventAttributes().GetInput()
	body, err := protojson.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.APIURL+"/codec/default/decode", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var decoded commonpb.Payloads
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("codec decode: got %d %s, want 200", resp.StatusCode, buf.String())
	}
	if err := protojson.Unmarshal(buf.Bytes(), &decoded); err != nil {
		t.Fatalf("codec decode body %s: %v", buf.String(), err)
	}
	if len(decoded.Payloads) == 0 || !strings.Contains(string(decoded.Payloads[0].Data), redirect) {
		t.Fatalf("decoded flow input: got %v, want it to hold the redirect URL", decoded.Payloads)
	}
}

// The built binary: `custodyflows dev` prints its banner, answers /readyz,
// keeps no more workflows in memory than --workflow-cache says, and exits
// cleanly on SIGTERM.
func TestBinary_DevStartsAndStopsOnSIGTERM(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "custodyflows")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "dev",
		"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0",
		"--temporal-port", "0", "--ui-port", "0", "--sandbox-kdf", "light", "--workflow-cache", "2")
	cmd.Env = append(os.Environ(), "CUSTODYFLOWS_API_KEY=from-env-key", "CUSTODYFLOWS_LOG_LEVEL=warn", "CUSTODYFLOWS_TEMPORAL_LOG_LEVEL=error")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	apiURL := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`API\s+(http://\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				apiURL <- m[1]
			}
		}
	}()
	var url string
	select {
	case url = <-apiURL:
	case <-time.After(90 * time.Second):
		t.Fatalf("no banner within 90s; stderr:\n%s", stderr.String())
	}
	t.Logf("dev ready after %s", time.Since(start).Round(time.Millisecond))

	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustEqual(t, "/readyz", resp.StatusCode, http.StatusOK)
	// The key came from the environment.
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/flows/flow_aaaaaaaaaaaaaaaaaaaaaaaa", nil)
	req.Header.Set("Authorization", "Bearer from-env-key")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	mustEqual(t, "authenticated with the env key", e.Error.Code, "flow_not_found")

	// Four waiting flows and their four customer workflows do not fit a
	// cache of two: the SDK must evict. The embedded server's own workers
	// share the process's one cache, so a size set after the server
	// started would be ignored and nothing evicted.
	api := &apiClient{t: t, base: url, key: "from-env-key"}
	for i := range 4 {
		cust := api.createCustomer("Cache Test", fmt.Sprintf("cache-%d", i))
		api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
	}
	evictions := 0.0
	for limit := time.Now().Add(15 * time.Second); evictions == 0 && time.Now().Before(limit); {
		evictions = metricValue(t, url, "temporal_sticky_cache_total_forced_eviction_total", "")
	}
	if evictions == 0 {
		t.Error("no workflow was evicted from a cache of 2 holding 8 workflows: --workflow-cache did not take effect")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
	if strings.Contains(stderr.String(), "dev-planbok-key") || strings.Contains(stderr.String(), "dev-webhook-secret") {
		t.Fatalf("secrets in the logs:\n%s", stderr.String())
	}
}
