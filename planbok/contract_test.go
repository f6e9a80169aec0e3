package planbok_test

// Contract tests: the real *planbok.Client against the offline Planbok
// (package sandbox) behind an httptest server, so that the client and the
// simulator cannot drift apart. They live in the external test package
// because sandbox imports planbok.

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox"
	"github.com/custodyflows/custodyflows/sandbox/keys"
)

const (
	ctAPIKey   = "pk_contract_S3CRET-key-9876543210"
	ctSecret   = "contract-webhook-secret"
	ctRedirect = "https://app.example/return?flow=contract"
	ctPIN1     = "123456"
	ctPIN2     = "654321"
	ctPIN3     = "111222"
	ctEmail    = "ada@example.com"
)

var ctAnswers = []string{"Rex", "Lisbon", "St. Mary's"}

var hex24 = regexp.MustCompile(`^[0-9a-f]{24}$`)

// ctClock is the sandbox's injected clock; tests move it.
type ctClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *ctClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *ctClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// contract is a sandbox behind an httptest server, a fake clock, the real
// client and the sandbox's helper client.
type contract struct {
	t      *testing.T
	clock  *ctClock
	srv    *httptest.Server
	opts   sandbox.Options
	client *planbok.Client
	helper *sandbox.HelperClient
}

// newContract starts a sandbox (in-memory state, light KDF, fake clock)
// whose BaseURL is its own server's URL.
func newContract(t *testing.T, mods ...func(*sandbox.Options)) *contract {
	t.Helper()
	// Millisecond-aligned, like the sandbox's timestamps.
	clock := &ctClock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	srv := httptest.NewUnstartedServer(nil)
	opts := sandbox.Options{
		APIKey:           ctAPIKey,
		BaseURL:          "http://" + srv.Listener.Addr().String(),
		KDF:              keys.LightParams,
		Clock:            clock.Now,
		WebhookRetryPoll: 10 * time.Millisecond,
	}
	for _, m := range mods {
		m(&opts)
	}
	sb, err := sandbox.New(opts)
	if err != nil {
		srv.Listener.Close()
		t.Fatalf("sandbox.New: %v", err)
	}
	srv.Config.Handler = sb
	srv.Start()
	t.Cleanup(func() {
		srv.Close() // the server first: the sandbox must outlive its requests
		if err := sb.Close(); err != nil {
			t.Errorf("sandbox Close: %v", err)
		}
	})
	if srv.URL != opts.BaseURL {
		t.Fatalf("got server URL %q, want %q", srv.URL, opts.BaseURL)
	}
	return &contract{
		t:      t,
		clock:  clock,
		srv:    srv,
		opts:   opts,
		client: planbok.New(srv.URL, ctAPIKey, planbok.WithHTTPClient(srv.Client())),
		helper: sandbox.NewHelperClient(srv.URL, ctAPIKey, srv.Client()),
	}
}

// ttl is the sandbox's challenge lifetime.
func (c *contract) ttl() time.Duration {
	if c.opts.ChallengeTTL > 0 {
		return c.opts.ChallengeTTL
	}
	return sandbox.DefaultChallengeTTL
}

func (c *contract) createCustomer(name, refID string) *planbok.Customer {
	c.t.Helper()
	cu, err := c.client.CreateCustomer(c.t.Context(), planbok.CreateCustomerParams{Name: name, RefID: refID})
	if err != nil {
		c.t.Fatalf("CreateCustomer(%q): %v", name, err)
	}
	return cu
}

func (c *contract) getCustomer(id string) *planbok.Customer {
	c.t.Helper()
	cu, err := c.client.GetCustomer(c.t.Context(), id)
	if err != nil {
		c.t.Fatalf("GetCustomer(%s): %v", id, err)
	}
	return cu
}

// newChallenge creates a challenge (ctRedirect unless p says otherwise)
// and checks the contract of a fresh one.
func (c *contract) newChallenge(customerID string, task planbok.Task, p planbok.ChallengeParams) *planbok.Challenge {
	c.t.Helper()
	if p.RedirectURL == "" {
		p.RedirectURL = ctRedirect
	}
	ch, err := c.client.CreateChallenge(c.t.Context(), customerID, task, p)
	if err != nil {
		c.t.Fatalf("CreateChallenge(%s): %v", task, err)
	}
	c.checkFresh(ch, task)
	return ch
}

// checkFresh checks a just-created challenge: a Gateway URL under the
// sandbox, pending, the task, expiring a TTL from now.
func (c *contract) checkFresh(ch *planbok.Challenge, task planbok.Task) {
	c.t.Helper()
	if !hex24.MatchString(ch.ChallengeID) {
		c.t.Errorf("%s: got challengeId %q, want 24 hex characters", task, ch.ChallengeID)
	}
	if want := c.srv.URL + "/gateway/challenges/" + ch.ChallengeID; ch.RedirectURL != want {
		c.t.Errorf("%s: got redirectUrl %q, want the Gateway URL %q", task, ch.RedirectURL, want)
	}
	if ch.Status != planbok.ChallengePending {
		c.t.Errorf("%s: got status %q, want %q", task, ch.Status, planbok.ChallengePending)
	}
	if ch.Task != task {
		c.t.Errorf("got task %q, want %q", ch.Task, task)
	}
	if want := c.clock.Now().Add(c.ttl()); !ch.ExpiresAt.Equal(want) {
		c.t.Errorf("%s: got expiresAt %v, want now+TTL %v", task, ch.ExpiresAt, want)
	}
}

func (c *contract) getChallenge(customerID, challengeID string) *planbok.Challenge {
	c.t.Helper()
	ch, err := c.client.GetChallenge(c.t.Context(), customerID, challengeID)
	if err != nil {
		c.t.Fatalf("GetChallenge(%s): %v", challengeID, err)
	}
	return ch
}

// complete plays the user's part of a challenge through the helper.
func (c *contract) complete(challengeID string, in sandbox.CompleteInput) completed {
	c.t.Helper()
	raw, err := c.helper.Complete(c.t.Context(), challengeID, in)
	if err != nil {
		c.t.Fatalf("complete %s: %v", challengeID, err)
	}
	var out completed
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("decode completion: %v: %s", err, raw)
	}
	return out
}

