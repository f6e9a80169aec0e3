package sandbox

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/planbok"
)

func TestAuth_MissingOrWrongKey(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/v2/customers", "/sandbox/v1/customers/x/email-code"} {
		e.req("GET", path, nil, HeaderAPIKey, "").want(t, 401)
		e.req("GET", path, nil, HeaderAPIKey, "nope").want(t, 401)
	}
	e.req("POST", "/v2/customers", map[string]string{"name": "x"}, HeaderAPIKey, "").want(t, 401)
}

func TestCustomers_CreateGetList(t *testing.T) {
	e := newEnv(t)
	r := e.req("POST", "/v2/customers", map[string]string{"name": "Ada", "refId": "u1"}).want(t, 201)
	if r.Env.Message == "" {
		t.Error("got empty message")
	}
	var c planbok.Customer
	r.data(t, &c)
	if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(c.ID) {
		t.Errorf("got id %q, want 24 hex characters", c.ID)
	}
	if c.Name != "Ada" || c.RefID != "u1" || c.Status != "active" || c.HasPIN || c.HasRecovery || c.CustodyType != CustodyType {
		t.Errorf("got %+v", c)
	}
	if !c.CreatedAt.Equal(e.clock.Now()) || !c.UpdatedAt.Equal(c.CreatedAt) {
		t.Errorf("got createdAt %v updatedAt %v, want %v", c.CreatedAt, c.UpdatedAt, e.clock.Now())
	}
	if got := e.customer(c.ID); got != c {
		t.Errorf("GET got %+v, want %+v", got, c)
	}
	e.req("GET", "/v2/customers/000000000000000000000000", nil).want(t, 404)

	e.req("POST", "/v2/customers", map[string]string{"refId": "u2"}).want(t, 400)
	e.req("POST", "/v2/customers", `{"name": `).want(t, 400)
	e.req("POST", "/v2/customers", `[]`).want(t, 400)
	e.req("POST", "/v2/customers", ``).want(t, 400)

	for i := range 4 {
		e.clock.Advance(time.Second)
		e.req("POST", "/v2/customers", map[string]string{"name": "C", "refId": string(rune('a' + i))}).want(t, 201)
	}
	var list planbok.CustomerList
	e.req("GET", "/v2/customers?page=2&limit=2", nil).want(t, 200).data(t, &list)
	if list.Total != 5 || list.Page != 2 || list.Limit != 2 || len(list.Customers) != 2 {
		t.Fatalf("got %+v", list)
	}
	if list.Customers[0].RefID != "b" || list.Customers[1].RefID != "a" {
		t.Errorf("got page 2 refIds %q,%q, want b,a (newest first)", list.Customers[0].RefID, list.Customers[1].RefID)
	}
	e.req("GET", "/v2/customers?order=asc&limit=1", nil).want(t, 200).data(t, &list)
	if list.Customers[0].ID != c.ID {
		t.Errorf("order=asc: got first %s, want %s", list.Customers[0].ID, c.ID)
	}
	e.req("GET", "/v2/customers?limit=0", nil).want(t, 400)
	e.req("GET", "/v2/customers?page=x", nil).want(t, 400)
	e.req("GET", "/v2/nothing", nil).want(t, 404)
}

