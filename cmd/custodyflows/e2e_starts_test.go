package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/api"
	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox"
)

// With Planbok failing now and then (30% 5xx, 10% 429) and no webhook ever
// arriving, every start of a concurrent batch answers 201 (the workflow
// retries Planbok within the start's budget) and every flow completes,
// found by the flows' own polling.
func TestDev_FaultedBatchCompletes(t *testing.T) {
	const customers = 10
	s := startStack(t)
	ctx := context.Background()
	var ids []string
	for i := range customers {
		ids = append(ids, s.onboard(fmt.Sprintf("user-fault-%d", i)).ID)
	}
	faults := sandbox.Faults{APIErrorRate: 0.3, RateLimitRate: 0.1, WebhookDropRate: 1}
	if err := s.helper.SetFaults(ctx, faults); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.helper.SetFaults(context.Background(), sandbox.Faults{}) })

	type started struct {
		flow flow.Flow
		resp response
		took time.Duration
	}
	results := make([]started, customers)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			r := s.api.do(http.MethodPost, "/v1/customers/"+id+"/update-pin", map[string]any{"redirectUrl": testRedirect})
			results[i] = started{resp: r, took: time.Since(began)}
			if r.Status == http.StatusCreated {
				r.decode(t, &results[i].flow)
			}
		}()
	}
	wg.Wait()
	var took []time.Duration
	created := 0
	for i, r := range results {
		took = append(took, r.took)
		if r.resp.Status != http.StatusCreated {
			t.Errorf("start %d: got %d %s, want 201", i, r.resp.Status, r.resp.Body)
			continue
		}
		created++
	}
	slices.Sort(took)
	t.Logf("faulted batch: %d/%d starts answered 201; start latency min %s, median %s, max %s",
		created, customers, took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	if t.Failed() {
		t.FailNow()
	}

	// The user completes each challenge on the Gateway (the helper is not
	// faulted); no webhook tells the flows, so they find out by polling.
	began := time.Now()
	for _, r := range results {
		s.complete(r.flow.ChallengeID, map[string]any{"currentPin": testPIN, "newPin": "654321"})
	}
	completed := 0
	for _, r := range results {
		// Up to the challenge's expiry and a minute: each poll fails 40 %
		// of the time too, and after the first minute polls are 4 minutes
		// apart, so five failed quick polls in a row (1 % of flows) put
		// the completion minutes later; a 4-minute limit failed about one
		// run in ten. At expiry the flow reads the challenge a last time.
		// After it is verified, the flow re-reads the customer
		// (SyncCustomer) with backoff doubling from 1 s.
		limit := time.Minute
		if r.flow.ExpiresAt != nil {
			limit += time.Until(*r.flow.ExpiresAt)
		}
		f := s.api.waitFlow(r.flow.ID, flow.StatusCompleted, limit)
		if f.CompletedAt == nil {
			t.Errorf("flow %s completed without completedAt", f.ID)
		}
		completed++
	}
	t.Logf("faulted batch: %d/%d flows completed by polling within %s of the Gateway completions",
		completed, customers, time.Since(began).Round(100*time.Millisecond))
}

