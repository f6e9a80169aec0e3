package sandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/planbok"
)

// receiver is a webhook endpoint that verifies and records deliveries.
type receiver struct {
	t      *testing.T
	clock  *fakeClock
	mu     sync.Mutex
	got    []planbok.WebhookEvent
	ids    []string
	fail   int // answer 500 to this many requests first
	srv    *httptest.Server
	badSig int
}

func newReceiver(t *testing.T, clock *fakeClock) *receiver {
	rc := &receiver{t: t, clock: clock}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if rc.fail > 0 {
			rc.fail--
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if err := planbok.VerifyWebhook(r.Header, body, clock.Now(), []byte(testSecret)); err != nil {
			rc.badSig++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev planbok.WebhookEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.Header.Get(planbok.HeaderWebhookID) != ev.IdempotencyKey || r.Header.Get(planbok.HeaderWebhookEvent) != ev.Event {
			rc.badSig++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.got = append(rc.got, ev)
		rc.ids = append(rc.ids, ev.IdempotencyKey)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) events() []planbok.WebhookEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// waitFor polls until cond holds on the received events.
func (rc *receiver) waitFor(cond func([]planbok.WebhookEvent) bool) []planbok.WebhookEvent {
	rc.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if evs := rc.events(); cond(evs) {
			return evs
		}
		time.Sleep(5 * time.Millisecond)
	}
	evs := rc.events()
	rc.t.Fatalf("timed out; got %d events: %v", len(evs), names(evs))
	return nil
}

func names(evs []planbok.WebhookEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Event)
	}
	return out
}

func count(evs []planbok.WebhookEvent, name string) int {
	n := 0
	for _, e := range evs {
		if e.Event == name {
			n++
		}
	}
	return n
}

func newHookEnv(t *testing.T, mods ...func(*Options)) (*env, *receiver) {
	t.Helper()
	clock := newFakeClock()
	rc := newReceiver(t, clock)
	e := newEnv(t, append([]func(*Options){func(o *Options) { o.Clock = clock.Now; o.WebhookURL = rc.srv.URL }}, mods...)...)
	e.clock = clock
	return e, rc
}

func TestWebhooks_EveryEventSignedAndDelivered(t *testing.T) {
	e, rc := newHookEnv(t)
	c := e.createCustomer()
	ch := e.challenge(c.ID, planbok.TaskInitialize)
	e.mustComplete(ch.ChallengeID, map[string]any{"pin": pin1, "recovery": questions()})
	e.createWallets(c.ID, pin1, "ETH-SEPOLIA", "SOL-DEVNET")
	up := e.challenge(c.ID, planbok.TaskUpdatePIN)
	e.mustComplete(up.ChallengeID, map[string]any{"currentPin": pin1, "newPin": pin2})
	rs := e.challenge(c.ID, planbok.TaskResetPIN)
	e.mustComplete(rs.ChallengeID, map[string]any{"recovery": map[string]any{"answers": answers}, "newPin": pin1})
	ex := e.challenge(c.ID, planbok.TaskExportPrivateKeys)
	for range 5 {
		e.complete(ex.ChallengeID, map[string]any{"pin": pin3})
	}

	want := map[string]int{
		planbok.EventCustomerCreated: 1, planbok.EventCustomerPINSetup: 1, planbok.EventCustomerRecoverySetup: 1,
		planbok.EventWalletCreated: 2, planbok.EventCustomerPINUpdated: 1, planbok.EventCustomerRecoveryInitiated: 1,
		planbok.EventCustomerRecoveryCompleted: 1, planbok.EventCustomerLockedOut: 1,
		planbok.EventChallengeCompleted: 4, planbok.EventChallengeFailed: 1,
	}
	total := 0
	for _, n := range want {
		total += n
	}
	evs := rc.waitFor(func(evs []planbok.WebhookEvent) bool { return len(evs) >= total })
	for name, n := range want {
		if got := count(evs, name); got != n {
			t.Errorf("%s: got %d, want %d (all: %v)", name, got, n, names(evs))
		}
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		if seen[ev.IdempotencyKey] {
			t.Errorf("idempotencyKey %s used twice", ev.IdempotencyKey)
		}
		seen[ev.IdempotencyKey] = true
		if ev.Data.CustomerID != c.ID {
			t.Errorf("%s: got customerId %q", ev.Event, ev.Data.CustomerID)
		}
		switch ev.Event {
		case planbok.EventChallengeCompleted:
			if ev.Data.ChallengeID == "" || ev.Data.Task == "" || ev.Data.Status != "verified" {
				t.Errorf("challenge.completed: got %+v", ev.Data)
			}
		case planbok.EventChallengeFailed:
			if ev.Data.ChallengeID != ex.ChallengeID || ev.Data.Task != planbok.TaskExportPrivateKeys || ev.Data.Status != "failed" {
				t.Errorf("challenge.failed: got %+v", ev.Data)
			}
		case planbok.EventWalletCreated:
			if ev.Data.WalletID == "" || ev.Data.Address == "" || ev.Data.Blockchain == "" {
				t.Errorf("wallet.created: got %+v", ev.Data)
			}
		case planbok.EventCustomerRecoveryInitiated:
			if ev.Data.ChallengeID != rs.ChallengeID {
				t.Errorf("recovery_initiated: got %+v", ev.Data)
			}
		}
	}
	if rc.badSig != 0 {
		t.Errorf("%d deliveries failed verification", rc.badSig)
	}
}

