package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox"
	"github.com/custodyflows/custodyflows/store"
)

// The whole product, over HTTP: every kind from start to completed, in the
// order a real customer meets them, with the stored security status and the
// app events checked after each step.
func TestDev_EveryKindCompletes(t *testing.T) {
	everyKind(t, startStack(t))
}

// The same with every Planbok webhook dropped: the flows' own polling
// alone finds each outcome.
func TestDev_EveryKindCompletesByPollingAlone(t *testing.T) {
	s := startStack(t)
	if err := s.helper.SetFaults(context.Background(), sandbox.Faults{WebhookDropRate: 1}); err != nil {
		t.Fatal(err)
	}
	everyKind(t, s)
}

func everyKind(t *testing.T, s *stack) {
	cust := s.api.createCustomer("Ada Lovelace", "user-every-kind")
	if cust.Security.HasPIN || cust.Security.HasRecovery || cust.Security.CanTransact || cust.ActiveFlow != nil {
		t.Fatalf("new customer: got %+v, want no PIN, no recovery, no active flow", cust)
	}

	// Wallets are refused before PIN and recovery: pin_required first.
	_, r := s.api.start(cust.ID, flow.KindCreateWallets, map[string]any{"blockchains": []string{"ETH-SEPOLIA"}}, http.StatusConflict)
	mustEqual(t, "wallets before PIN", r.errorCode(), "pin_required")

	// initialize: PIN + security questions.
	f, _ := s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
	mustEqual(t, "status", f.Status, flow.StatusAwaitingUser)
	if f.GatewayURL == "" || f.ChallengeID == "" || f.ExpiresAt == nil {
		t.Fatalf("started flow: got %+v, want gatewayUrl, challengeId and expiresAt", f)
	}
	if got := s.api.customer(cust.ID).ActiveFlow; got == nil || got.ID != f.ID {
		t.Fatalf("activeFlow: got %+v, want flow %s", got, f.ID)
	}
	s.complete(f.ChallengeID, map[string]any{"pin": testPIN, "recovery": securityQuestions(testAnswers...)})
	done := s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	if done.CompletedAt == nil {
		t.Fatalf("completed flow has no completedAt: %+v", done)
	}
	sec := s.api.customer(cust.ID).Security
	if !sec.HasPIN || !sec.HasRecovery || !sec.CanTransact || sec.PINSetAt == nil || sec.RecoverySetAt == nil {
		t.Fatalf("after initialize: got %+v, want PIN and recovery set", sec)
	}
	ev := s.events.waitFor(flow.EventPINSetup, cust.ID, f.ID, 20*time.Second)
	mustEqual(t, "event status", ev.Event.Data.Status, flow.StatusCompleted)
	if !ev.Event.Data.Security.HasPIN {
		t.Fatalf("pin_setup event security: got %+v, want hasPin", ev.Event.Data.Security)
	}

	// initialize again is refused.
	_, r = s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusConflict)
	mustEqual(t, "initialize twice", r.errorCode(), "pin_already_set")

	// recovery: re-configure to email.
	f, _ = s.api.start(cust.ID, flow.KindRecovery, nil, http.StatusCreated)
	s.complete(f.ChallengeID, map[string]any{"pin": testPIN, "recovery": map[string]any{"method": "email", "email": "ada@example.com"}})
	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	s.events.waitFor(flow.EventRecoverySetup, cust.ID, f.ID, 20*time.Second)

	// update_pin.
	const newPIN = "654321"
	f, _ = s.api.start(cust.ID, flow.KindUpdatePIN, nil, http.StatusCreated)
	s.complete(f.ChallengeID, map[string]any{"currentPin": testPIN, "newPin": newPIN})
	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	if s.api.customer(cust.ID).Security.PINUpdatedAt == nil {
		t.Fatal("pinUpdatedAt not set after update_pin")
	}
	s.events.waitFor(flow.EventPINUpdated, cust.ID, f.ID, 20*time.Second)

	// create_wallets on an EVM and a Solana chain.
	f, _ = s.api.start(cust.ID, flow.KindCreateWallets, map[string]any{"blockchains": []string{"ETH-SEPOLIA", "SOL-DEVNET"}}, http.StatusCreated)
	s.complete(f.ChallengeID, map[string]any{"pin": newPIN})
	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	s.events.waitFor(flow.EventWalletsCreated, cust.ID, f.ID, 20*time.Second)
	wallets, err := s.planbok.ListWallets(context.Background(), planbok.ListWalletsParams{CustomerIDs: []string{cust.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if len(wallets) != 2 {
		t.Fatalf("wallets: got %d, want 2", len(wallets))
	}

	// export_private_keys: the CSV reaches the "user" (the sandbox helper),
	// and its addresses are the wallets' addresses.
	f, _ = s.api.start(cust.ID, flow.KindExportPrivateKeys, nil, http.StatusCreated)
	data := s.complete(f.ChallengeID, map[string]any{"pin": newPIN})
	exported := s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	privateKeys := assertCSVMatchesWallets(t, data, wallets)
	raw, _ := json.Marshal(exported)
	for _, secret := range append(privateKeys, wallets[0].Address) {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("the flow leaks export content %q: %s", secret, raw)
		}
	}
	if s.api.customer(cust.ID).Security.LastExportAt == nil {
		t.Fatal("lastExportAt not set after export")
	}
	s.events.waitFor(flow.EventPrivateKeysExported, cust.ID, f.ID, 20*time.Second)

	// reset_pin through the emailed code; afterwards the old PIN fails and
	// the keys are the same.
	f, _ = s.api.start(cust.ID, flow.KindResetPIN, nil, http.StatusCreated)
	code, err := s.helper.EmailCode(context.Background(), cust.ID)
	if err != nil {
		t.Fatal(err)
	}
	const resetPIN = "246810"
	s.complete(f.ChallengeID, map[string]any{"recovery": map[string]any{"emailCode": code}, "newPin": resetPIN})
	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	if s.api.customer(cust.ID).Security.LastPINResetAt == nil {
		t.Fatal("lastPinResetAt not set after reset_pin")
	}
	s.events.waitFor(flow.EventPINReset, cust.ID, f.ID, 20*time.Second)

	f, _ = s.api.start(cust.ID, flow.KindExportPrivateKeys, nil, http.StatusCreated)
	if _, err := s.helper.Complete(context.Background(), f.ChallengeID, map[string]any{"pin": newPIN}); err == nil {
		t.Fatal("export with the PIN from before the reset: got success, want a wrong-PIN error")
	}
	data = s.complete(f.ChallengeID, map[string]any{"pin": resetPIN})
	assertCSVMatchesWallets(t, data, wallets)
	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)

	// The flow list has all of them, newest first.
	r = s.api.do(http.MethodGet, "/v1/customers/"+cust.ID+"/flows", nil)
	var list struct{ Flows []flow.Flow }
	r.decode(t, &list)
	if len(list.Flows) != 7 {
		t.Fatalf("flows listed: got %d, want 7", len(list.Flows))
	}
	if !sort.SliceIsSorted(list.Flows, func(i, j int) bool { return list.Flows[i].CreatedAt.After(list.Flows[j].CreatedAt) }) {
		t.Fatal("flows are not newest first")
	}
}