// completed is the helper's answer: the challenge, plus an export's CSV.
type completed struct {
	planbok.Challenge
	CSV string `json:"csv"`
}

// apiError returns err as a *planbok.Error with the status and
// retryability, failing the test otherwise.
func apiError(t *testing.T, err error, status int, retryable bool) *planbok.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want a *planbok.Error with status %d", status)
	}
	var pe *planbok.Error
	if !errors.As(err, &pe) {
		t.Fatalf("got error %T %v, want a *planbok.Error", err, err)
	}
	if pe.StatusCode != status {
		t.Fatalf("got status %d (%v), want %d", pe.StatusCode, err, status)
	}
	if got := pe.Retryable(); got != retryable {
		t.Errorf("got Retryable() %v for %v, want %v", got, err, retryable)
	}
	if pe.Message == "" {
		t.Errorf("got an empty Message for %v, want Planbok's message", err)
	}
	return pe
}

func questions() *sandbox.RecoveryInput {
	return &sandbox.RecoveryInput{Method: "security_questions", Answers: ctAnswers}
}

// onboard creates a customer with ctPIN1 and recovery.
func (c *contract) onboard(rec *sandbox.RecoveryInput) *planbok.Customer {
	c.t.Helper()
	cu := c.createCustomer("Ada", "user-onboard")
	ch := c.newChallenge(cu.ID, planbok.TaskInitialize, planbok.ChallengeParams{})
	c.complete(ch.ChallengeID, sandbox.CompleteInput{PIN: ctPIN1, Recovery: rec})
	return c.getCustomer(cu.ID)
}

func TestContract_CreateCustomer(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	cu := c.createCustomer("Ada Lovelace", "user-42")
	if !hex24.MatchString(cu.ID) {
		t.Errorf("got id %q, want 24 hex characters", cu.ID)
	}
	now := c.clock.Now()
	checks := []struct {
		field     string
		got, want any
	}{
		{"name", cu.Name, "Ada Lovelace"},
		{"refId", cu.RefID, "user-42"},
		{"custodyType", cu.CustodyType, sandbox.CustodyType},
		{"status", cu.Status, planbok.CustomerActive},
		{"locked", cu.Locked(), false},
		{"hasPin", cu.HasPIN, false},
		{"hasRecovery", cu.HasRecovery, false},
		{"createdAt", cu.CreatedAt.Equal(now), true},
		{"updatedAt", cu.UpdatedAt.Equal(now), true},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %v, want %v", ck.field, ck.got, ck.want)
		}
	}

	// name is required: a 400, not retryable.
	_, err := c.client.CreateCustomer(t.Context(), planbok.CreateCustomerParams{Name: "  ", RefID: "x"})
	apiError(t, err, http.StatusBadRequest, false)
}

func TestContract_CreateCustomerIdempotencyReplay(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	ctx := t.Context()
	p := planbok.CreateCustomerParams{Name: "Ada", RefID: "user-1", IdempotencyKey: "create-user-1"}
	first, err := c.client.CreateCustomer(ctx, p)
	if err != nil {
		t.Fatalf("first CreateCustomer: %v", err)
	}
	c.clock.Advance(time.Minute) // a replay returns the first answer, timestamps included
	again, err := c.client.CreateCustomer(ctx, p)
	if err != nil {
		t.Fatalf("replayed CreateCustomer: %v", err)
	}
	if again.ID != first.ID {
		t.Errorf("got id %s on replay, want the first id %s", again.ID, first.ID)
	}
	if !again.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("got createdAt %v on replay, want %v", again.CreatedAt, first.CreatedAt)
	}
	list, err := c.client.ListCustomers(ctx, planbok.ListCustomersParams{})
	if err != nil {
		t.Fatalf("ListCustomers: %v", err)
	}
	if list.Total != 1 || len(list.Customers) != 1 {
		t.Errorf("got %d customers (total %d), want 1", len(list.Customers), list.Total)
	}

	// A refused request is not stored: the corrected retry under the same
	// key goes through.
	bad := planbok.CreateCustomerParams{Name: "", RefID: "user-2", IdempotencyKey: "create-user-2"}
	_, err = c.client.CreateCustomer(ctx, bad)
	apiError(t, err, http.StatusBadRequest, false)
	bad.Name = "Grace"
	fixed, err := c.client.CreateCustomer(ctx, bad)
	if err != nil {
		t.Fatalf("corrected retry under the same key: %v", err)
	}
	if fixed.ID == first.ID || fixed.Name != "Grace" {
		t.Errorf("got customer %s %q, want a new customer named Grace", fixed.ID, fixed.Name)
	}
}

func TestContract_CreateCustomerIdempotencyConflict(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	ctx := t.Context()
	first, err := c.client.CreateCustomer(ctx, planbok.CreateCustomerParams{Name: "Ada", RefID: "user-1", IdempotencyKey: "k-1"})
	if err != nil {
		t.Fatalf("CreateCustomer: %v", err)
	}
	_, err = c.client.CreateCustomer(ctx, planbok.CreateCustomerParams{Name: "Ada", RefID: "user-2", IdempotencyKey: "k-1"})
	pe := apiError(t, err, http.StatusConflict, false)
	if pe.Op != "create customer" {
		t.Errorf("got Op %q, want %q", pe.Op, "create customer")
	}

	// The same key on another route is a conflict too.
	_, err = c.client.CreateChallenge(ctx, first.ID, planbok.TaskInitialize,
		planbok.ChallengeParams{RedirectURL: ctRedirect, IdempotencyKey: "k-1"})
	apiError(t, err, http.StatusConflict, false)
}

func TestContract_GetCustomer(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	created := c.createCustomer("Ada", "user-1")
	got := c.getCustomer(created.ID)
	if got.ID != created.ID || got.Name != created.Name || got.RefID != created.RefID ||
		got.CustodyType != created.CustodyType || got.Status != created.Status ||
		got.HasPIN != created.HasPIN || got.HasRecovery != created.HasRecovery ||
		!got.CreatedAt.Equal(created.CreatedAt) || !got.UpdatedAt.Equal(created.UpdatedAt) {
		t.Errorf("got %+v, want the created customer %+v", *got, *created)
	}
}

