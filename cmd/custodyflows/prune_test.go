package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/store"
)

// countingPruner records the retentions it was asked to prune by.
type countingPruner struct {
	mu    sync.Mutex
	calls []store.Retention
	err   error
	seen  chan struct{}
}

func (p *countingPruner) Prune(_ context.Context, r store.Retention) (store.Pruned, error) {
	p.mu.Lock()
	p.calls = append(p.calls, r)
	p.mu.Unlock()
	select {
	case p.seen <- struct{}{}:
	default:
	}
	return store.Pruned{WebhookInbox: 3}, p.err
}

func TestPruner_PrunesAtOnceThenEveryIntervalUntilStopped(t *testing.T) {
	p := &countingPruner{seen: make(chan struct{}, 1), err: errors.New("database is locked")}
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	cfg := pruneConfig{Webhooks: 48 * time.Hour, Audit: 0, Every: 20 * time.Millisecond}
	go func() {
		defer close(done)
		runPruner(ctx, cfg, p, slog.New(slog.NewTextHandler(&logs, nil)))
	}()
	for i := 0; i < 3; i++ { // the first at once, then after failures too
		select {
		case <-p.seen:
		case <-time.After(5 * time.Second):
			t.Fatalf("prune %d: not called within 5 s", i+1)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("pruner still running after its context ended")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if got := p.calls[0]; got.WebhookInbox != 48*time.Hour || got.AuditLog != 0 {
		t.Errorf("retention: got %+v, want inbox 48h and audit kept", got)
	}
	if !strings.Contains(logs.String(), "database is locked") {
		t.Errorf("a failed round was not logged: %s", logs.String())
	}
}

func TestPruner_NothingToPruneWhenEverythingIsKept(t *testing.T) {
	p := &countingPruner{seen: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runPruner(context.Background(), pruneConfig{Every: time.Millisecond}, p, slog.New(slog.DiscardHandler))
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("pruner with nothing to prune did not return")
	}
	if len(p.calls) != 0 {
		t.Errorf("Prune calls: got %d, want 0", len(p.calls))
	}
}

func TestPruneFlags_DefaultsEnvironmentAndBounds(t *testing.T) {
	workerArgs := []string{"--planbok-api-key", "k", "--payload-keys", "k1:" + strings.Repeat("A", 43) + "="}
	w, err := parseWorkerConfig(workerArgs, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if w.Prune.Webhooks != 30*24*time.Hour || w.Prune.Audit != 0 || w.Prune.Every != time.Hour {
		t.Fatalf("defaults: got %+v, want inbox 720h, audit kept, every 1h", w.Prune)
	}
	w, err = parseWorkerConfig(workerArgs, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(map[string]string{
		"CUSTODYFLOWS_RETAIN_AUDIT": "8760h", "CUSTODYFLOWS_RETAIN_WEBHOOKS": "0",
	})})
	if err != nil || w.Prune.Audit != 8760*time.Hour || w.Prune.Webhooks != 0 {
		t.Fatalf("from env: got %+v, %v, want audit 8760h and the inbox kept", w.Prune, err)
	}
	for _, tc := range []struct{ flag, value string }{
		{"--retain-webhooks", "10m"}, {"--retain-audit", "-1h"}, {"--prune-every", "1s"},
	} {
		_, err := parseWorkerConfig(append(workerArgs, tc.flag, tc.value), env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)})
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%s %s: got %v, want an error naming %s", tc.flag, tc.value, err, tc.flag)
		}
	}
}