func TestChallenge_Validation(t *testing.T) {
	e := newEnv(t)
	c := e.onboard()
	path := "/v2/customers/" + c.ID
	cases := []struct {
		name, route string
		body        any
		status      int
		msg         string
	}{
		{"bad json", "/update-pin", `{"redirectUrl":`, 400, "Invalid JSON"},
		{"missing redirect", "/update-pin", map[string]any{}, 400, "redirectUrl is required"},
		{"relative redirect", "/update-pin", map[string]any{"redirectUrl": "/back"}, 400, "absolute"},
		{"ftp redirect", "/export-private-keys", map[string]any{"redirectUrl": "ftp://x/y"}, 400, "absolute"},
		{"wrong type", "/update-pin", map[string]any{"redirectUrl": 5}, 400, "redirectUrl"},
		{"unknown chain", "/wallet/create", map[string]any{"redirectUrl": testRedirect, "blockchains": []string{"DOGE"}}, 400, "DOGE"},
		{"no chains", "/wallet/create", map[string]any{"redirectUrl": testRedirect}, 400, "blockchains"},
		{"account type", "/wallet/create", map[string]any{"redirectUrl": testRedirect, "blockchains": []string{"ETH"}, "accountType": "sca"}, 400, "eoa"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.req("POST", path+tc.route, tc.body).want(t, tc.status)
			if !strings.Contains(r.Env.Message, tc.msg) {
				t.Errorf("got message %q, want it to mention %q", r.Env.Message, tc.msg)
			}
		})
	}
	e.req("POST", "/v2/customers/000000000000000000000000/update-pin", map[string]any{"redirectUrl": testRedirect}).want(t, 404)
	// accountType may be left out: "eoa" is the only kind.
	e.challenge(c.ID, planbok.TaskCreateWallets, "blockchains", []string{"ETH"})
}

func TestChallenge_Preconditions(t *testing.T) {
	e := newEnv(t)
	fresh := e.createCustomer()
	pinOnly := e.createCustomer()
	ch := e.challenge(pinOnly.ID, planbok.TaskInitialize)
	e.mustComplete(ch.ChallengeID, map[string]any{"pin": pin1, "recovery": nil})
	full := e.onboard()

	want := map[string]map[planbok.Task]int{
		fresh.ID: {planbok.TaskInitialize: 201, planbok.TaskRecovery: 400, planbok.TaskUpdatePIN: 400,
			planbok.TaskResetPIN: 400, planbok.TaskExportPrivateKeys: 400, planbok.TaskCreateWallets: 400},
		pinOnly.ID: {planbok.TaskInitialize: 400, planbok.TaskRecovery: 201, planbok.TaskUpdatePIN: 201,
			planbok.TaskResetPIN: 400, planbok.TaskExportPrivateKeys: 400, planbok.TaskCreateWallets: 400},
		full.ID: {planbok.TaskInitialize: 400, planbok.TaskRecovery: 201, planbok.TaskUpdatePIN: 201,
			planbok.TaskResetPIN: 201, planbok.TaskExportPrivateKeys: 201, planbok.TaskCreateWallets: 201},
	}
	for id, tasks := range want {
		for task, status := range tasks {
			r := e.req("POST", "/v2/customers/"+id+"/"+string(task),
				map[string]any{"redirectUrl": testRedirect, "blockchains": []string{"ETH-SEPOLIA"}})
			if r.Status != status {
				t.Errorf("customer %s task %s: got %d (%s), want %d", id[:6], task, r.Status, r.Env.Message, status)
			}
			if status == 400 && r.Env.Message == "" {
				t.Errorf("task %s: 400 without a message", task)
			}
		}
	}
	if got := e.customer(pinOnly.ID); !got.HasPIN || got.HasRecovery {
		t.Errorf("pin only: got hasPin %v hasRecovery %v", got.HasPIN, got.HasRecovery)
	}
	if got := e.customer(full.ID); !got.HasPIN || !got.HasRecovery {
		t.Errorf("full: got hasPin %v hasRecovery %v", got.HasPIN, got.HasRecovery)
	}
}