func TestContract_GetCustomerNotFound(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	_, err := c.client.GetCustomer(t.Context(), "0123456789abcdef01234567")
	apiError(t, err, http.StatusNotFound, false)
	if !planbok.IsNotFound(err) {
		t.Errorf("got IsNotFound false for %v, want true", err)
	}
	if got := planbok.StatusCode(err); got != http.StatusNotFound {
		t.Errorf("got StatusCode %d, want 404", got)
	}
}

func TestContract_ListCustomers(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	ctx := t.Context()

	empty, err := c.client.ListCustomers(ctx, planbok.ListCustomersParams{})
	if err != nil {
		t.Fatalf("ListCustomers on an empty sandbox: %v", err)
	}
	if empty.Total != 0 || empty.Customers == nil || len(empty.Customers) != 0 {
		t.Errorf("got %+v, want an empty non-nil list", empty)
	}

	var ids []string
	for _, name := range []string{"A", "B", "C"} {
		ids = append(ids, c.createCustomer(name, "ref-"+name).ID)
		c.clock.Advance(time.Second)
	}
	all, err := c.client.ListCustomers(ctx, planbok.ListCustomersParams{})
	if err != nil {
		t.Fatalf("ListCustomers: %v", err)
	}
	var got []string
	for _, cu := range all.Customers {
		got = append(got, cu.ID)
	}
	newestFirst := []string{ids[2], ids[1], ids[0]}
	if !slices.Equal(got, newestFirst) {
		t.Errorf("got ids %v, want newest first %v", got, newestFirst)
	}
	if all.Total != 3 || all.Page != 1 || all.Limit != 10 {
		t.Errorf("got total %d page %d limit %d, want 3, 1, 10", all.Total, all.Page, all.Limit)
	}

	page2, err := c.client.ListCustomers(ctx, planbok.ListCustomersParams{Page: 2, Limit: 2})
	if err != nil {
		t.Fatalf("ListCustomers page 2: %v", err)
	}
	if len(page2.Customers) != 1 || page2.Customers[0].ID != ids[0] || page2.Total != 3 || page2.Page != 2 || page2.Limit != 2 {
		t.Errorf("got page %+v, want the oldest customer %s alone, total 3, page 2, limit 2", page2, ids[0])
	}

	_, err = c.client.ListCustomers(ctx, planbok.ListCustomersParams{Limit: 101})
	apiError(t, err, http.StatusBadRequest, false)
}