// assertCSVMatchesWallets checks the exported CSV against the wallets and
// returns its private keys.
func assertCSVMatchesWallets(t *testing.T, data json.RawMessage, wallets []planbok.Wallet) []string {
	t.Helper()
	var out struct{ CSV string }
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("export result %s: %v", data, err)
	}
	rows, err := csv.NewReader(strings.NewReader(out.CSV)).ReadAll()
	if err != nil {
		t.Fatalf("export CSV: %v", err)
	}
	mustEqual(t, "CSV header", strings.Join(rows[0], ","), "Address,Private Key,Blockchain,Derivation Path,Key Type")
	got := map[string]string{}
	var privateKeys []string
	for _, row := range rows[1:] {
		got[row[0]] = row[2]
		privateKeys = append(privateKeys, row[1])
	}
	for _, w := range wallets {
		if got[w.Address] != w.Blockchain {
			t.Fatalf("CSV rows %v lack wallet %s on %s", rows[1:], w.Address, w.Blockchain)
		}
	}
	mustEqual(t, "CSV rows", len(rows)-1, len(wallets))
	return privateKeys
}

// With every webhook duplicated, a flow acts once: one event to the app.
func TestDev_WebhooksDuplicated(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()

	if err := s.helper.SetFaults(ctx, sandbox.Faults{WebhookDuplicateRate: 1}); err != nil {
		t.Fatal(err)
	}
	cust := s.api.createCustomer("Twice Webhooks", "user-duplicates")
	f, _ := s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
	s.complete(f.ChallengeID, map[string]any{"pin": testPIN, "recovery": securityQuestions(testAnswers...)})
	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	s.events.waitFor(flow.EventPINSetup, cust.ID, f.ID, 20*time.Second)
	s.webhooksHandled("user-duplicates-marker")
	if _, distinct := s.events.count(flow.EventPINSetup, cust.ID); distinct != 1 {
		t.Fatalf("pin_setup events with distinct ids: got %d, want 1", distinct)
	}
	if err := s.helper.SetFaults(ctx, sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
}

// A challenge nobody completes expires with the challenge's lifetime.
func TestDev_ChallengeExpires(t *testing.T) {
	s := startStack(t, withTTL(3*time.Second))
	cust := s.api.createCustomer("Slow User", "user-expiry")
	f, _ := s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
	got := s.api.waitFlow(f.ID, flow.StatusExpired, 30*time.Second)
	if got.Error == nil || got.Error.Code != flow.CodeChallengeExpired {
		t.Fatalf("expired flow error: got %+v, want code %s", got.Error, flow.CodeChallengeExpired)
	}
	s.events.waitFor(flow.EventFlowExpired, cust.ID, f.ID, 20*time.Second)
	// The slot is free again.
	s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
}

// Cancel ends a waiting flow; a second cancel is refused.
func TestDev_Cancel(t *testing.T) {
	s := startStack(t)
	cust := s.api.createCustomer("Changed Mind", "user-cancel")
	f, _ := s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
	r := s.api.do(http.MethodPost, "/v1/flows/"+f.ID+"/cancel", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("cancel: got %d %s, want 200", r.Status, r.Body)
	}
	var got flow.Flow
	r.decode(t, &got)
	mustEqual(t, "cancelled status", got.Status, flow.StatusCancelled)
	r = s.api.do(http.MethodPost, "/v1/flows/"+f.ID+"/cancel", nil)
	mustEqual(t, "second cancel", r.Status, http.StatusConflict)
	mustEqual(t, "second cancel code", r.errorCode(), "flow_finished")
	s.events.waitFor(flow.EventFlowCancelled, cust.ID, f.ID, 20*time.Second)
	// A late completion of the cancelled challenge changes nothing (Planbok
	// knows nothing of the cancel, so it accepts the completion).
	if _, err := s.helper.Complete(context.Background(), f.ChallengeID, map[string]any{"pin": testPIN, "recovery": nil}); err != nil {
		t.Fatalf("late completion at the sandbox: got %v, want nil", err)
	}
	s.webhooksHandled("user-cancel-marker")
	mustEqual(t, "status after late completion", s.api.flow(f.ID).Status, flow.StatusCancelled)
	r = s.api.do(http.MethodPost, "/v1/flows/flow_aaaaaaaaaaaaaaaaaaaaaaaa/cancel", nil)
	mustEqual(t, "cancel unknown flow", r.errorCode(), "flow_not_found")
}

// Five wrong PINs lock the customer; only a PIN reset unlocks.
func TestDev_LockoutAndReset(t *testing.T) {
	s := startStack(t)
	cust := s.onboard("user-lockout")
	f, _ := s.api.start(cust.ID, flow.KindUpdatePIN, nil, http.StatusCreated)
	for want := 4; want >= 0; want-- {
		_, err := s.helper.Complete(context.Background(), f.ChallengeID, map[string]any{"currentPin": "000000", "newPin": "111111"})
		var herr *sandbox.HelperError
		if !asHelperError(err, &herr) || herr.Status != http.StatusUnprocessableEntity {
			t.Fatalf("wrong PIN: got %v, want 422", err)
		}
		if got, ok := herr.AttemptsRemaining(); !ok || got != want {
			t.Fatalf("wrong PIN: got %v, want 422 with %d attempts remaining", err, want)
		}
	}
	failed := s.api.waitFlow(f.ID, flow.StatusFailed, 30*time.Second)
	mustEqual(t, "failed code", failed.Error.Code, flow.CodeChallengeFailed)
	s.events.waitFor(flow.EventLockedOut, cust.ID, "", 20*time.Second)
	if sec := s.api.customer(cust.ID).Security; !sec.LockedOut || sec.CanTransact {
		t.Fatalf("after five wrong PINs: got %+v, want locked out", sec)
	}
	_, r := s.api.start(cust.ID, flow.KindUpdatePIN, nil, http.StatusConflict)
	mustEqual(t, "update while locked", r.errorCode(), "customer_locked_out")
	_, r = s.api.start(cust.ID, flow.KindExportPrivateKeys, nil, http.StatusConflict)
	mustEqual(t, "export while locked", r.errorCode(), "customer_locked_out")

	f, _ = s.api.start(cust.ID, flow.KindResetPIN, nil, http.StatusCreated)
	s.complete(f.ChallengeID, map[string]any{"recovery": map[string]any{"answers": testAnswers}, "newPin": "135790"})
	s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
	if sec := s.api.customer(cust.ID).Security; sec.LockedOut || !sec.CanTransact {
		t.Fatalf("after reset: got %+v, want unlocked", sec)
	}
}

// Idempotent starts, one active flow per customer, and racing starts.
func TestDev_StartRules(t *testing.T) {
	s := startStack(t)
	cust := s.onboard("user-rules")

	body := map[string]any{"idempotencyKey": "req-1"}
	first, _ := s.api.start(cust.ID, flow.KindUpdatePIN, body, http.StatusCreated)
	again, _ := s.api.start(cust.ID, flow.KindUpdatePIN, map[string]any{"idempotencyKey": "req-1"}, http.StatusOK)
	mustEqual(t, "replayed flow", again.ID, first.ID)
	_, r := s.api.start(cust.ID, flow.KindUpdatePIN, map[string]any{"idempotencyKey": "req-1", "redirectUrl": "http://localhost:3000/other"}, http.StatusConflict)
	mustEqual(t, "reused key", r.errorCode(), "idempotency_key_reused")

	// Same kind while active: the same flow; another kind: flow_in_progress.
	same, _ := s.api.start(cust.ID, flow.KindUpdatePIN, nil, http.StatusOK)
	mustEqual(t, "same kind while active", same.ID, first.ID)
	_, r = s.api.start(cust.ID, flow.KindExportPrivateKeys, nil, http.StatusConflict)
	mustEqual(t, "other kind", r.errorCode(), "flow_in_progress")
	var conflict struct {
		Error struct {
			ActiveFlowID string `json:"activeFlowId"`
		} `json:"error"`
	}
	r.decode(t, &conflict)
	mustEqual(t, "activeFlowId", conflict.Error.ActiveFlowID, first.ID)

	// The replay still answers after the flow ended.
	s.api.do(http.MethodPost, "/v1/flows/"+first.ID+"/cancel", nil)
	replay, _ := s.api.start(cust.ID, flow.KindUpdatePIN, map[string]any{"idempotencyKey": "req-1"}, http.StatusOK)
	mustEqual(t, "replay after the end", replay.Status, flow.StatusCancelled)

	// Racing starts for a fresh customer: exactly one flow is created.
	racer := s.api.createCustomer("Racer", "user-race")
	var (
		mu      sync.Mutex
		created int
		ids     = map[string]bool{}
		wg      sync.WaitGroup
	)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.api.do(http.MethodPost, "/v1/customers/"+racer.ID+"/initialize", map[string]any{"redirectUrl": testRedirect})
			mu.Lock()
			defer mu.Unlock()
			switch r.Status {
			case http.StatusCreated:
				created++
				fallthrough
			case http.StatusOK:
				var f flow.Flow
				if err := json.Unmarshal(r.Body, &f); err != nil {
					t.Errorf("racing start: decode %s: %v", r.Body, err)
				}
				ids[f.ID] = true
			default:
				t.Errorf("racing start: got %d %s, want 201 or 200", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	if created != 1 || len(ids) != 1 {
		t.Fatalf("racing starts: got %d created and %d distinct flows, want 1 and 1", created, len(ids))
	}
}

func asHelperError(err error, target **sandbox.HelperError) bool {
	he, ok := err.(*sandbox.HelperError)
	if ok {
		*target = he
	}
	return ok
}

// While Planbok keeps failing, a start answers 502 planbok_unavailable with
// Retry-After, and once it recovers the same start succeeds.
func TestDev_PlanbokUnavailable(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	cust := s.api.createCustomer("Unlucky", "user-planbok-down")
	if err := s.helper.SetFaults(ctx, sandbox.Faults{APIErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	_, r := s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusBadGateway)
	mustEqual(t, "code", r.errorCode(), "planbok_unavailable")
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("502 without Retry-After")
	}
	if err := s.helper.SetFaults(ctx, sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
	s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
}

// Planbok sends customer.created as soon as it has the customer, often
// before POST /v1/customers has stored it; the intake waits for the row,
// so a customer created through the API runs no customer workflow (a
// start, a signal, a Planbok read and an idle timer) until it starts a
// flow. Concurrent creates race now and then; one stored late races every
// time.
func TestDev_CustomerCreatedThroughTheAPIWakesNoWorkflow(t *testing.T) {
	s := startStack(t)
	// Created at once, as an app's sign-ups come: the process is busy, so
	// Planbok's events overtake the creates that caused them.
	ids := make([]string, 16)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.api.do(http.MethodPost, "/v1/customers", map[string]string{"name": "New Customer", "refId": fmt.Sprintf("user-new-%d", i)})
			var c flow.Customer
			if err := json.Unmarshal(r.Body, &c); err != nil || r.Status != http.StatusCreated {
				t.Errorf("create customer %d: got %d %s, want 201", i, r.Status, r.Body)
			}
			ids[i] = c.ID
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// And one whose create is slow to store it, every time: created at
	// Planbok, stored 300 ms later as POST /v1/customers stores it.
	slow, err := s.planbok.CreateCustomer(context.Background(), planbok.CreateCustomerParams{Name: "Slow Store", RefID: "user-new-slow"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := s.Store.UpsertCustomer(context.Background(), &store.Customer{ID: slow.ID, Name: slow.Name, RefID: slow.RefID, CreatedAt: slow.CreatedAt}); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, slow.ID)
	s.webhooksHandled("user-new-marker")
	for _, id := range ids {
		_, err := s.Client.DescribeWorkflowExecution(context.Background(), flow.CustomerWorkflowID(id), "")
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) {
			t.Errorf("customer %s: describe its workflow: got %v, want not found", id, err)
		}
	}
}

// webhooksHandled waits until every webhook the sandbox had queued so far
// was delivered and handled by the intake. The sandbox sends its outbox
// one row at a time, oldest first, and a duplicated row twice before the
// next; the intake records and signals before it answers. So once the
// customer.created webhook of a new marker customer has started that
// customer's workflow, every earlier webhook has been handled. The marker
// is created at Planbok directly, behind custodyflows' back, so the
// intake starts its workflow once api.DefaultCustomerCreatedGrace has
// passed; for a customer the app database holds, customer.created wakes
// nothing.
func (s *stack) webhooksHandled(markerRefID string) {
	s.t.Helper()
	marker, err := s.planbok.CreateCustomer(context.Background(), planbok.CreateCustomerParams{Name: "Webhook Marker", RefID: markerRefID})
	if err != nil {
		s.t.Fatalf("create the marker customer at Planbok: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.Client.DescribeWorkflowExecution(context.Background(), flow.CustomerWorkflowID(marker.ID), "")
		if err == nil {
			return
		}
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) {
			s.t.Fatalf("describe the marker customer's workflow: %v", err)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("marker customer's webhook: not handled after 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A flow's end runs as local activities in the workflow task that ends it,
// and that task is retried when events arrive while it runs: here the
// first poll's result, since each challenge is completed as soon as it
// exists. Each end is still one audit row and one event id.
func TestDev_FlowEndOnceWhenItsTaskIsRetried(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	retried := 0
	for i := range 6 {
		cust := s.api.createCustomer("Quick", fmt.Sprintf("user-quick-%d", i))
		f, _ := s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
		s.complete(f.ChallengeID, map[string]any{"pin": testPIN, "recovery": securityQuestions(testAnswers...)})
		s.api.waitFlow(f.ID, flow.StatusCompleted, 30*time.Second)
		if err := s.Client.GetWorkflow(ctx, f.ID, "").Get(ctx, nil); err != nil {
			t.Fatalf("flow workflow %s: %v", f.ID, err)
		}
		it := s.Client.GetWorkflowHistory(ctx, f.ID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED {
				retried++
			}
		}
		rows, err := s.Store.FindAudit(ctx, store.AuditFilter{FlowID: f.ID})
		if err != nil {
			t.Fatal(err)
		}
		ends := 0
		for _, r := range rows {
			if r.Action == "flow."+string(flow.KindInitialize) {
				ends++
			}
		}
		mustEqual(t, "audit rows of the flow's end", ends, 1)
		s.events.waitFor(flow.EventPINSetup, cust.ID, f.ID, 20*time.Second)
		if _, distinct := s.events.count(flow.EventPINSetup, cust.ID); distinct != 1 {
			t.Errorf("pin_setup events with distinct ids: got %d, want 1", distinct)
		}
	}
	t.Logf("%d of 6 flows had a workflow task retried", retried)
}