func TestChallenge_GetAndExpiry(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ChallengeTTL = 5 * time.Minute })
	c := e.createCustomer()
	other := e.createCustomer()
	ch := e.challenge(c.ID, planbok.TaskInitialize)
	if ch.Status != "pending" || ch.Task != planbok.TaskInitialize || len(ch.ChallengeID) != 24 {
		t.Errorf("got %+v", ch)
	}
	if want := e.srv.URL + "/gateway/challenges/" + ch.ChallengeID; ch.RedirectURL != want {
		t.Errorf("got redirectUrl %q, want %q", ch.RedirectURL, want)
	}
	if want := e.clock.Now().Add(5 * time.Minute); !ch.ExpiresAt.Equal(want) {
		t.Errorf("got expiresAt %v, want %v", ch.ExpiresAt, want)
	}
	got := e.getChallenge(c.ID, ch.ChallengeID)
	if got.Status != "pending" || got.Result != nil {
		t.Errorf("got %+v", got)
	}
	e.req("GET", "/v2/customers/"+other.ID+"/challenges/"+ch.ChallengeID, nil).want(t, 404)

	e.clock.Advance(5*time.Minute - time.Millisecond)
	e.getChallenge(c.ID, ch.ChallengeID)
	e.clock.Advance(time.Millisecond)
	e.req("GET", "/v2/customers/"+c.ID+"/challenges/"+ch.ChallengeID, nil).want(t, 404)
	_, err := e.complete(ch.ChallengeID, map[string]any{"pin": pin1})
	wantAttempts(t, err, 404, -1)

	// A verified challenge is pruned too, after its lifetime.
	ch2 := e.challenge(c.ID, planbok.TaskInitialize)
	e.mustComplete(ch2.ChallengeID, map[string]any{"pin": pin1, "recovery": questions()})
	if got := e.getChallenge(c.ID, ch2.ChallengeID); got.Status != "verified" || string(got.Result) != "{}" {
		t.Errorf("got %+v result %s", got, got.Result)
	}
	e.clock.Advance(6 * time.Minute)
	e.req("GET", "/v2/customers/"+c.ID+"/challenges/"+ch2.ChallengeID, nil).want(t, 404)
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"name": "Ada", "refId": "u1", "idempotencyKey": "k-cust"}
	var c1, c2 planbok.Customer
	e.req("POST", "/v2/customers", body).want(t, 201).data(t, &c1)
	e.clock.Advance(time.Second)
	e.req("POST", "/v2/customers", map[string]any{"refId": "u1", "idempotencyKey": "k-cust", "name": "Ada"}).want(t, 201).data(t, &c2)
	if c1 != c2 {
		t.Errorf("replay: got %+v, want %+v", c2, c1)
	}
	var list planbok.CustomerList
	e.req("GET", "/v2/customers", nil).want(t, 200).data(t, &list)
	if list.Total != 1 {
		t.Errorf("got %d customers, want 1", list.Total)
	}
	e.req("POST", "/v2/customers", map[string]any{"name": "Bob", "idempotencyKey": "k-cust"}).want(t, 409)

	c := e.onboard()
	req := map[string]any{"redirectUrl": testRedirect, "idempotencyKey": "k-ch"}
	var a, b planbok.Challenge
	e.req("POST", "/v2/customers/"+c.ID+"/update-pin", req).want(t, 201).data(t, &a)
	e.req("POST", "/v2/customers/"+c.ID+"/update-pin", req).want(t, 201).data(t, &b)
	if a.ChallengeID != b.ChallengeID {
		t.Errorf("got challenges %s and %s, want the same", a.ChallengeID, b.ChallengeID)
	}
	e.req("POST", "/v2/customers/"+c.ID+"/update-pin",
		map[string]any{"redirectUrl": "https://app.example/other", "idempotencyKey": "k-ch"}).want(t, 409)
	e.req("POST", "/v2/customers/"+c.ID+"/export-private-keys", req).want(t, 409)
	// A refused request is not remembered: fixed, the same key works.
	e.req("POST", "/v2/customers/"+c.ID+"/recovery", map[string]any{"idempotencyKey": "k-fix"}).want(t, 400)
	e.req("POST", "/v2/customers/"+c.ID+"/recovery", map[string]any{"redirectUrl": testRedirect, "idempotencyKey": "k-fix"}).want(t, 201)
	e.req("POST", "/v2/customers", map[string]any{"name": "x", "idempotencyKey": 7}).want(t, 400)
}