// TestContract_ChallengeFlow runs all six tasks in a valid order, each
// created twice under one idempotency key, read pending, completed through
// the helper and read verified.
func TestContract_ChallengeFlow(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	ctx := t.Context()
	cu := c.createCustomer("Ada", "user-flow")
	var results []json.RawMessage // every challenge result, to check for key material

	n := 0
	step := func(task planbok.Task, p planbok.ChallengeParams, in sandbox.CompleteInput) (*planbok.Challenge, completed) {
		t.Helper()
		c.clock.Advance(time.Second)
		n++ // one key per step: a key reused for a second export would replay the first
		p.IdempotencyKey = fmt.Sprintf("flow-%d-%s", n, strings.ReplaceAll(string(task), "/", "-"))
		ch := c.newChallenge(cu.ID, task, p)
		again := c.newChallenge(cu.ID, task, p)
		if again.ChallengeID != ch.ChallengeID {
			t.Errorf("%s: got challengeId %s under the same idempotency key, want %s", task, again.ChallengeID, ch.ChallengeID)
		}
		pending := c.getChallenge(cu.ID, ch.ChallengeID)
		if pending.Status != planbok.ChallengePending || pending.Task != task || pending.RedirectURL != ch.RedirectURL || !pending.ExpiresAt.Equal(ch.ExpiresAt) {
			t.Errorf("%s: got %+v before completion, want %+v", task, *pending, *ch)
		}
		done := c.complete(ch.ChallengeID, in)
		if done.Status != planbok.ChallengeVerified {
			t.Errorf("%s: got completion status %q, want %q", task, done.Status, planbok.ChallengeVerified)
		}
		verified := c.getChallenge(cu.ID, ch.ChallengeID)
		if verified.Status != planbok.ChallengeVerified || verified.Task != task || verified.ChallengeID != ch.ChallengeID {
			t.Errorf("%s: got %+v after completion, want it verified", task, *verified)
		}
		if len(verified.Result) == 0 {
			t.Errorf("%s: got no result on the verified challenge, want one", task)
		}
		results = append(results, verified.Result)
		return verified, done
	}
	flags := func(after string, hasPIN, hasRecovery bool) {
		t.Helper()
		got := c.getCustomer(cu.ID)
		if got.HasPIN != hasPIN || got.HasRecovery != hasRecovery || got.Status != planbok.CustomerActive {
			t.Errorf("after %s: got hasPin %v hasRecovery %v status %q, want %v %v %q",
				after, got.HasPIN, got.HasRecovery, got.Status, hasPIN, hasRecovery, planbok.CustomerActive)
		}
	}

	step(planbok.TaskInitialize, planbok.ChallengeParams{}, sandbox.CompleteInput{PIN: ctPIN1})
	flags("initialize without recovery", true, false)
	step(planbok.TaskRecovery, planbok.ChallengeParams{}, sandbox.CompleteInput{PIN: ctPIN1, Recovery: questions()})
	flags("recovery", true, true)
	step(planbok.TaskUpdatePIN, planbok.ChallengeParams{}, sandbox.CompleteInput{CurrentPIN: ctPIN1, NewPIN: ctPIN2})
	flags("update-pin", true, true)

	chains := []string{"ETH-SEPOLIA", "SOL-DEVNET"}
	wc, _ := step(planbok.TaskCreateWallets, planbok.ChallengeParams{Blockchains: chains}, sandbox.CompleteInput{PIN: ctPIN2})
	var created struct {
		Wallets []planbok.Wallet `json:"wallets"`
	}
	if err := json.Unmarshal(wc.Result, &created); err != nil {
		t.Fatalf("decode wallet/create result: %v: %s", err, wc.Result)
	}

	_, exported := step(planbok.TaskExportPrivateKeys, planbok.ChallengeParams{}, sandbox.CompleteInput{PIN: ctPIN2})
	rows := parseExport(t, exported.CSV)

	wallets, err := c.client.ListWallets(ctx, planbok.ListWalletsParams{CustomerIDs: []string{cu.ID}})
	if err != nil {
		t.Fatalf("ListWallets: %v", err)
	}
	if len(wallets) != len(chains) || len(created.Wallets) != len(chains) || len(rows) != len(chains) {
		t.Fatalf("got %d listed wallets, %d in the result and %d CSV rows, want %d each",
			len(wallets), len(created.Wallets), len(rows), len(chains))
	}
	for i, w := range wallets {
		if w.Blockchain != chains[i] {
			t.Errorf("wallet %d: got blockchain %q, want %q (creation order)", i, w.Blockchain, chains[i])
		}
		if !hex24.MatchString(w.ID) || w.CustomerID != cu.ID {
			t.Errorf("wallet %d: got id %q customerId %q, want 24 hex and %s", i, w.ID, w.CustomerID, cu.ID)
		}
		if w.KeyType != planbok.Blockchains[w.Blockchain] {
			t.Errorf("wallet %d: got keyType %q, want %q", i, w.KeyType, planbok.Blockchains[w.Blockchain])
		}
		if r := created.Wallets[i]; r.ID != w.ID || r.Address != w.Address || r.Blockchain != w.Blockchain {
			t.Errorf("wallet %d: got %+v in the wallet/create result, want %+v", i, r, w)
		}
		row, ok := rows[w.Address]
		if !ok {
			t.Errorf("wallet %d: address %s is not in the export CSV", i, w.Address)
			continue
		}
		if row.blockchain != w.Blockchain || row.derivationPath != w.DerivationPath || row.keyType != w.KeyType {
			t.Errorf("wallet %d: got CSV row %+v, want blockchain %q path %q keyType %q",
				i, row, w.Blockchain, w.DerivationPath, w.KeyType)
		}
	}
	if eth := wallets[0]; !regexp.MustCompile(`^0x[0-9a-fA-F]{40}$`).MatchString(eth.Address) || eth.DerivationPath != "m/44'/60'/0'/0/0" {
		t.Errorf("got ETH-SEPOLIA wallet %s at %s, want a 0x address at m/44'/60'/0'/0/0", eth.Address, eth.DerivationPath)
	}
	if sol := wallets[1]; !regexp.MustCompile(`^[1-9A-HJ-NP-Za-km-z]{32,44}$`).MatchString(sol.Address) || sol.DerivationPath != "m/44'/501'/0'/0'" {
		t.Errorf("got SOL-DEVNET wallet %s at %s, want a base58 address at m/44'/501'/0'/0'", sol.Address, sol.DerivationPath)
	}

	step(planbok.TaskResetPIN, planbok.ChallengeParams{},
		sandbox.CompleteInput{NewPIN: ctPIN3, Recovery: &sandbox.RecoveryInput{Answers: ctAnswers}})
	flags("reset-pin", true, true)

	// The reset kept the keys: an export with the new PIN gives the same CSV.
	_, again := step(planbok.TaskExportPrivateKeys, planbok.ChallengeParams{}, sandbox.CompleteInput{PIN: ctPIN3})
	if again.CSV != exported.CSV {
		t.Errorf("got a different export after the PIN reset:\n%s\nwant\n%s", again.CSV, exported.CSV)
	}

	// No challenge result, as the API returns it, holds key material.
	for _, row := range rows {
		for _, res := range results {
			if strings.Contains(string(res), row.privateKey) {
				t.Errorf("a challenge result holds a private key: %s", res)
			}
		}
	}
}

type exportRow struct {
	privateKey, blockchain, derivationPath, keyType string
}

// parseExport parses the export CSV into rows by address.
func parseExport(t *testing.T, text string) map[string]exportRow {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatalf("parse export CSV: %v", err)
	}
	header := []string{"Address", "Private Key", "Blockchain", "Derivation Path", "Key Type"}
	if len(recs) == 0 || !slices.Equal(recs[0], header) {
		t.Fatalf("got CSV header %q, want %q", recs, header)
	}
	rows := map[string]exportRow{}
	for _, r := range recs[1:] {
		if r[1] == "" {
			t.Errorf("got an empty private key for %s", r[0])
		}
		rows[r[0]] = exportRow{privateKey: r[1], blockchain: r[2], derivationPath: r[3], keyType: r[4]}
	}
	return rows
}

