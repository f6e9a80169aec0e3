package sandbox

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/planbok"
)

func TestRestart_KeepsState(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "sandbox.db")
	e := newEnv(t, func(o *Options) { o.DBPath = dbPath })
	c := e.onboard()
	ws := e.createWallets(c.ID, pin1, "ETH-SEPOLIA", "SOL-DEVNET")
	open := e.challenge(c.ID, planbok.TaskUpdatePIN)
	token := e.formToken(open.RedirectURL)
	e.req("POST", "/v2/customers", map[string]any{"name": "Idem", "idempotencyKey": "k1"}).want(t, 201)
	before, err := e.export(c.ID, pin1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.export(c.ID, pin2); err == nil {
		t.Fatal("wrong PIN accepted")
	}

	if err := e.sb.Close(); err != nil {
		t.Fatal(err)
	}
	e.start()

	if got := e.customer(c.ID); got.ID != c.ID || !got.HasPIN || !got.HasRecovery || got.Status != "active" {
		t.Errorf("after restart got %+v", got)
	}
	var got []planbok.Wallet
	e.req("GET", "/v2/wallets?customerIds="+c.ID, nil).want(t, 200).data(t, &got)
	if len(got) != 2 || got[0] != ws[0] || got[1] != ws[1] {
		t.Errorf("after restart got wallets %+v, want %+v", got, ws)
	}
	if ch := e.getChallenge(c.ID, open.ChallengeID); ch.Status != "pending" {
		t.Errorf("open challenge: got %s", ch.Status)
	}
	if token2 := e.formToken(open.RedirectURL); token2 != token {
		t.Error("the Gateway form token changed across a restart")
	}
	var list planbok.CustomerList
	e.req("POST", "/v2/customers", map[string]any{"name": "Idem", "idempotencyKey": "k1"}).want(t, 201)
	e.req("GET", "/v2/customers", nil).want(t, 200).data(t, &list)
	if list.Total != 2 {
		t.Errorf("idempotency lost across restart: %d customers, want 2", list.Total)
	}
	// The wrong-PIN counter survived too (one wrong PIN before the restart).
	_, err = e.export(c.ID, pin2)
	wantAttempts(t, err, 422, 3)

	e.mustComplete(open.ChallengeID, map[string]any{"currentPin": pin1, "newPin": pin2})
	after, err := e.export(c.ID, pin2)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Error("keys changed across the restart")
	}
}

func TestRestart_OutboxDelivered(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "sandbox.db")
	clock := newFakeClock()
	rc := newReceiver(t, clock)
	rc.fail = 1 << 30
	e := newEnv(t, func(o *Options) { o.DBPath = dbPath; o.Clock = clock.Now; o.WebhookURL = rc.srv.URL })
	e.clock = clock
	e.createCustomer()
	e.sb.Close()
	rc.mu.Lock()
	rc.fail = 0
	rc.mu.Unlock()
	clock.Advance(2 * time.Minute)
	e.start()
	rc.waitFor(func(evs []planbok.WebhookEvent) bool { return len(evs) == 1 })
}

// BenchmarkCreateChallenge measures POST /v2/customers/{id}/update-pin
// through the whole handler (auth, JSON, rules, SQLite insert).
func BenchmarkCreateChallenge(b *testing.B) {
	clock := newFakeClock()
	opts := testOptions(clock)
	opts.BaseURL = "http://sandbox.test"
	opts.DBPath = filepath.Join(b.TempDir(), "bench.db")
	sb, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	c := &customer{ID: "0123456789abcdef01234567", Name: "B", Status: planbok.CustomerActive}
	if err := insertCustomer(sb.db.x, c); err != nil {
		b.Fatal(err)
	}
	body := `{"redirectUrl":"` + testRedirect + `"}`
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r := httptest.NewRequest("POST", "/v2/customers/"+c.ID+"/initialize", strings.NewReader(body))
		r.Header.Set(HeaderAPIKey, testKey)
		w := httptest.NewRecorder()
		sb.ServeHTTP(w, r)
		if w.Code != 201 {
			b.Fatalf("got %d: %s", w.Code, w.Body)
		}
	}
}