func TestWebhooks_RetryWithBackoff(t *testing.T) {
	e, rc := newHookEnv(t)
	rc.mu.Lock()
	rc.fail = 3
	rc.mu.Unlock()
	e.createCustomer()
	// Attempt 1 fails at once; the retries wait 1s, 2s, 4s of sandbox time.
	deadline := time.Now().Add(5 * time.Second)
	for len(rc.events()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		e.clock.Advance(500 * time.Millisecond)
	}
	evs := rc.waitFor(func(evs []planbok.WebhookEvent) bool { return len(evs) == 1 })
	if evs[0].Event != planbok.EventCustomerCreated {
		t.Errorf("got %s", evs[0].Event)
	}
	var row outboxRow
	if err := e.sb.db.x.Get(&row, `SELECT `+outboxCols+` FROM webhooks`); err != nil {
		t.Fatal(err)
	}
	if row.State != webhookDelivered || row.Attempts != 4 {
		t.Errorf("got state %s after %d attempts, want delivered after 4", row.State, row.Attempts)
	}
}

func TestWebhooks_GiveUp(t *testing.T) {
	e, rc := newHookEnv(t)
	rc.mu.Lock()
	rc.fail = 1 << 30
	rc.mu.Unlock()
	e.createCustomer()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var state string
		if err := e.sb.db.x.Get(&state, `SELECT state FROM webhooks`); err != nil {
			t.Fatalf("read outbox: %v", err)
		}
		if state == webhookGaveUp {
			return
		}
		e.clock.Advance(2 * time.Minute)
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the webhook was never given up")
}

func TestWebhooks_DropAndDuplicateFaults(t *testing.T) {
	e, rc := newHookEnv(t)
	if err := e.helper.SetFaults(t.Context(), Faults{WebhookDropRate: 1}); err != nil {
		t.Fatal(err)
	}
	e.createCustomer()
	if err := e.helper.SetFaults(t.Context(), Faults{WebhookDuplicateRate: 1}); err != nil {
		t.Fatal(err)
	}
	dup := e.createCustomer()
	// A row is marked delivered only after both of its sends: once no row
	// is pending, every delivery has happened.
	waitOutboxSettled(t, e.sb.db)
	evs := rc.events()
	if len(evs) != 2 || evs[0].IdempotencyKey != evs[1].IdempotencyKey || evs[0].Data.CustomerID != dup.ID {
		t.Errorf("got %+v, want the second customer's event twice and the first dropped", evs)
	}
	var dropped int
	if err := e.sb.db.x.Get(&dropped, `SELECT COUNT(*) FROM webhooks WHERE state = ?`, webhookDropped); err != nil {
		t.Fatalf("count dropped: %v", err)
	}
	if dropped != 1 {
		t.Errorf("got %d dropped rows, want 1", dropped)
	}
}

func TestWebhooks_DelayFault(t *testing.T) {
	e, rc := newHookEnv(t)
	if err := e.helper.SetFaults(t.Context(), Faults{WebhookDelayMs: 30_000}); err != nil {
		t.Fatal(err)
	}
	e.createCustomer()
	// The delay is in the outbox row itself: due 30 s of sandbox time after
	// it was made, so no sender can send it before the clock gets there.
	var row outboxRow
	if err := e.sb.db.x.Get(&row, `SELECT `+outboxCols+` FROM webhooks`); err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	if got := fromNanos(row.NextAttemptAt).Sub(fromNanos(row.CreatedAt)); row.State != webhookPending || got != 30*time.Second {
		t.Fatalf("outbox row: got state %s due after %v, want pending due after 30s", row.State, got)
	}
	if n := len(rc.events()); n != 0 {
		t.Fatalf("got %d events before the delay passed", n)
	}
	e.clock.Advance(30 * time.Second)
	rc.waitFor(func(evs []planbok.WebhookEvent) bool { return len(evs) == 1 })
}

func TestWebhooks_NoURLNoOutbox(t *testing.T) {
	e := newEnv(t)
	e.onboard()
	var n int
	if err := e.sb.db.x.Get(&n, `SELECT COUNT(*) FROM webhooks`); err != nil {
		t.Fatalf("count outbox rows: %v", err)
	}
	if n != 0 {
		t.Errorf("got %d outbox rows without a webhook URL", n)
	}
}

// waitOutboxSettled waits until no outbox row is pending: each was
// delivered (all its sends done), dropped or given up.
func waitOutboxSettled(t *testing.T, db *db) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var pending int
		if err := db.x.Get(&pending, `SELECT COUNT(*) FROM webhooks WHERE state = ?`, webhookPending); err != nil {
			t.Fatalf("count pending webhooks: %v", err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending webhooks: got %d after 5s, want 0", pending)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
