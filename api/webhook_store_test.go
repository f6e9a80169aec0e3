package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

// The de-duplication guarantees against the real store (a SQLite file):
// concurrent replays of an unkeyed body under fresh ids are acted on once,
// and a key reused with another body is found a conflict and audited.
func TestWebhook_RealStoreDedupeAndConflict(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tc := newFakeTemporal()
	srv, err := New(Config{APIKeys: []string{testKey1}, WebhookSecrets: [][]byte{[]byte(testSecret)},
		AllowedRedirectHosts: []string{"app.example.com"}, WebhookConcurrency: 100,
		Clock: func() time.Time { return testNow }}, st, newFakePlanbok(), tc)
	if err != nil {
		t.Fatal(err)
	}
	send := func(body, id string) string {
		h := http.Header{}
		planbok.SetWebhookHeaders(h, []byte(testSecret), id, "event", testNow, []byte(body))
		req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/planbok", strings.NewReader(body))
		req.Header = h
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return strconv.Itoa(rec.Code) + " " + rec.Body.String()
	}

	unkeyed := `{"event":"customer.locked_out","data":{"customerId":"` + customerA + `"}}`
	var wg sync.WaitGroup
	var fresh atomic.Int32
	for i := range 40 {
		wg.Go(func() {
			switch got := send(unkeyed, "replay-"+strconv.Itoa(i)); got {
			case `200 {"received":true,"duplicate":false}`:
				fresh.Add(1)
			case `200 {"received":true,"duplicate":true}`:
			default:
				t.Errorf("replay %d: got %s", i, got)
			}
		})
	}
	wg.Wait()
	if fresh.Load() != 1 || len(tc.signalCalls()) != 1 {
		t.Errorf("got %d fresh, %d signals; want 1, 1", fresh.Load(), len(tc.signalCalls()))
	}

	first := `{"event":"customer.locked_out","idempotencyKey":"evt-r","data":{"customerId":"` + customerA + `"}}`
	other := `{"event":"customer.pin_reset","idempotencyKey":"evt-r","data":{"customerId":"` + customerA + `"}}`
	if got := send(first, "a"); got != `200 {"received":true,"duplicate":false}` {
		t.Fatalf("first: got %s", got)
	}
	if got := send(other, "b"); got != `200 {"received":true,"duplicate":true,"conflict":true}` {
		t.Fatalf("conflict: got %s", got)
	}
	if got := send(first, "c"); got != `200 {"received":true,"duplicate":true}` {
		t.Fatalf("plain duplicate: got %s", got)
	}
	if got := testutil.ToFloat64(srv.intake.conflicts); got != 1 {
		t.Errorf("conflict metric: got %v, want 1", got)
	}
	rows, err := st.FindAudit(ctx, store.AuditFilter{CustomerID: customerA})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Action != "webhook.conflict" || !strings.Contains(rows[0].Detail, "evt-r") {
		t.Errorf("audit rows: got %+v", rows)
	}
	if n := len(tc.signalCalls()); n != 2 {
		t.Errorf("signals: got %d, want 2 (the conflict is not acted on)", n)
	}
}

// Coalescing against the real store (a SQLite file): the webhooks of one
// challenge ending signal the flow once, one after another; at once they
// may signal more than once, but never not at all.
func TestWebhook_RealStoreCoalescesChallengeEnding(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tc := newFakeTemporal()
	srv, err := New(Config{APIKeys: []string{testKey1}, WebhookSecrets: [][]byte{[]byte(testSecret)},
		AllowedRedirectHosts: []string{"app.example.com"}, WebhookConcurrency: 100,
		Clock: func() time.Time { return testNow }}, st, newFakePlanbok(), tc)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertCustomer(ctx, &store.Customer{ID: customerA, Name: "Ada"}); err != nil {
		t.Fatal(err)
	}
	newFlow := func() *flow.Flow {
		f := testFlow(customerA, flow.KindInitialize, flow.StatusAwaitingUser)
		if err := st.UpsertFlow(ctx, f, store.FlowMeta{}); err != nil {
			t.Fatal(err)
		}
		return f
	}
	send := func(body, key string) {
		h := http.Header{}
		planbok.SetWebhookHeaders(h, []byte(testSecret), key, "event", testNow, []byte(body))
		req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/planbok", strings.NewReader(body))
		req.Header = h
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("webhook %s: got %d %s, want 200", key, rec.Code, rec.Body.String())
		}
	}
	outcome := func(key string) string {
		e, err := st.FindWebhook(ctx, key)
		if err != nil {
			t.Fatalf("webhook %s: %v", key, err)
		}
		return e.Outcome
	}

	f := newFlow()
	events := []string{planbok.EventCustomerPINSetup, planbok.EventCustomerRecoverySetup, planbok.EventChallengeCompleted}
	for i, ev := range events {
		send(challengeHook(ev, "seq-"+strconv.Itoa(i), f.ChallengeID, planbok.ChallengeVerified), "seq-"+strconv.Itoa(i))
	}
	if n := len(tc.signalCalls()); n != 1 {
		t.Errorf("signals in sequence: got %d, want 1", n)
	}
	for i, want := range []string{OutcomeSignalled, OutcomeCoalesced, OutcomeCoalesced} {
		if got := outcome("seq-" + strconv.Itoa(i)); got != want {
			t.Errorf("outcome of webhook %d: got %q, want %q", i, got, want)
		}
	}

	f = newFlow()
	before := len(tc.signalCalls())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			key := "par-" + strconv.Itoa(i)
			send(challengeHook(planbok.EventChallengeCompleted, key, f.ChallengeID, planbok.ChallengeVerified), key)
		})
	}
	wg.Wait()
	signalled := 0
	for i := range 8 {
		switch got := outcome("par-" + strconv.Itoa(i)); got {
		case OutcomeSignalled:
			signalled++
		case OutcomeCoalesced:
		default:
			t.Errorf("outcome of concurrent webhook %d: got %q, want signalled or coalesced", i, got)
		}
	}
	if n := len(tc.signalCalls()) - before; signalled == 0 || n != signalled {
		t.Errorf("concurrent webhooks: got %d signals and %d signalled outcomes, want the same number, at least 1", n, signalled)
	}
}