func TestRateLimit(t *testing.T) {
	t.Run("on", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.RateLimit = true })
		for i := range 20 {
			e.req("GET", "/v2/customers", nil).want(t, 200)
			_ = i
		}
		r := e.req("GET", "/v2/customers", nil).want(t, 429)
		for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "Retry-After"} {
			if r.Header.Get(h) != "" {
				t.Errorf("got header %s, Planbok sends none", h)
			}
		}
		for range 10 {
			e.req("POST", "/v2/customers", map[string]string{"name": "x"}).want(t, 201)
		}
		e.req("POST", "/v2/customers", map[string]string{"name": "x"}).want(t, 429)
		// Helpers are not limited.
		e.req("GET", "/sandbox/v1/faults", nil).want(t, 200)
		e.clock.Advance(time.Second)
		e.req("GET", "/v2/customers", nil).want(t, 200)
		e.req("POST", "/v2/customers", map[string]string{"name": "x"}).want(t, 201)
	})
	t.Run("off", func(t *testing.T) {
		e := newEnv(t)
		for range 50 {
			e.req("GET", "/v2/customers", nil).want(t, 200)
		}
	})
}

func TestFaults(t *testing.T) {
	e := newEnv(t)
	e.req("PUT", "/sandbox/v1/faults", map[string]any{"apiErrorRate": 1.5}).want(t, 400)
	e.req("PUT", "/sandbox/v1/faults", map[string]any{"apiLatencyMs": -1}).want(t, 400)
	e.req("PUT", "/sandbox/v1/faults", map[string]any{"bogus": 1}).want(t, 400)

	ctx := t.Context()
	if err := e.helper.SetFaults(ctx, Faults{APIErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		r := e.req("GET", "/v2/customers", nil)
		if r.Status != 500 && r.Status != 503 {
			t.Fatalf("got %d, want 500 or 503", r.Status)
		}
	}
	e.req("GET", "/sandbox/v1/faults", nil).want(t, 200) // helpers are spared
	if err := e.helper.SetFaults(ctx, Faults{RateLimitRate: 1}); err != nil {
		t.Fatal(err)
	}
	e.req("POST", "/v2/customers", map[string]string{"name": "x"}).want(t, 429)
	if err := e.helper.SetFaults(ctx, Faults{APILatencyMs: 50}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.req("GET", "/v2/customers", nil).want(t, 200)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("got %v, want at least 50ms of latency", d)
	}
	e.req("PUT", "/sandbox/v1/faults", map[string]any{}).want(t, 200)
	if f := e.sb.currentFaults(); f != (Faults{}) {
		t.Errorf("{} left faults %+v", f)
	}
	e.req("GET", "/v2/customers", nil).want(t, 200)
}

func TestWallets_List(t *testing.T) {
	e := newEnv(t)
	a, b, other := e.onboard(), e.onboard(), e.onboard()
	wa := e.createWallets(a.ID, pin1, "ETH-SEPOLIA", "SOL-DEVNET")
	wb := e.createWallets(b.ID, pin1, "BASE-SEPOLIA")
	e.createWallets(other.ID, pin1, "ETH")
	var got []planbok.Wallet
	e.req("GET", "/v2/wallets?customerIds="+a.ID+","+b.ID, nil).want(t, 200).data(t, &got)
	want := append(wa, wb...)
	if len(got) != len(want) {
		t.Fatalf("got %d wallets, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("wallet %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	e.req("GET", "/v2/wallets?customerIds=000000000000000000000000", nil).want(t, 200).data(t, &got)
	if len(got) != 0 {
		t.Errorf("got %d wallets for an unknown customer", len(got))
	}
	if strings.TrimSpace(string(e.req("GET", "/v2/wallets?customerIds=000000000000000000000000", nil).Env.Data)) != "[]" {
		t.Error("want data [] for no wallets")
	}
}