func TestContract_ChallengePreconditions(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	ctx := t.Context()
	fresh := c.createCustomer("Fresh", "user-fresh")

	wantRefused := func(customerID string, task planbok.Task, status int) {
		t.Helper()
		p := planbok.ChallengeParams{RedirectURL: ctRedirect}
		if task == planbok.TaskCreateWallets {
			p.Blockchains = []string{"ETH-SEPOLIA"}
		}
		_, err := c.client.CreateChallenge(ctx, customerID, task, p)
		pe := apiError(t, err, status, false)
		if !strings.Contains(pe.Error(), pe.Message) {
			t.Errorf("%s: got Error() %q, want it to carry the message %q", task, pe.Error(), pe.Message)
		}
	}

	// Before a PIN: only initialize is open.
	for _, task := range []planbok.Task{planbok.TaskRecovery, planbok.TaskUpdatePIN, planbok.TaskResetPIN,
		planbok.TaskExportPrivateKeys, planbok.TaskCreateWallets} {
		wantRefused(fresh.ID, task, http.StatusBadRequest)
	}
	// update-pin before a PIN says why.
	_, err := c.client.CreateChallenge(ctx, fresh.ID, planbok.TaskUpdatePIN, planbok.ChallengeParams{RedirectURL: ctRedirect})
	if pe := apiError(t, err, http.StatusBadRequest, false); !strings.Contains(pe.Message, "PIN") {
		t.Errorf("got message %q, want it to mention the PIN", pe.Message)
	}

	// A PIN but no recovery: initialize again, reset, export and wallets are refused.
	ch := c.newChallenge(fresh.ID, planbok.TaskInitialize, planbok.ChallengeParams{})
	c.complete(ch.ChallengeID, sandbox.CompleteInput{PIN: ctPIN1})
	for _, task := range []planbok.Task{planbok.TaskInitialize, planbok.TaskResetPIN,
		planbok.TaskExportPrivateKeys, planbok.TaskCreateWallets} {
		wantRefused(fresh.ID, task, http.StatusBadRequest)
	}
	c.newChallenge(fresh.ID, planbok.TaskUpdatePIN, planbok.ChallengeParams{})
	c.newChallenge(fresh.ID, planbok.TaskRecovery, planbok.ChallengeParams{})

	// An unknown customer is a 404 on every task.
	for _, task := range []planbok.Task{planbok.TaskInitialize, planbok.TaskCreateWallets} {
		wantRefused("0123456789abcdef01234567", task, http.StatusNotFound)
	}
}

func TestContract_ChallengeValidation(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	cu := c.onboard(questions())
	for _, tc := range []struct {
		name string
		task planbok.Task
		p    planbok.ChallengeParams
	}{
		{"unknown blockchain", planbok.TaskCreateWallets, planbok.ChallengeParams{RedirectURL: ctRedirect, Blockchains: []string{"DOGE"}}},
		{"account type", planbok.TaskCreateWallets, planbok.ChallengeParams{RedirectURL: ctRedirect, Blockchains: []string{"ETH"}, AccountType: "smart"}},
		{"relative redirect", planbok.TaskExportPrivateKeys, planbok.ChallengeParams{RedirectURL: "/return"}},
		{"non-http redirect", planbok.TaskUpdatePIN, planbok.ChallengeParams{RedirectURL: "ftp://app.example/return"}},
	} {
		_, err := c.client.CreateChallenge(t.Context(), cu.ID, tc.task, tc.p)
		var pe *planbok.Error
		if !errors.As(err, &pe) || pe.StatusCode != http.StatusBadRequest || pe.Retryable() {
			t.Errorf("%s: got %v, want a non-retryable 400 *planbok.Error", tc.name, err)
		}
	}
	// The explicit "eoa" the client sends by default is accepted.
	c.newChallenge(cu.ID, planbok.TaskCreateWallets, planbok.ChallengeParams{Blockchains: []string{"ETH"}})
}

func TestContract_LockedCustomer(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	ctx := t.Context()
	cu := c.onboard(&sandbox.RecoveryInput{Method: "email", Email: ctEmail})
	if !cu.HasPIN || !cu.HasRecovery {
		t.Fatalf("got hasPin %v hasRecovery %v after onboarding, want both", cu.HasPIN, cu.HasRecovery)
	}

	up := c.newChallenge(cu.ID, planbok.TaskUpdatePIN, planbok.ChallengeParams{})
	for want := sandbox.MaxPINAttempts - 1; want >= 0; want-- {
		_, err := c.helper.Complete(ctx, up.ChallengeID, sandbox.CompleteInput{CurrentPIN: "000000", NewPIN: ctPIN2})
		var he *sandbox.HelperError
		if !errors.As(err, &he) || he.Status != http.StatusUnprocessableEntity {
			t.Fatalf("got %v, want a 422 for a wrong PIN", err)
		}
		if got, ok := he.AttemptsRemaining(); !ok || got != want {
			t.Fatalf("got attemptsRemaining %d (present %v), want %d", got, ok, want)
		}
	}

	locked := c.getCustomer(cu.ID)
	if locked.Status != planbok.CustomerLocked || !locked.Locked() {
		t.Fatalf("got status %q, want %q", locked.Status, planbok.CustomerLocked)
	}
	failed := c.getChallenge(cu.ID, up.ChallengeID)
	if failed.Status != planbok.ChallengeFailed {
		t.Errorf("got challenge status %q after the lockout, want %q", failed.Status, planbok.ChallengeFailed)
	}
	var reason struct{ Reason string }
	if err := json.Unmarshal(failed.Result, &reason); err != nil || reason.Reason != "locked_out" {
		t.Errorf("got result %s, want reason locked_out", failed.Result)
	}

	for _, task := range []planbok.Task{planbok.TaskUpdatePIN, planbok.TaskRecovery,
		planbok.TaskExportPrivateKeys, planbok.TaskCreateWallets} {
		p := planbok.ChallengeParams{RedirectURL: ctRedirect, Blockchains: []string{"SOL-DEVNET"}}
		_, err := c.client.CreateChallenge(ctx, cu.ID, task, p)
		apiError(t, err, http.StatusForbidden, false)
	}
	// Order checks come before the lock: initialize is still a 400.
	_, err := c.client.CreateChallenge(ctx, cu.ID, planbok.TaskInitialize, planbok.ChallengeParams{RedirectURL: ctRedirect})
	apiError(t, err, http.StatusBadRequest, false)

	// reset-pin is the way out, with the emailed code.
	reset := c.newChallenge(cu.ID, planbok.TaskResetPIN, planbok.ChallengeParams{})
	code, err := c.helper.EmailCode(ctx, cu.ID)
	if err != nil {
		t.Fatalf("EmailCode: %v", err)
	}
	c.complete(reset.ChallengeID, sandbox.CompleteInput{NewPIN: ctPIN3, Recovery: &sandbox.RecoveryInput{EmailCode: code}})
	if got := c.getChallenge(cu.ID, reset.ChallengeID).Status; got != planbok.ChallengeVerified {
		t.Errorf("got reset-pin status %q, want %q", got, planbok.ChallengeVerified)
	}
	if got := c.getCustomer(cu.ID); got.Status != planbok.CustomerActive || got.Locked() {
		t.Errorf("got status %q after the reset, want %q", got.Status, planbok.CustomerActive)
	}
	c.newChallenge(cu.ID, planbok.TaskUpdatePIN, planbok.ChallengeParams{})
}

