package sandbox

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/custodyflows/custodyflows/planbok"
)

func TestLockout_FiveWrongPINs(t *testing.T) {
	e := newEnv(t)
	c := e.onboard()
	wallets := e.createWallets(c.ID, pin1, "ETH-SEPOLIA")
	pending := e.challenge(c.ID, planbok.TaskUpdatePIN) // open before the lock
	ch := e.challenge(c.ID, planbok.TaskExportPrivateKeys)
	for _, want := range []int{4, 3, 2, 1, 0} {
		_, err := e.complete(ch.ChallengeID, map[string]any{"pin": pin2})
		wantAttempts(t, err, 422, want)
	}
	if got := e.customer(c.ID); got.Status != "locked" {
		t.Fatalf("got status %q, want locked", got.Status)
	}
	if got := e.getChallenge(c.ID, ch.ChallengeID); got.Status != "failed" {
		t.Errorf("got challenge status %q, want failed", got.Status)
	}
	// The failed challenge is over; other challenges refuse with 403.
	_, err := e.complete(ch.ChallengeID, map[string]any{"pin": pin1})
	wantAttempts(t, err, 409, -1)
	_, err = e.complete(pending.ChallengeID, map[string]any{"currentPin": pin1, "newPin": pin2})
	wantAttempts(t, err, 403, -1)
	for _, task := range []planbok.Task{planbok.TaskUpdatePIN, planbok.TaskExportPrivateKeys, planbok.TaskCreateWallets, planbok.TaskRecovery} {
		e.req("POST", "/v2/customers/"+c.ID+"/"+string(task),
			map[string]any{"redirectUrl": testRedirect, "blockchains": []string{"ETH"}}).want(t, 403)
	}

	// Reset is the way out.
	reset := e.challenge(c.ID, planbok.TaskResetPIN)
	_, err = e.complete(reset.ChallengeID, map[string]any{"recovery": map[string]any{"answers": []string{"a", "b", "c"}}, "newPin": pin3})
	wantAttempts(t, err, 422, 4)
	e.mustComplete(reset.ChallengeID, map[string]any{"recovery": map[string]any{"answers": []string{" rex ", "LISBON", "St.  Mary's"}}, "newPin": pin3})
	if got := e.customer(c.ID); got.Status != "active" {
		t.Fatalf("after reset got status %q, want active", got.Status)
	}
	// The counter starts again at 5; the old PIN no longer works.
	if _, err := e.export(c.ID, pin1); err == nil {
		t.Fatal("old PIN still works after reset")
	} else {
		wantAttempts(t, err, 422, 4)
	}
	csvText, err := e.export(c.ID, pin3)
	if err != nil {
		t.Fatal(err)
	}
	if rows := parseCSV(t, csvText); len(rows) != 1 || rows[0]["Address"] != wallets[0].Address {
		t.Errorf("got rows %v, want the wallet %s", rows, wallets[0].Address)
	}
}

func TestPINCounter_ResetBySuccess(t *testing.T) {
	e := newEnv(t)
	c := e.onboard()
	for range 3 {
		_, err := e.export(c.ID, pin2)
		wantAttempts(t, err, 422, -1)
	}
	if _, err := e.export(c.ID, pin1); err != nil {
		t.Fatal(err)
	}
	_, err := e.export(c.ID, pin2)
	wantAttempts(t, err, 422, 4)
}

func parseCSV(t *testing.T, text string) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(text)).ReadAll()
	if err != nil {
		t.Fatalf("parse csv: %v", err)
	}
	want := []string{"Address", "Private Key", "Blockchain", "Derivation Path", "Key Type"}
	if len(recs) == 0 || strings.Join(recs[0], ",") != strings.Join(want, ",") {
		t.Fatalf("got header %v, want %v", recs, want)
	}
	var rows []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		rows = append(rows, m)
	}
	return rows
}