// A start answers 502 planbok_unavailable only once Planbok kept failing
// for the whole Planbok budget of the start, and still before the API's
// request timeout (so never 503, which would blame Temporal); then the
// same start, key included, succeeds once Planbok is back.
func TestDev_StartAnswers502OnlyAfterTheBudget(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	cust := s.api.createCustomer("Unlucky", "user-budget")
	if err := s.helper.SetFaults(ctx, sandbox.Faults{APIErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"idempotencyKey": "budget-1"}
	began := time.Now()
	_, r := s.api.start(cust.ID, flow.KindInitialize, body, http.StatusBadGateway)
	took := time.Since(began)
	mustEqual(t, "code", r.errorCode(), "planbok_unavailable")
	if r.Header.Get("Retry-After") == "" {
		t.Error("502 without Retry-After")
	}
	t.Logf("502 after %s (Planbok budget %s, request timeout %s)", took.Round(time.Millisecond), flow.StartPlanbokBudget, flow.StartTimeout)
	if took < flow.StartPlanbokBudget-2*time.Second || took >= flow.StartTimeout {
		t.Errorf("502 after %s, want after about the Planbok budget (%s) and before the request timeout (%s)",
			took, flow.StartPlanbokBudget, flow.StartTimeout)
	}
	if err := s.helper.SetFaults(ctx, sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
	f, _ := s.api.start(cust.ID, flow.KindInitialize, map[string]any{"idempotencyKey": "budget-1"}, http.StatusCreated)
	mustEqual(t, "status", f.Status, flow.StatusAwaitingUser)
}

// The per-customer start quota holds for the deployment, not per API
// process: starts alternating between two API servers (one Temporal, one
// database) get the default 20 flows an hour between them, then 429 with
// Retry-After. Replays and the same kind again while active stay free.
func TestDev_StartQuotaCountedOnceAcrossAPIs(t *testing.T) {
	s := startStack(t)
	second, err := api.New(api.Config{
		APIKeys: []string{testAPIKey}, AllowLocalhostHTTP: true, TaskQueue: flow.DefaultTaskQueue,
	}, s.Store, planbok.New(s.SandboxURL, testPlanbokKey), s.Client)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(second.Handler())
	defer srv.Close()
	apis := []*apiClient{s.api, {t: t, base: srv.URL, key: testAPIKey}}

	cust := s.onboard("user-quota") // its initialize flow is the first of 20
	for i := 1; i < api.DefaultStartsPerHour; i++ {
		c := apis[i%2]
		key := map[string]any{"idempotencyKey": "quota-" + strconv.Itoa(i)}
		f, _ := c.start(cust.ID, flow.KindUpdatePIN, key, http.StatusCreated)
		// Free: a replay, and the same kind again while active, on the
		// other API.
		apis[(i+1)%2].start(cust.ID, flow.KindUpdatePIN, map[string]any{"idempotencyKey": "quota-" + strconv.Itoa(i)}, http.StatusOK)
		apis[(i+1)%2].start(cust.ID, flow.KindUpdatePIN, nil, http.StatusOK)
		if r := c.do(http.MethodPost, "/v1/flows/"+f.ID+"/cancel", nil); r.Status != http.StatusOK {
			t.Fatalf("cancel %d: got %d %s", i, r.Status, r.Body)
		}
	}
	for _, c := range apis {
		_, r := c.start(cust.ID, flow.KindUpdatePIN, nil, http.StatusTooManyRequests)
		mustEqual(t, "code", r.errorCode(), "rate_limited")
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		// One start refills every 3 minutes.
		if err != nil || ra < 120 || ra > 180 {
			t.Errorf("Retry-After: got %q, want about 180 seconds", r.Header.Get("Retry-After"))
		}
	}
	// Another customer has its own quota.
	other := s.api.createCustomer("Other", "user-quota-other")
	s.api.start(other.ID, flow.KindInitialize, nil, http.StatusCreated)
}

// A Planbok that hangs (every answer later than an attempt may wait) is
// the same as one that fails: 502 planbok_unavailable when the Planbok
// budget is spent, never a timed-out request answered 503 as if Temporal
// were at fault.
func TestDev_SlowPlanbokAnswers502(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	cust := s.api.createCustomer("Slow", "user-slow")
	slow := int((flow.PlanbokAttemptTimeout + time.Second) / time.Millisecond)
	if err := s.helper.SetFaults(ctx, sandbox.Faults{APILatencyMs: slow}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.helper.SetFaults(context.Background(), sandbox.Faults{}) })
	began := time.Now()
	_, r := s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusBadGateway)
	mustEqual(t, "code", r.errorCode(), "planbok_unavailable")
	t.Logf("with Planbok answering after %d ms, 502 after %s", slow, time.Since(began).Round(time.Millisecond))
}