func TestContract_ChallengeExpiry(t *testing.T) {
	t.Parallel()
	ttl := 2 * time.Minute
	c := newContract(t, func(o *sandbox.Options) { o.ChallengeTTL = ttl })
	ctx := t.Context()
	cu := c.createCustomer("Ada", "user-expiry")
	ch := c.newChallenge(cu.ID, planbok.TaskInitialize, planbok.ChallengeParams{})

	c.clock.Advance(ttl - time.Millisecond)
	if got := c.getChallenge(cu.ID, ch.ChallengeID).Status; got != planbok.ChallengePending {
		t.Fatalf("got status %q a millisecond before expiry, want %q", got, planbok.ChallengePending)
	}
	c.clock.Advance(time.Millisecond)
	_, err := c.client.GetChallenge(ctx, cu.ID, ch.ChallengeID)
	apiError(t, err, http.StatusNotFound, false)
	if !planbok.IsNotFound(err) {
		t.Errorf("got IsNotFound false for %v, want true", err)
	}
	if _, err := c.helper.Complete(ctx, ch.ChallengeID, sandbox.CompleteInput{PIN: ctPIN1}); !sandbox.IsHelperError(err, http.StatusNotFound) {
		t.Errorf("got %v completing an expired challenge, want a 404", err)
	}

	// A finished challenge is pruned after its lifetime too.
	done := c.newChallenge(cu.ID, planbok.TaskInitialize, planbok.ChallengeParams{})
	c.complete(done.ChallengeID, sandbox.CompleteInput{PIN: ctPIN1})
	c.clock.Advance(ttl)
	_, err = c.client.GetChallenge(ctx, cu.ID, done.ChallengeID)
	if !planbok.IsNotFound(err) {
		t.Errorf("got %v for a verified challenge past its lifetime, want a 404", err)
	}
	if got := c.getCustomer(cu.ID); !got.HasPIN {
		t.Errorf("got hasPin false, want the verified initialize to have set the PIN")
	}
}

func TestContract_GetChallengeNotFound(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	ctx := t.Context()
	a := c.createCustomer("A", "a")
	b := c.createCustomer("B", "b")
	ch := c.newChallenge(a.ID, planbok.TaskInitialize, planbok.ChallengeParams{})

	_, err := c.client.GetChallenge(ctx, a.ID, "0123456789abcdef01234567")
	apiError(t, err, http.StatusNotFound, false)
	// Another customer's challenge is not found either.
	_, err = c.client.GetChallenge(ctx, b.ID, ch.ChallengeID)
	apiError(t, err, http.StatusNotFound, false)
}

func TestContract_ListWallets(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	ctx := t.Context()
	with := c.onboard(questions())
	without := c.createCustomer("Empty", "user-empty")
	ch := c.newChallenge(with.ID, planbok.TaskCreateWallets, planbok.ChallengeParams{Blockchains: []string{"ETH", "BASE", "SOL"}})
	c.complete(ch.ChallengeID, sandbox.CompleteInput{PIN: ctPIN1})

	none, err := c.client.ListWallets(ctx, planbok.ListWalletsParams{CustomerIDs: []string{without.ID}})
	if err != nil {
		t.Fatalf("ListWallets: %v", err)
	}
	if none == nil || len(none) != 0 {
		t.Errorf("got %v for a customer without wallets, want an empty non-nil list", none)
	}
	both, err := c.client.ListWallets(ctx, planbok.ListWalletsParams{CustomerIDs: []string{without.ID, with.ID}})
	if err != nil {
		t.Fatalf("ListWallets of two customers: %v", err)
	}
	if len(both) != 3 {
		t.Fatalf("got %d wallets for two customers, want 3", len(both))
	}
	// Two EVM wallets of one customer get different keys (next index).
	if both[0].Address == both[1].Address || both[1].DerivationPath != "m/44'/60'/0'/0/1" {
		t.Errorf("got ETH %s and BASE %s at %s, want distinct addresses, BASE at m/44'/60'/0'/0/1",
			both[0].Address, both[1].Address, both[1].DerivationPath)
	}
	all, err := c.client.ListWallets(ctx, planbok.ListWalletsParams{})
	if err != nil {
		t.Fatalf("ListWallets without a filter: %v", err)
	}
	if len(all) != 3 {
		t.Errorf("got %d wallets without a filter, want 3", len(all))
	}
}

func TestContract_WrongAPIKey(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	cu := c.onboard(questions())
	ch := c.newChallenge(cu.ID, planbok.TaskUpdatePIN, planbok.ChallengeParams{})

	for _, key := range []string{"pk_wrong_S3CRET-0000000000", ""} {
		wrong := planbok.New(c.srv.URL, key, planbok.WithHTTPClient(c.srv.Client()))
		ctx := t.Context()
		calls := map[string]func() error{
			"CreateCustomer": func() error {
				_, err := wrong.CreateCustomer(ctx, planbok.CreateCustomerParams{Name: "X"})
				return err
			},
			"GetCustomer": func() error { _, err := wrong.GetCustomer(ctx, cu.ID); return err },
			"ListCustomers": func() error {
				_, err := wrong.ListCustomers(ctx, planbok.ListCustomersParams{})
				return err
			},
			"CreateChallenge": func() error {
				_, err := wrong.CreateChallenge(ctx, cu.ID, planbok.TaskExportPrivateKeys, planbok.ChallengeParams{RedirectURL: ctRedirect})
				return err
			},
			"GetChallenge": func() error { _, err := wrong.GetChallenge(ctx, cu.ID, ch.ChallengeID); return err },
			"ListWallets": func() error {
				_, err := wrong.ListWallets(ctx, planbok.ListWalletsParams{CustomerIDs: []string{cu.ID}})
				return err
			},
		}
		for name, call := range calls {
			err := call()
			var pe *planbok.Error
			if !errors.As(err, &pe) || pe.StatusCode != http.StatusUnauthorized || pe.Retryable() {
				t.Errorf("%s with key %q: got %v, want a non-retryable 401 *planbok.Error", name, key, err)
				continue
			}
			if key != "" && strings.Contains(err.Error(), key) {
				t.Errorf("%s: got %q, want the API key absent", name, err.Error())
			}
			if strings.Contains(err.Error(), ctAPIKey) {
				t.Errorf("%s: got %q, want the sandbox's key absent", name, err.Error())
			}
		}
	}
	// Nothing was created with the wrong key.
	if list, err := c.client.ListCustomers(t.Context(), planbok.ListCustomersParams{}); err != nil || list.Total != 1 {
		t.Errorf("got %v customers (err %v), want 1", list, err)
	}
}

