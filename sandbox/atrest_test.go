package sandbox

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox/keys"
)

// seededRand is a deterministic source for Options.Rand, so the emailed
// code, and so what the file is searched for, is the same on every run.
type seededRand struct{ r *rand.ChaCha8 }

func (s seededRand) Read(p []byte) (int, error) { return s.r.Read(p) }

func newSeededRand() seededRand {
	return seededRand{rand.NewChaCha8([32]byte{'a', 't', 'r', 'e', 's', 't'})}
}

// emailRecoveryCustomer onboards a customer with email recovery and a
// wallet, and opens a reset-pin challenge, so a code has been "emailed".
func emailRecoveryCustomer(e *env) (planbok.Customer, planbok.Challenge, string) {
	e.t.Helper()
	c := e.createCustomer()
	ch := e.challenge(c.ID, planbok.TaskInitialize)
	e.mustComplete(ch.ChallengeID, map[string]any{"pin": pin1, "recovery": map[string]any{"method": "email", "email": "ada@example.com"}})
	e.createWallets(c.ID, pin1, "ETH-SEPOLIA")
	rs := e.challenge(c.ID, planbok.TaskResetPIN)
	code, err := e.helper.EmailCode(e.t.Context(), c.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return c, rs, code
}

// The attack: with sandbox.db alone (no PIN), take the escrowed
// recovery secret and the node share and rebuild the seed. The database
// must not make that possible, must not hold an emailed code in clear, and
// every file the sandbox creates must be 0600.
func TestAtRest_FileAloneRevealsNoSecret(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "sandbox.db")
	e := newEnv(t, func(o *Options) { o.DBPath = dbPath; o.Rand = newSeededRand() })
	c, _, code := emailRecoveryCustomer(e)

	// Modes while the database is open (WAL and shared-memory files exist).
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("files: got %v", files)
	}
	var all []byte
	for _, f := range files {
		info, err := f.Info()
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: mode %o, want 600", f.Name(), perm)
		}
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() != filepath.Base(dbPath)+".key" {
			all = append(all, b...)
		}
	}
	if bytes.Contains(all, []byte(code)) {
		t.Errorf("the emailed code %s is in the database files in clear", code)
	}

	// Read the database as an attacker with the file would.
	x, err := sqlx.Open("sqlite3", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var row struct {
		Vault  sql.NullString `db:"vault"`
		Escrow []byte         `db:"escrow"`
		Code   string         `db:"email_code"`
	}
	if err := x.Get(&row, `SELECT vault, escrow, email_code FROM customers WHERE id = ?`, c.ID); err != nil {
		t.Fatal(err)
	}
	if row.Code == code || strings.Contains(row.Code, code) {
		t.Errorf("customers.email_code holds the code in clear: %q", row.Code)
	}
	var chCodes []string
	if err := x.Select(&chCodes, `SELECT email_code FROM challenges WHERE email_code <> ''`); err != nil {
		t.Fatal(err)
	}
	if len(chCodes) == 0 {
		t.Error("no challenge records its emailed code in any form")
	}
	for _, cc := range chCodes {
		if strings.Contains(cc, code) {
			t.Errorf("challenges.email_code holds the code in clear: %q", cc)
		}
	}
	var v keys.Vault
	if err := json.Unmarshal([]byte(row.Vault.String), &v); err == nil && len(v.Node) > 0 {
		if err := v.ResetPIN(row.Escrow, pin3, keys.LightParams, nil); err == nil {
			t.Fatal("the seed was rebuilt from the database file alone, without the PIN")
		}
		if _, err := keys.Open(row.Escrow, v.Recovery); err == nil {
			t.Fatal("the escrowed recovery secret opens the recovery share as stored")
		}
	}
}

// The behaviour the storage change must keep: a PIN reset by emailed code
// works, and survives a restart between the email and the reset.
func TestAtRest_EmailResetAcrossRestart(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "sandbox.db")
	e := newEnv(t, func(o *Options) { o.DBPath = dbPath })
	c, rs, code := emailRecoveryCustomer(e)
	before, err := e.export(c.ID, pin1)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sb.Close(); err != nil {
		t.Fatal(err)
	}
	e.start()
	if got, err := e.helper.EmailCode(t.Context(), c.ID); err != nil || got != code {
		t.Fatalf("email code after restart: got %q, %v, want %q", got, err, code)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "000001"
	}
	_, err = e.complete(rs.ChallengeID, map[string]any{"recovery": map[string]any{"emailCode": wrong}, "newPin": pin2})
	wantAttempts(t, err, 422, 4)
	e.mustComplete(rs.ChallengeID, map[string]any{"recovery": map[string]any{"emailCode": code}, "newPin": pin2})
	after, err := e.export(c.ID, pin2)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Error("keys changed across the reset")
	}
}

