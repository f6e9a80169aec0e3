package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/api"
	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/workflows"
)

func lookupFrom(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseDevConfig_Defaults(t *testing.T) {
	c, err := parseDevConfig(nil, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"data-dir", c.DataDir, "./.data"},
		{"http-addr", c.HTTPAddr, "127.0.0.1:8080"},
		{"sandbox-addr", c.SandboxAddr, "127.0.0.1:8090"},
		{"api-key", c.APIKey, "dev-api-key"},
		{"planbok-api-key", c.PlanbokAPIKey, "dev-planbok-key"},
		{"webhook-secret", c.WebhookSecret, "dev-webhook-secret"},
		{"notify-url", c.Notify.URL, ""},
	} {
		if tc.got != tc.want {
			t.Errorf("--%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if c.TemporalPort != 7233 || c.UIPort != 8233 || c.ChallengeTTL != 15*time.Minute {
		t.Errorf("ports/ttl: got %d, %d, %s, want 7233, 8233, 15m", c.TemporalPort, c.UIPort, c.ChallengeTTL)
	}
}

func TestParseDevConfig_EnvironmentAndFlagsWin(t *testing.T) {
	env := env{stderr: &bytes.Buffer{}, lookup: lookupFrom(map[string]string{
		"CUSTODYFLOWS_HTTP_ADDR":     "127.0.0.1:9999",
		"CUSTODYFLOWS_UI_PORT":       "0",
		"CUSTODYFLOWS_CHALLENGE_TTL": "2m",
	})}
	c, err := parseDevConfig([]string{"--http-addr", "127.0.0.1:7000"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:7000" {
		t.Errorf("flag over env: got %q, want 127.0.0.1:7000", c.HTTPAddr)
	}
	if c.UIPort != 0 || c.ChallengeTTL != 2*time.Minute {
		t.Errorf("from env: got ui-port %d ttl %s, want 0 and 2m", c.UIPort, c.ChallengeTTL)
	}
}

func TestParseDevConfig_BadValuesSayWhich(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--http-addr", "nope"}, nil, "--http-addr must be host:port"},
		{[]string{"--ui-port", "70000"}, nil, "--ui-port must be 0..65535"},
		{[]string{"--challenge-ttl", "1ms"}, nil, "--challenge-ttl must be at least"},
		{[]string{"--sandbox-kdf", "heavy"}, nil, "--sandbox-kdf must be default or light"},
		{[]string{"--api-key", ""}, nil, "--api-key must not be empty"},
		{nil, map[string]string{"CUSTODYFLOWS_TEMPORAL_PORT": "seven"}, "CUSTODYFLOWS_TEMPORAL_PORT"},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
	} {
		_, err := parseDevConfig(tc.args, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(tc.env)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: got error %v, want one containing %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestParseAPIConfig_RefusesWithoutKeys(t *testing.T) {
	_, err := parseAPIConfig([]string{"--planbok-api-key", "k", "--payload-keys", "k1:" + strings.Repeat("A", 43) + "=", "--webhook-secrets", "s", "--allowed-redirect-hosts", "app.example.com"},
		env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)})
	if err == nil || !strings.Contains(err.Error(), "--api-keys is required") {
		t.Fatalf("api without API keys: got %v, want a refusal naming --api-keys", err)
	}
}

func TestParseAPIConfig_SecretsNeverInErrors(t *testing.T) {
	const secret = "super-secret-planbok-key"
	_, err := parseAPIConfig([]string{"--planbok-api-key", secret, "--planbok-url", "not a url"},
		env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)})
	if err == nil {
		t.Fatal("got no error, want one for the bad URL")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error shows the key: %v", err)
	}
}

func TestParseWorkerConfig_NotifyNeedsSecret(t *testing.T) {
	_, err := parseWorkerConfig([]string{"--planbok-api-key", "k", "--payload-keys", "k1:" + strings.Repeat("A", 43) + "=", "--notify-url", "https://app.example.com/hooks"},
		env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)})
	if err == nil || !strings.Contains(err.Error(), "--notify-secret") {
		t.Fatalf("notify URL without secret: got %v, want a refusal naming --notify-secret", err)
	}
}

func TestRun_UnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"launch"}, &out, &errOut, lookupFrom(nil))
	if err == nil || !strings.Contains(err.Error(), `unknown command "launch"`) {
		t.Fatalf("got %v, want unknown command", err)
	}
}