func TestContract_RateLimit(t *testing.T) {
	t.Parallel()
	c := newContract(t, func(o *sandbox.Options) { o.RateLimit = true })
	ctx := t.Context()

	// The clock stands still: every request falls in the same second.
	var first *planbok.Customer
	for i := range 10 {
		cu, err := c.client.CreateCustomer(ctx, planbok.CreateCustomerParams{Name: "Burst"})
		if err != nil {
			t.Fatalf("POST %d of 10: %v", i+1, err)
		}
		if first == nil {
			first = cu
		}
	}
	retry := planbok.CreateCustomerParams{Name: "Eleventh", IdempotencyKey: "burst-11"}
	_, err := c.client.CreateCustomer(ctx, retry)
	apiError(t, err, http.StatusTooManyRequests, true)

	// GETs have their own bucket of 20.
	for i := range 20 {
		if _, err := c.client.GetCustomer(ctx, first.ID); err != nil {
			t.Fatalf("GET %d of 20 after the POST burst: %v", i+1, err)
		}
	}
	_, err = c.client.GetCustomer(ctx, first.ID)
	apiError(t, err, http.StatusTooManyRequests, true)

	// A second later the retry under the same key creates the customer once.
	c.clock.Advance(time.Second)
	eleventh, err := c.client.CreateCustomer(ctx, retry)
	if err != nil {
		t.Fatalf("retry after a second: %v", err)
	}
	replay, err := c.client.CreateCustomer(ctx, retry)
	if err != nil {
		t.Fatalf("replayed retry: %v", err)
	}
	if replay.ID != eleventh.ID {
		t.Errorf("got id %s on replay, want %s", replay.ID, eleventh.ID)
	}
	list, err := c.client.ListCustomers(ctx, planbok.ListCustomersParams{})
	if err != nil {
		t.Fatalf("ListCustomers: %v", err)
	}
	if list.Total != 11 {
		t.Errorf("got %d customers, want 11", list.Total)
	}
}

func TestContract_FaultInjectionServerError(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	ctx := t.Context()
	cu := c.onboard(questions())
	ch := c.newChallenge(cu.ID, planbok.TaskUpdatePIN, planbok.ChallengeParams{})

	if err := c.helper.SetFaults(ctx, sandbox.Faults{APIErrorRate: 1}); err != nil {
		t.Fatalf("SetFaults: %v", err)
	}
	create := planbok.CreateCustomerParams{Name: "Faulty", IdempotencyKey: "faulty-1"}
	calls := map[string]func() error{
		"CreateCustomer": func() error { _, err := c.client.CreateCustomer(ctx, create); return err },
		"GetCustomer":    func() error { _, err := c.client.GetCustomer(ctx, cu.ID); return err },
		"ListCustomers": func() error {
			_, err := c.client.ListCustomers(ctx, planbok.ListCustomersParams{})
			return err
		},
		"CreateChallenge": func() error {
			_, err := c.client.CreateChallenge(ctx, cu.ID, planbok.TaskExportPrivateKeys, planbok.ChallengeParams{RedirectURL: ctRedirect})
			return err
		},
		"GetChallenge": func() error { _, err := c.client.GetChallenge(ctx, cu.ID, ch.ChallengeID); return err },
		"ListWallets": func() error {
			_, err := c.client.ListWallets(ctx, planbok.ListWalletsParams{CustomerIDs: []string{cu.ID}})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		var pe *planbok.Error
		if !errors.As(err, &pe) {
			t.Errorf("%s: got %v, want a *planbok.Error", name, err)
			continue
		}
		if pe.StatusCode != http.StatusInternalServerError && pe.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s: got status %d, want 500 or 503", name, pe.StatusCode)
		}
		if !pe.Retryable() {
			t.Errorf("%s: got Retryable() false for %v, want true", name, err)
		}
	}

	if err := c.helper.SetFaults(ctx, sandbox.Faults{}); err != nil {
		t.Fatalf("clear faults: %v", err)
	}
	// The failed POST was not stored: the retry under its key creates it.
	got, err := c.client.CreateCustomer(ctx, create)
	if err != nil {
		t.Fatalf("CreateCustomer once faults are cleared: %v", err)
	}
	if got.Name != "Faulty" {
		t.Errorf("got name %q, want Faulty", got.Name)
	}
	list, err := c.client.ListCustomers(ctx, planbok.ListCustomersParams{})
	if err != nil {
		t.Fatalf("ListCustomers: %v", err)
	}
	if list.Total != 2 {
		t.Errorf("got %d customers, want 2 (the faults must have had no effect)", list.Total)
	}
}

func TestContract_FaultInjectionRateLimit(t *testing.T) {
	t.Parallel()
	c := newContract(t)
	ctx := t.Context()
	if err := c.helper.SetFaults(ctx, sandbox.Faults{RateLimitRate: 1}); err != nil {
		t.Fatalf("SetFaults: %v", err)
	}
	_, err := c.client.CreateCustomer(ctx, planbok.CreateCustomerParams{Name: "Ada"})
	apiError(t, err, http.StatusTooManyRequests, true)
	_, err = c.client.ListCustomers(ctx, planbok.ListCustomersParams{})
	apiError(t, err, http.StatusTooManyRequests, true)
}

// received is one webhook request as the receiver saw it.
type received struct {
	header http.Header
	body   []byte
}