func TestRoundTrip_UpdateResetExport(t *testing.T) {
	e := newEnv(t)
	c := e.onboard()
	ws := e.createWallets(c.ID, pin1, "ETH-SEPOLIA", "SOL-DEVNET", "BASE-SEPOLIA")
	more := e.createWallets(c.ID, pin1, "ETH")
	ws = append(ws, more...)
	wantPaths := []string{"m/44'/60'/0'/0/0", "m/44'/501'/0'/0'", "m/44'/60'/0'/0/1", "m/44'/60'/0'/0/2"}
	for i, w := range ws {
		if w.DerivationPath != wantPaths[i] || w.KeyType != planbok.Blockchains[w.Blockchain] || w.CustomerID != c.ID {
			t.Errorf("wallet %d: got %+v, want path %s", i, w, wantPaths[i])
		}
	}
	if !strings.HasPrefix(ws[0].Address, "0x") || len(ws[0].Address) != 42 || ws[0].Address == strings.ToLower(ws[0].Address) {
		t.Errorf("got EVM address %q, want EIP-55 0x-hex", ws[0].Address)
	}
	if ws[0].Address == ws[2].Address {
		t.Error("two EVM wallets share an address: indexes must advance per key type")
	}

	before, err := e.export(c.ID, pin1)
	if err != nil {
		t.Fatal(err)
	}
	rows := parseCSV(t, before)
	if len(rows) != len(ws) {
		t.Fatalf("got %d rows, want %d", len(rows), len(ws))
	}
	for i, r := range rows {
		if r["Address"] != ws[i].Address || r["Blockchain"] != ws[i].Blockchain || r["Derivation Path"] != ws[i].DerivationPath || r["Private Key"] == "" {
			t.Errorf("row %d: got %v, want wallet %+v", i, r, ws[i])
		}
	}

	// Update PIN: pin1 → pin2.
	up := e.challenge(c.ID, planbok.TaskUpdatePIN)
	_, err = e.complete(up.ChallengeID, map[string]any{"currentPin": pin3, "newPin": pin2})
	wantAttempts(t, err, 422, 4)
	_, err = e.complete(up.ChallengeID, map[string]any{"currentPin": pin1, "newPin": "12345"})
	wantAttempts(t, err, 400, -1)
	e.mustComplete(up.ChallengeID, map[string]any{"currentPin": pin1, "newPin": pin2})
	if _, err := e.export(c.ID, pin1); err == nil {
		t.Fatal("old PIN works after update")
	}
	after, err := e.export(c.ID, pin2)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Error("export after update-pin differs")
	}

	// Reset PIN with the answers: pin2 → pin3.
	rs := e.challenge(c.ID, planbok.TaskResetPIN)
	e.mustComplete(rs.ChallengeID, map[string]any{"recovery": map[string]any{"answers": answers}, "newPin": pin3})
	if _, err := e.export(c.ID, pin2); err == nil {
		t.Fatal("old PIN works after reset")
	}
	after, err = e.export(c.ID, pin3)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Error("export after reset-pin differs: the keys must stay the same")
	}
	if got := e.customer(c.ID); !got.HasPIN || !got.HasRecovery || got.Status != "active" {
		t.Errorf("got %+v", got)
	}
}

func TestEmailRecovery_Reset(t *testing.T) {
	e := newEnv(t)
	c := e.createCustomer()
	ch := e.challenge(c.ID, planbok.TaskInitialize)
	_, err := e.complete(ch.ChallengeID, map[string]any{"pin": pin1, "recovery": map[string]any{"method": "email", "email": "not-an-email"}})
	wantAttempts(t, err, 400, -1)
	e.mustComplete(ch.ChallengeID, map[string]any{"pin": pin1, "recovery": map[string]any{"method": "email", "email": "ada@example.com"}})
	if got := e.customer(c.ID); !got.HasRecovery {
		t.Fatal("email recovery: hasRecovery false")
	}
	ws := e.createWallets(c.ID, pin1, "SOL-DEVNET")

	if _, err := e.helper.EmailCode(t.Context(), c.ID); !IsHelperError(err, 404) {
		t.Fatalf("email code before any reset: got %v, want 404", err)
	}
	rs := e.challenge(c.ID, planbok.TaskResetPIN)
	code, err := e.helper.EmailCode(t.Context(), c.ID)
	if err != nil || len(code) != 6 {
		t.Fatalf("got code %q, %v", code, err)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "000001"
	}
	_, err = e.complete(rs.ChallengeID, map[string]any{"recovery": map[string]any{"emailCode": wrong}, "newPin": pin2})
	wantAttempts(t, err, 422, 4)
	_, err = e.complete(rs.ChallengeID, map[string]any{"recovery": map[string]any{"answers": answers}, "newPin": pin2})
	wantAttempts(t, err, 400, -1)
	e.mustComplete(rs.ChallengeID, map[string]any{"recovery": map[string]any{"emailCode": code}, "newPin": pin2})
	csvText, err := e.export(c.ID, pin2)
	if err != nil {
		t.Fatal(err)
	}
	if rows := parseCSV(t, csvText); rows[0]["Address"] != ws[0].Address || rows[0]["Key Type"] != "ed25519" {
		t.Errorf("got %v, want %s", rows, ws[0].Address)
	}
	if _, err := e.export(c.ID, pin1); err == nil {
		t.Error("old PIN works after reset")
	}
	// A second reset emails a new code; the first one is spent.
	e.challenge(c.ID, planbok.TaskResetPIN)
	if code2, _ := e.helper.EmailCode(t.Context(), c.ID); code2 == "" {
		t.Error("no code for the second reset")
	}
}

