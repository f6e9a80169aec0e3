package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestReconcileFlags_DefaultsEnvironmentAndBounds(t *testing.T) {
	quiet := env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)}
	c, err := parseDevConfig(nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if c.Reconcile.Every != time.Hour || c.Reconcile.Rate != 5 {
		t.Fatalf("dev defaults: got %+v, want 1h and 5/s", c.Reconcile)
	}
	workerArgs := []string{"--planbok-api-key", "k", "--payload-keys", "k1:" + strings.Repeat("A", 43) + "="}
	w, err := parseWorkerConfig(workerArgs, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(map[string]string{
		"CUSTODYFLOWS_RECONCILE_EVERY": "0",
		"CUSTODYFLOWS_RECONCILE_RATE":  "2.5",
	})})
	if err != nil {
		t.Fatal(err)
	}
	if w.Reconcile.Every != 0 || w.Reconcile.Rate != 2.5 {
		t.Fatalf("worker from env: got %+v, want 0 (off) and 2.5/s", w.Reconcile)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--reconcile-every", "10s"}, "--reconcile-every must be at least 1m0s"},
		{[]string{"--reconcile-every", "-1h"}, "--reconcile-every must be at least"},
		{[]string{"--reconcile-rate", "0"}, "--reconcile-rate"},
		{[]string{"--reconcile-rate", "50"}, "--reconcile-rate"},
	} {
		_, err := parseDevConfig(tc.args, quiet)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestPollRateFlag_DefaultsEnvironmentAndBounds(t *testing.T) {
	quiet := env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)}
	c, err := parseDevConfig(nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if c.PollRate != 10 {
		t.Fatalf("dev default: got %g, want 10", c.PollRate)
	}
	workerArgs := []string{"--planbok-api-key", "k", "--payload-keys", "k1:" + strings.Repeat("A", 43) + "="}
	w, err := parseWorkerConfig(workerArgs, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(map[string]string{
		"CUSTODYFLOWS_POLL_RATE": "4",
	})})
	if err != nil {
		t.Fatal(err)
	}
	if w.PollRate != 4 {
		t.Fatalf("worker from env: got %g, want 4", w.PollRate)
	}
	for _, v := range []string{"0", "-1", "21"} {
		_, err := parseWorkerConfig(append(workerArgs, "--poll-rate", v), quiet)
		if err == nil || !strings.Contains(err.Error(), "--poll-rate") {
			t.Errorf("--poll-rate %s: got %v, want an error naming --poll-rate", v, err)
		}
	}
}

// Polls and the reconciler together must leave starts their share of
// Planbok's reads: the defaults (10 + 5) fit, more is refused naming both.
func TestReadBudget_PollsAndReconcilerLeaveStartsTheirShare(t *testing.T) {
	quiet := env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)}
	workerArgs := []string{"--planbok-api-key", "k", "--payload-keys", "k1:" + strings.Repeat("A", 43) + "="}
	if _, err := parseWorkerConfig(workerArgs, quiet); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if _, err := parseWorkerConfig(append(workerArgs, "--poll-rate", "12", "--reconcile-rate", "3"), quiet); err != nil {
		t.Fatalf("12 + 3 reads/s: %v", err)
	}
	for _, args := range [][]string{
		{"--poll-rate", "12"},
		{"--reconcile-rate", "6"},
		{"--poll-rate", "1", "--reconcile-rate", "15"},
	} {
		_, err := parseWorkerConfig(append(workerArgs, args...), quiet)
		if err == nil || !strings.Contains(err.Error(), "--poll-rate or --reconcile-rate") {
			t.Errorf("worker %v: got %v, want the read budget refused", args, err)
		}
		_, err = parseDevConfig(args, quiet)
		if err == nil || !strings.Contains(err.Error(), "--poll-rate or --reconcile-rate") {
			t.Errorf("dev %v: got %v, want the read budget refused", args, err)
		}
	}
}