func TestMigrate_Twice(t *testing.T) {
	db := t.TempDir() + "/app.db"
	for i := 0; i < 2; i++ {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"migrate", "--db", db}, &out, &bytes.Buffer{}, lookupFrom(nil)); err != nil {
			t.Fatalf("migrate run %d: %v", i+1, err)
		}
		if !strings.Contains(out.String(), "up to date") {
			t.Fatalf("migrate output: got %q", out.String())
		}
	}
}

// dev with --notify-url alone signs with its known default secret, which
// the worker's notifier accepts.
func TestParseDevConfig_NotifyURLAlone(t *testing.T) {
	c, err := parseDevConfig([]string{"--notify-url", "http://localhost:9999/hooks"}, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newActivities(nil, nil, c.Notify, nil); err != nil {
		t.Fatalf("notifier with the dev default secret: %v", err)
	}
}

func TestAbsoluteURL_DoesNotEchoTheValue(t *testing.T) {
	err := absoluteURL("notify-url", "ftp://hooks.example.com/?token=s3cr3t")
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("got %v, want an error without the URL", err)
	}
}

// A start's Planbok calls, retries included, share one budget that ends
// before the API's request timeout, so a hanging Planbok answers 502
// planbok_unavailable rather than 503. (Flows started before the budget
// keep two calls of workflows.PlanbokCallLimit.)
func TestTimeouts_PlanbokCallsFitInAStartRequest(t *testing.T) {
	if flow.PlanbokBudget(api.DefaultRequestTimeout) >= api.DefaultRequestTimeout {
		t.Fatalf("Planbok budget %s does not fit in the API's %s", flow.PlanbokBudget(api.DefaultRequestTimeout), api.DefaultRequestTimeout)
	}
	if 2*workflows.PlanbokCallLimit >= api.DefaultRequestTimeout {
		t.Fatalf("2 × %s of Planbok calls does not fit in the API's %s", workflows.PlanbokCallLimit, api.DefaultRequestTimeout)
	}
}

func TestParseAPIConfig_WebhookConcurrency(t *testing.T) {
	args := []string{"--planbok-api-key", "k", "--payload-keys", "k1:" + strings.Repeat("A", 43) + "=", "--webhook-secrets", "s",
		"--allowed-redirect-hosts", "app.example.com", "--api-keys", "key-1"}
	c, err := parseAPIConfig(args, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if c.WebhookConcurrency != api.DefaultWebhookConcurrency {
		t.Errorf("default: got %d, want %d", c.WebhookConcurrency, api.DefaultWebhookConcurrency)
	}
	c, err = parseAPIConfig(args, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(map[string]string{"CUSTODYFLOWS_WEBHOOK_CONCURRENCY": "8"})})
	if err != nil || c.WebhookConcurrency != 8 {
		t.Errorf("from env: got %d, %v, want 8", c.WebhookConcurrency, err)
	}
	_, err = parseAPIConfig(append(args, "--webhook-concurrency", "0"), env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)})
	if err == nil || !strings.Contains(err.Error(), "--webhook-concurrency") {
		t.Errorf("0: got %v, want an error naming --webhook-concurrency", err)
	}
}

func TestWorkflowCacheFlag_DefaultsEnvironmentAndBounds(t *testing.T) {
	quiet := env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)}
	c, err := parseDevConfig([]string{"--workflow-cache", "500"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if c.WorkflowCache != 500 {
		t.Fatalf("dev flag: got %d, want 500", c.WorkflowCache)
	}
	workerArgs := []string{"--planbok-api-key", "k", "--payload-keys", "k1:" + strings.Repeat("A", 43) + "="}
	w, err := parseWorkerConfig(workerArgs, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if w.WorkflowCache != defaultWorkflowCache {
		t.Fatalf("worker default: got %d, want %d", w.WorkflowCache, defaultWorkflowCache)
	}
	w, err = parseWorkerConfig(workerArgs, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(map[string]string{
		"CUSTODYFLOWS_WORKFLOW_CACHE": "3000",
	})})
	if err != nil {
		t.Fatal(err)
	}
	if w.WorkflowCache != 3000 {
		t.Fatalf("worker from env: got %d, want 3000", w.WorkflowCache)
	}
	if _, err := parseWorkerConfig(append(workerArgs, "--workflow-cache", "-1"), quiet); err == nil || !strings.Contains(err.Error(), "--workflow-cache") {
		t.Errorf("--workflow-cache -1: got %v, want an error naming --workflow-cache", err)
	}
}