func TestRecovery_SetUpLaterAndSwitch(t *testing.T) {
	e := newEnv(t)
	c := e.createCustomer()
	ch := e.challenge(c.ID, planbok.TaskInitialize)
	e.mustComplete(ch.ChallengeID, map[string]any{"pin": pin1, "recovery": nil})
	if got := e.customer(c.ID); !got.HasPIN || got.HasRecovery {
		t.Fatalf("got %+v", got)
	}
	rc := e.challenge(c.ID, planbok.TaskRecovery)
	_, err := e.complete(rc.ChallengeID, map[string]any{"pin": pin1})
	wantAttempts(t, err, 400, -1)
	_, err = e.complete(rc.ChallengeID, map[string]any{"pin": pin1, "recovery": map[string]any{"method": "security_questions", "answers": []string{"a", "b"}}})
	wantAttempts(t, err, 400, -1)
	_, err = e.complete(rc.ChallengeID, map[string]any{"pin": pin2, "recovery": questions()})
	wantAttempts(t, err, 422, 4)
	e.mustComplete(rc.ChallengeID, map[string]any{"pin": pin1, "recovery": questions()})
	if got := e.customer(c.ID); !got.HasRecovery {
		t.Fatal("hasRecovery false after recovery")
	}
	// Switch to email: the answers stop working.
	rc2 := e.challenge(c.ID, planbok.TaskRecovery)
	e.mustComplete(rc2.ChallengeID, map[string]any{"pin": pin1, "recovery": map[string]any{"method": "email", "email": "a@b.example"}})
	rs := e.challenge(c.ID, planbok.TaskResetPIN)
	_, err = e.complete(rs.ChallengeID, map[string]any{"recovery": map[string]any{"answers": answers}, "newPin": pin2})
	wantAttempts(t, err, 400, -1)
}

func TestHelper_CompleteValidation(t *testing.T) {
	e := newEnv(t)
	c := e.createCustomer()
	ch := e.challenge(c.ID, planbok.TaskInitialize)
	cases := []struct {
		name string
		body any
	}{
		{"unknown field", map[string]any{"pin": pin1, "pinCode": pin1}},
		{"short pin", map[string]any{"pin": "123"}},
		{"letters", map[string]any{"pin": "12345a"}},
		{"bad method", map[string]any{"pin": pin1, "recovery": map[string]any{"method": "sms"}}},
		{"two answers", map[string]any{"pin": pin1, "recovery": map[string]any{"method": "security_questions", "answers": []string{"a", "b"}}}},
		{"blank answer", map[string]any{"pin": pin1, "recovery": map[string]any{"method": "security_questions", "answers": []string{"a", " ", "c"}}}},
	}
	for _, tc := range cases {
		_, err := e.complete(ch.ChallengeID, tc.body)
		if !IsHelperError(err, 400) {
			t.Errorf("%s: got %v, want 400", tc.name, err)
		}
	}
	_, err := e.complete("000000000000000000000000", map[string]any{"pin": pin1})
	wantAttempts(t, err, 404, -1)
	d := e.mustComplete(ch.ChallengeID, map[string]any{"pin": pin1, "recovery": questions(), "idempotencyKey": "ignored"})
	var got planbok.Challenge
	json.Unmarshal(d, &got)
	if got.Status != "verified" || got.ChallengeID != ch.ChallengeID {
		t.Errorf("got %+v", got)
	}
	_, err = e.complete(ch.ChallengeID, map[string]any{"pin": pin1})
	wantAttempts(t, err, 409, -1)
}

func TestWalletCreate_ResultHasNoSecrets(t *testing.T) {
	e := newEnv(t)
	c := e.onboard()
	ch := e.challenge(c.ID, planbok.TaskCreateWallets, "blockchains", []string{"ETH-SEPOLIA", "SOL-DEVNET"})
	d := e.mustComplete(ch.ChallengeID, map[string]any{"pin": pin1})
	csvText, _ := e.export(c.ID, pin1)
	for _, r := range parseCSV(t, csvText) {
		for _, raw := range [][]byte{d, e.getChallenge(c.ID, ch.ChallengeID).Result, e.req("GET", "/v2/wallets", nil).RawBody} {
			if strings.Contains(string(raw), r["Private Key"]) {
				t.Fatalf("a private key appears outside the export: %s", raw)
			}
		}
	}
	var res struct {
		Wallets []planbok.Wallet `json:"wallets"`
	}
	json.Unmarshal(e.getChallenge(c.ID, ch.ChallengeID).Result, &res)
	if len(res.Wallets) != 2 || res.Wallets[1].KeyType != "ed25519" {
		t.Errorf("got result %+v", res)
	}
}