// A copy of the database without its key file is refused with a clear
// error rather than opened with a new key that cannot read it.
func TestAtRest_DatabaseWithoutItsKey(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "sandbox.db")
	e := newEnv(t, func(o *Options) { o.DBPath = dbPath })
	emailRecoveryCustomer(e)
	if err := e.sb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dbPath + ".key"); err != nil {
		t.Fatal(err)
	}
	opts := e.opts
	opts.BaseURL = "http://sandbox.test"
	sb, err := New(opts)
	if err == nil {
		sb.Close()
		t.Fatal("opened a database whose key file is gone")
	}
	if !strings.Contains(err.Error(), ".key") {
		t.Errorf("error %q does not name the key file", err)
	}
	// Another key is refused too.
	if err := os.WriteFile(dbPath+".key", []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if sb, err := New(opts); err == nil {
		sb.Close()
		t.Fatal("opened the database with another key")
	}
}

// A database written before secrets were wrapped is upgraded when opened:
// its email customer can still reset by the code already emailed, and no
// secret is left in clear.
func TestAtRest_UpgradesOldDatabase(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "sandbox.db")
	d, err := openDB(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	escrow := bytes.Repeat([]byte{7}, 32)
	v, err := keys.NewVault(pin1, escrow, keys.LightParams, nil)
	if err != nil {
		t.Fatal(err)
	}
	vj, _ := json.Marshal(v)
	clock := newFakeClock()
	now := toNanos(clock.Now())
	const custID, chID, code = "0123456789abcdef01234567", "89abcdef0123456789abcdef", "424242"
	if _, err := d.x.Exec(`INSERT INTO customers(id, name, ref_id, status, vault, recovery_method, recovery_email, escrow, email_code, created_at, updated_at)
		VALUES (?, 'Old', '', 'active', ?, 'email', 'old@example.com', ?, ?, ?, ?)`, custID, string(vj), escrow, code, now, now); err != nil {
		t.Fatal(err)
	}
	if _, err := d.x.Exec(`INSERT INTO challenges(id, customer_id, task, status, redirect_url, email_code, created_at, expires_at)
		VALUES (?, ?, 'reset-pin', 'pending', ?, ?, ?, ?)`, chID, custID, testRedirect, code, now, now+int64(DefaultChallengeTTL)); err != nil {
		t.Fatal(err)
	}
	if err := d.close(); err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, func(o *Options) { o.DBPath = dbPath; o.Clock = clock.Now })
	e.clock = clock
	if got, err := e.helper.EmailCode(t.Context(), custID); err != nil || got != code {
		t.Fatalf("email code after upgrade: got %q, %v", got, err)
	}
	var row struct {
		Vault  string `db:"vault"`
		Escrow []byte `db:"escrow"`
		Code   string `db:"email_code"`
	}
	if err := e.sb.db.x.Get(&row, `SELECT vault, escrow, email_code FROM customers`); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(row.Escrow, escrow) || strings.Contains(row.Code, code) || strings.HasPrefix(row.Vault, "{") {
		t.Errorf("not upgraded: %+v", row)
	}
	var chCode string
	if err := e.sb.db.x.Get(&chCode, `SELECT email_code FROM challenges`); err != nil || strings.Contains(chCode, code) {
		t.Errorf("challenge code not upgraded: %q, %v", chCode, err)
	}
	e.mustComplete(chID, map[string]any{"recovery": map[string]any{"emailCode": code}, "newPin": pin2})
	if _, err := e.export(custID, pin2); err != nil {
		t.Errorf("export with the new PIN after the upgrade: %v", err)
	}
}

// Several sandboxes starting at once on one fresh database agree on one
// key: none reads a half-written key file or keeps a key of its own.
func TestAtRest_ConcurrentFirstStart(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "sandbox.db")
	opts := testOptions(newFakeClock())
	opts.DBPath, opts.BaseURL = dbPath, "http://sandbox.test"
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			sb, err := New(opts)
			if err == nil {
				err = sb.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("sandbox %d: %v", i, err)
		}
	}
	sb, err := New(opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	sb.Close()
	matches, _ := filepath.Glob(dbPath + ".key*")
	if len(matches) != 1 {
		t.Errorf("key files: got %v, want one", matches)
	}
}