// receiver records the webhooks it is sent and answers 200.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	notify chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{notify: make(chan struct{}, 1)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.got = append(rc.got, received{header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		select {
		case rc.notify <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close) // registered before the sandbox's, so closed after it
	return rc
}

// waitFor returns the first webhook for which match is true, waiting
// until the deadline.
func (rc *receiver) waitFor(t *testing.T, what string, match func(planbok.WebhookEvent) bool) received {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		rc.mu.Lock()
		got := slices.Clone(rc.got)
		rc.mu.Unlock()
		for _, r := range got {
			var ev planbok.WebhookEvent
			if json.Unmarshal(r.body, &ev) == nil && match(ev) {
				return r
			}
		}
		select {
		case <-rc.notify:
		case <-ctx.Done():
			t.Fatalf("no %s webhook within the deadline; got %d webhooks", what, len(got))
		}
	}
}

func TestContract_Webhook(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	c := newContract(t, func(o *sandbox.Options) {
		o.WebhookURL = rc.srv.URL
		o.WebhookSecret = []byte(ctSecret)
	})
	cu := c.createCustomer("Ada", "user-hooks")
	initCh := c.newChallenge(cu.ID, planbok.TaskInitialize, planbok.ChallengeParams{})
	c.complete(initCh.ChallengeID, sandbox.CompleteInput{PIN: ctPIN1, Recovery: questions()})
	wc := c.newChallenge(cu.ID, planbok.TaskCreateWallets, planbok.ChallengeParams{Blockchains: []string{"ETH-SEPOLIA"}})
	c.complete(wc.ChallengeID, sandbox.CompleteInput{PIN: ctPIN1})
	wallets, err := c.client.ListWallets(t.Context(), planbok.ListWalletsParams{CustomerIDs: []string{cu.ID}})
	if err != nil || len(wallets) != 1 {
		t.Fatalf("ListWallets: got %v, %v, want one wallet", wallets, err)
	}

	// verify checks the signature, the headers and the decoded event.
	verify := func(r received, event, challengeID string) planbok.WebhookEvent {
		t.Helper()
		if err := planbok.VerifyWebhook(r.header, r.body, c.clock.Now(), []byte(ctSecret)); err != nil {
			t.Errorf("%s: VerifyWebhook: got %v, want nil", event, err)
		}
		if err := planbok.VerifyWebhook(r.header, r.body, c.clock.Now(), []byte("another secret")); !errors.Is(err, planbok.ErrBadSignature) {
			t.Errorf("%s: VerifyWebhook with another secret: got %v, want ErrBadSignature", event, err)
		}
		var ev planbok.WebhookEvent
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatalf("%s: decode: %v: %s", event, err, r.body)
		}
		if ev.Event != event || r.header.Get(planbok.HeaderWebhookEvent) != event {
			t.Errorf("got event %q (header %q), want %q", ev.Event, r.header.Get(planbok.HeaderWebhookEvent), event)
		}
		if ev.IdempotencyKey == "" || r.header.Get(planbok.HeaderWebhookID) != ev.IdempotencyKey {
			t.Errorf("%s: got idempotencyKey %q and %s %q, want them equal and set",
				event, ev.IdempotencyKey, planbok.HeaderWebhookID, r.header.Get(planbok.HeaderWebhookID))
		}
		if !ev.Timestamp.Equal(c.clock.Now()) {
			t.Errorf("%s: got timestamp %v, want the sandbox clock %v", event, ev.Timestamp, c.clock.Now())
		}
		if ev.Data.CustomerID != cu.ID || ev.Data.ChallengeID != challengeID {
			t.Errorf("%s: got data.customerId %q data.challengeId %q, want %q %q",
				event, ev.Data.CustomerID, ev.Data.ChallengeID, cu.ID, challengeID)
		}
		return ev
	}

	created := rc.waitFor(t, "customer.created", func(ev planbok.WebhookEvent) bool {
		return ev.Event == planbok.EventCustomerCreated && ev.Data.CustomerID == cu.ID
	})
	verify(created, planbok.EventCustomerCreated, "")

	pinSetup := rc.waitFor(t, "customer.pin_setup", func(ev planbok.WebhookEvent) bool {
		return ev.Event == planbok.EventCustomerPINSetup && ev.Data.CustomerID == cu.ID
	})
	verify(pinSetup, planbok.EventCustomerPINSetup, initCh.ChallengeID)

	for _, ch := range []*planbok.Challenge{initCh, wc} {
		done := rc.waitFor(t, "challenge.completed", func(ev planbok.WebhookEvent) bool {
			return ev.Event == planbok.EventChallengeCompleted && ev.Data.ChallengeID == ch.ChallengeID
		})
		ev := verify(done, planbok.EventChallengeCompleted, ch.ChallengeID)
		if ev.Data.Task != ch.Task || ev.Data.Status != planbok.ChallengeVerified {
			t.Errorf("got data.task %q data.status %q, want %q %q", ev.Data.Task, ev.Data.Status, ch.Task, planbok.ChallengeVerified)
		}
	}

	walletEv := verify(rc.waitFor(t, "wallet.created", func(ev planbok.WebhookEvent) bool {
		return ev.Event == planbok.EventWalletCreated && ev.Data.CustomerID == cu.ID
	}), planbok.EventWalletCreated, wc.ChallengeID)
	if w := wallets[0]; walletEv.Data.WalletID != w.ID || walletEv.Data.Address != w.Address || walletEv.Data.Blockchain != w.Blockchain {
		t.Errorf("got wallet.created data %+v, want wallet %s %s %s", walletEv.Data, w.ID, w.Blockchain, w.Address)
	}

	// The signature covers the body: a changed body fails.
	tampered := strings.Replace(string(created.body), cu.ID, "ffffffffffffffffffffffff", 1)
	if err := planbok.VerifyWebhook(created.header, []byte(tampered), c.clock.Now(), []byte(ctSecret)); !errors.Is(err, planbok.ErrBadSignature) {
		t.Errorf("VerifyWebhook of a changed body: got %v, want ErrBadSignature", err)
	}
}
