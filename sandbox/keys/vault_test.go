package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestValidPIN(t *testing.T) {
	tests := []struct {
		pin  string
		want bool
	}{
		{"123456", true},
		{"000000", true},
		{"999999", true},
		{"", false},
		{"12345", false},
		{"1234567", false},
		{"12345a", false},
		{" 12345", false},
		{"123456 ", false},
		{"+12345", false},
		{"-12345", false},
		{"12 456", false},
		{"１２３４５６", false}, // full-width digits
		{"١٢٣٤٥٦", false}, // Arabic-Indic digits
		{"12345\x00", false},
	}
	for _, tt := range tests {
		if got := ValidPIN(tt.pin); got != tt.want {
			t.Errorf("ValidPIN(%q): got %v, want %v", tt.pin, got, tt.want)
		}
	}
}

func TestRecoverySecretFromAnswers_Normalises(t *testing.T) {
	a, err := RecoverySecretFromAnswers([]string{"Fluffy", "  Main   Street\t12 ", "ＣＡＦÉ"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := RecoverySecretFromAnswers([]string{"fluffy", "main street 12", "café"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("answers differing only in case, spacing and width: got different secrets, want equal")
	}
	// "é" composed (U+00E9) and decomposed (e + U+0301) are the same answer.
	c, err := RecoverySecretFromAnswers([]string{"fluffy", "main street 12", "cafe\u0301"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, c) {
		t.Error("composed and decomposed é: got different secrets, want equal")
	}
}

func TestRecoverySecretFromAnswers_Distinguishes(t *testing.T) {
	pairs := [][2][]string{
		{{"ab", "c"}, {"a", "bc"}},         // length prefixes
		{{"a b", "c"}, {"a", "b c"}},       // spaces inside answers
		{{"x", "y", "z"}, {"x", "z", "y"}}, // order matters
		{{"x", "y"}, {"x", "y", "z"}},      // count matters
		{{"fluffy"}, {"fluffy2"}},          // a wrong answer
		{{"main street"}, {"mainstreet"}},  // inner space kept as one
	}
	for _, p := range pairs {
		a, err := RecoverySecretFromAnswers(p[0])
		if err != nil {
			t.Fatal(err)
		}
		b, err := RecoverySecretFromAnswers(p[1])
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(a, b) {
			t.Errorf("%q and %q: got equal secrets, want different", p[0], p[1])
		}
	}
}

func TestRecoverySecretFromAnswers_Empty(t *testing.T) {
	for _, answers := range [][]string{nil, {}, {"a", ""}, {"a", "  \t\u3000 "}} {
		if _, err := RecoverySecretFromAnswers(answers); err == nil {
			t.Errorf("%q: got nil error, want one", answers)
		}
	}
	_, err := RecoverySecretFromAnswers([]string{"ok", " "})
	if !errors.Is(err, ErrEmptyAnswer) || !strings.Contains(err.Error(), "answer 2") {
		t.Errorf("got %v, want ErrEmptyAnswer naming answer 2", err)
	}
}

func TestSeal_RoundTrip(t *testing.T) {
	plain := []byte("a share")
	s, err := Seal([]byte("123456"), plain, LightParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if s.Params != LightParams || len(s.Salt) != 16 || len(s.Nonce) != 12 {
		t.Errorf("got params %+v salt %d nonce %d bytes, want %+v 16 12", s.Params, len(s.Salt), len(s.Nonce), LightParams)
	}
	if bytes.Contains(s.Ciphertext, plain) {
		t.Error("ciphertext contains the plaintext")
	}
	got, err := Open([]byte("123456"), s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Error("opened value differs from the sealed one")
	}

	// Survives JSON, as the sandbox stores it.
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Sealed
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if got, err := Open([]byte("123456"), back); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("after JSON: got err %v, want the plaintext", err)
	}

	// A second seal of the same value uses a new salt and nonce.
	s2, err := Seal([]byte("123456"), plain, LightParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(s.Salt, s2.Salt) || bytes.Equal(s.Ciphertext, s2.Ciphertext) {
		t.Error("two seals share salt or ciphertext")
	}
}

func TestOpen_WrongSecretOrTampered(t *testing.T) {
	s, err := Seal([]byte("123456"), []byte("a share"), LightParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte) []byte { c := bytes.Clone(b); c[0] ^= 1; return c }
	cases := map[string]struct {
		secret string
		s      Sealed
	}{
		"wrong PIN":      {"123457", s},
		"empty secret":   {"", s},
		"ciphertext":     {"123456", Sealed{s.Salt, s.Nonce, flip(s.Ciphertext), s.Params}},
		"salt":           {"123456", Sealed{flip(s.Salt), s.Nonce, s.Ciphertext, s.Params}},
		"nonce":          {"123456", Sealed{s.Salt, flip(s.Nonce), s.Ciphertext, s.Params}},
		"params (time)":  {"123456", Sealed{s.Salt, s.Nonce, s.Ciphertext, Params{2, 64, 1}}},
		"params (lanes)": {"123456", Sealed{s.Salt, s.Nonce, s.Ciphertext, Params{1, 64, 2}}},
	}
	for name, c := range cases {
		if _, err := Open([]byte(c.secret), c.s); !errors.Is(err, ErrWrongSecret) {
			t.Errorf("%s: got %v, want ErrWrongSecret", name, err)
		}
	}
}

func TestOpen_Malformed(t *testing.T) {
	s, err := Seal([]byte("123456"), []byte("a share"), LightParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]Sealed{
		"zero":        {},
		"short salt":  {s.Salt[:8], s.Nonce, s.Ciphertext, s.Params},
		"short nonce": {s.Salt, s.Nonce[:8], s.Ciphertext, s.Params},
		"huge memory": {s.Salt, s.Nonce, s.Ciphertext, Params{1, 1<<20 + 1, 1}},
		"huge time":   {s.Salt, s.Nonce, s.Ciphertext, Params{17, 64, 1}},
		"no threads":  {s.Salt, s.Nonce, s.Ciphertext, Params{1, 64, 0}},
		"tiny memory": {s.Salt, s.Nonce, s.Ciphertext, Params{1, 8, 2}},
	}
	for name, c := range cases {
		_, err := Open([]byte("123456"), c)
		if err == nil || errors.Is(err, ErrWrongSecret) {
			t.Errorf("%s: got %v, want a malformed-value error", name, err)
		}
	}
}

func TestSeal_Errors(t *testing.T) {
	if _, err := Seal(nil, []byte("x"), LightParams, rand.Reader); err == nil {
		t.Error("empty secret: got nil error, want one")
	}
	if _, err := Seal([]byte("123456"), []byte("x"), Params{}, rand.Reader); err == nil {
		t.Error("zero params: got nil error, want one")
	}
	if _, err := Seal([]byte("123456"), []byte("x"), LightParams, bytes.NewReader(make([]byte, 20))); err == nil {
		t.Error("short rand: got nil error, want one")
	}
}

func TestParams_Defaults(t *testing.T) {
	// RFC 9106 §4, second recommended option's t and m; p=1 (see DefaultParams).
	if want := (Params{Time: 3, MemoryKiB: 65536, Threads: 1}); DefaultParams != want {
		t.Errorf("DefaultParams: got %+v, want %+v", DefaultParams, want)
	}
	for name, p := range map[string]Params{"default": DefaultParams, "light": LightParams} {
		if err := p.validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestShamir_AnyTwoOfThree(t *testing.T) {
	seed, err := newSeed(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(seed) != 32 || seed[31]&0xf0 != 0 {
		t.Fatalf("seed: got %d bytes, top nibble %x; want 32 bytes, top nibble 0", len(seed), seed[31]>>4)
	}
	user, node, recovery, err := split(seed, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, sh := range map[string][]byte{"user": user, "node": node, "recovery": recovery} {
		if len(sh) != shareSize {
			t.Errorf("%s share: got %d bytes, want %d", name, len(sh), shareSize)
		}
		if bytes.Contains(sh, seed[:8]) {
			t.Errorf("%s share contains part of the seed", name)
		}
	}
	pairs := []struct {
		name string
		a    []byte
		ax   byte
		b    []byte
		bx   byte
	}{
		{"user+node", user, userX, node, nodeX},
		{"node+user", node, nodeX, user, userX},
		{"node+recovery", node, nodeX, recovery, recoveryX},
		{"user+recovery", user, userX, recovery, recoveryX},
	}
	for _, p := range pairs {
		got, err := combine(p.a, p.ax, p.b, p.bx)
		if err != nil {
			t.Errorf("%s: %v", p.name, err)
			continue
		}
		if !bytes.Equal(got, seed) {
			t.Errorf("%s: rebuilt seed differs", p.name)
		}
	}

	// A share in the wrong slot, a duplicate, or a malformed share is refused.
	if _, err := combine(node, userX, user, nodeX); err == nil {
		t.Error("swapped shares: got nil error, want one")
	}
	if _, err := combine(user, userX, user, userX); err == nil {
		t.Error("same share twice: got nil error, want one")
	}
	if _, err := combine(user[:20], userX, node, nodeX); err == nil {
		t.Error("short share: got nil error, want one")
	}
	bad := bytes.Clone(node)
	for i := 1; i < len(bad); i++ {
		bad[i] = 0xff // not a canonical scalar
	}
	if _, err := combine(user, userX, bad, nodeX); err == nil {
		t.Error("non-canonical share: got nil error, want one")
	}

	// Splitting again gives new shares for the same seed.
	user2, node2, _, err := split(seed, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(user, user2) || bytes.Equal(node, node2) {
		t.Error("second split repeated a share")
	}
	// Shares of different splits do not combine to the seed.
	if got, err := combine(user, userX, node2, nodeX); err == nil && bytes.Equal(got, seed) {
		t.Error("shares of two splits rebuilt the seed")
	}
}

func TestShamir_EdgeSeeds(t *testing.T) {
	max := bytes.Repeat([]byte{0xff}, 32)
	max[31] = 0x0f
	for name, seed := range map[string][]byte{"zero": make([]byte, 32), "max": max} {
		u, n, r, err := split(seed, rand.Reader)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := combine(n, nodeX, r, recoveryX)
		if err != nil || !bytes.Equal(got, seed) {
			t.Errorf("%s: node+recovery: got err %v or a different seed", name, err)
		}
		got, err = combine(u, userX, n, nodeX)
		if err != nil || !bytes.Equal(got, seed) {
			t.Errorf("%s: user+node: got err %v or a different seed", name, err)
		}
	}
	over := bytes.Repeat([]byte{0xff}, 32) // ≥ ℓ: not a scalar
	if _, _, _, err := split(over, rand.Reader); err == nil {
		t.Error("seed ≥ ℓ: got nil error, want one")
	}
}

func answers(t *testing.T, a ...string) []byte {
	t.Helper()
	s, err := RecoverySecretFromAnswers(a)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestVault(t *testing.T) (*Vault, []byte) {
	t.Helper()
	v, err := NewVault("123456", answers(t, "rex", "paris", "blue"), LightParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := v.Seed("123456")
	if err != nil {
		t.Fatal(err)
	}
	return v, seed
}

func TestVault_NewAndSeed(t *testing.T) {
	v, seed := newTestVault(t)
	if len(seed) != 32 {
		t.Fatalf("seed: got %d bytes, want 32", len(seed))
	}
	if !v.HasRecovery() || len(v.Node) != shareSize || len(v.Check) != 32 {
		t.Errorf("got hasRecovery %v node %d check %d bytes, want true %d 32", v.HasRecovery(), len(v.Node), len(v.Check), shareSize)
	}
	if _, err := v.Seed("654321"); !errors.Is(err, ErrWrongSecret) {
		t.Errorf("wrong PIN: got %v, want ErrWrongSecret", err)
	}
	v2, err := NewVault("123456", answers(t, "rex", "paris", "blue"), LightParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	seed2, err := v2.Seed("123456")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(seed, seed2) {
		t.Error("two vaults got the same seed")
	}
	for _, pin := range []string{"12345", "abcdef", ""} {
		if _, err := NewVault(pin, nil, LightParams, rand.Reader); !errors.Is(err, ErrInvalidPIN) {
			t.Errorf("NewVault(%q): got %v, want ErrInvalidPIN", pin, err)
		}
	}
}

func TestVault_JSON(t *testing.T) {
	v, seed := newTestVault(t)
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var back Vault
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	got, err := back.Seed("123456")
	if err != nil || !bytes.Equal(got, seed) {
		t.Errorf("after JSON: got err %v or a different seed", err)
	}
	if err := back.ResetPIN(answers(t, "rex", "paris", "blue"), "111111", LightParams, rand.Reader); err != nil {
		t.Errorf("after JSON, ResetPIN: %v", err)
	}
}

func TestVault_ChangePIN(t *testing.T) {
	v, seed := newTestVault(t)
	node, recovery := bytes.Clone(v.Node), v.Recovery
	if err := v.ChangePIN("000000", "222222", LightParams, rand.Reader); !errors.Is(err, ErrWrongSecret) {
		t.Errorf("wrong old PIN: got %v, want ErrWrongSecret", err)
	}
	if err := v.ChangePIN("123456", "22222", LightParams, rand.Reader); !errors.Is(err, ErrInvalidPIN) {
		t.Errorf("invalid new PIN: got %v, want ErrInvalidPIN", err)
	}
	if err := v.ChangePIN("123456", "222222", LightParams, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Seed("123456"); !errors.Is(err, ErrWrongSecret) {
		t.Errorf("old PIN after change: got %v, want ErrWrongSecret", err)
	}
	got, err := v.Seed("222222")
	if err != nil || !bytes.Equal(got, seed) {
		t.Errorf("new PIN: got err %v or a different seed", err)
	}
	if !bytes.Equal(v.Node, node) || !bytes.Equal(v.Recovery.Ciphertext, recovery.Ciphertext) {
		t.Error("ChangePIN touched the node or recovery share")
	}
}

func TestVault_ResetPIN(t *testing.T) {
	v, seed := newTestVault(t)
	before, err := Derive(seed, "ETH", 0)
	if err != nil {
		t.Fatal(err)
	}
	oldUser, oldNode := v.User, bytes.Clone(v.Node)
	rec := answers(t, "Rex", " Paris ", "BLUE") // same answers, typed differently

	if err := v.ResetPIN(answers(t, "rex", "london", "blue"), "333333", LightParams, rand.Reader); !errors.Is(err, ErrWrongSecret) {
		t.Errorf("wrong answers: got %v, want ErrWrongSecret", err)
	}
	if err := v.ResetPIN(rec, "33333", LightParams, rand.Reader); !errors.Is(err, ErrInvalidPIN) {
		t.Errorf("invalid new PIN: got %v, want ErrInvalidPIN", err)
	}
	if got, err := v.Seed("123456"); err != nil || !bytes.Equal(got, seed) {
		t.Fatal("failed resets changed the vault")
	}

	if err := v.ResetPIN(rec, "333333", LightParams, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Seed("123456"); !errors.Is(err, ErrWrongSecret) {
		t.Errorf("old PIN after reset: got %v, want ErrWrongSecret", err)
	}
	got, err := v.Seed("333333")
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("new PIN: got err %v or a different seed", err)
	}
	after, err := Derive(got, "ETH", 0)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Error("derived account changed across ResetPIN")
	}

	// The old user share, even opened with the old PIN, no longer combines
	// with the new node share: the vault was re-split.
	oldShare, err := Open([]byte("123456"), oldUser)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(v.Node, oldNode) {
		t.Error("node share unchanged after ResetPIN")
	}
	if _, err := v.rebuild(oldShare, userX, v.Node, nodeX); !errors.Is(err, ErrSharesMismatch) {
		t.Errorf("old user share with new node share: got %v, want ErrSharesMismatch", err)
	}

	// Recovery still works with the same answers after a reset.
	if err := v.ResetPIN(answers(t, "rex", "paris", "blue"), "444444", LightParams, rand.Reader); err != nil {
		t.Errorf("second reset: %v", err)
	}
}

func TestVault_SetRecovery(t *testing.T) {
	v, seed := newTestVault(t)
	oldRec, newRec := answers(t, "rex", "paris", "blue"), answers(t, "max", "rome", "green")
	if err := v.SetRecovery("000000", newRec, LightParams, rand.Reader); !errors.Is(err, ErrWrongSecret) {
		t.Errorf("wrong PIN: got %v, want ErrWrongSecret", err)
	}
	if err := v.SetRecovery("123456", nil, LightParams, rand.Reader); err == nil {
		t.Error("empty recovery secret: got nil error, want one")
	}
	if err := v.SetRecovery("123456", newRec, LightParams, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if err := v.ResetPIN(oldRec, "555555", LightParams, rand.Reader); !errors.Is(err, ErrWrongSecret) {
		t.Errorf("old recovery secret: got %v, want ErrWrongSecret", err)
	}
	if got, err := v.Seed("123456"); err != nil || !bytes.Equal(got, seed) {
		t.Errorf("PIN after SetRecovery: got err %v or a different seed", err)
	}
	if err := v.ResetPIN(newRec, "555555", LightParams, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if got, err := v.Seed("555555"); err != nil || !bytes.Equal(got, seed) {
		t.Errorf("after reset with new recovery: got err %v or a different seed", err)
	}
}

func TestVault_WithoutRecovery(t *testing.T) {
	v, err := NewVault("123456", nil, LightParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if v.HasRecovery() || !v.Recovery.IsZero() {
		t.Error("vault without recovery: got a recovery share")
	}
	seed, err := v.Seed("123456")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ResetPIN(answers(t, "a"), "222222", LightParams, rand.Reader); !errors.Is(err, ErrNoRecovery) {
		t.Errorf("ResetPIN: got %v, want ErrNoRecovery", err)
	}
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var back Vault
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back.HasRecovery() {
		t.Error("after JSON: got a recovery share")
	}

	// Setting recovery later enables ResetPIN with the same seed.
	rec := answers(t, "a")
	if err := v.SetRecovery("123456", rec, LightParams, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if err := v.ResetPIN(rec, "222222", LightParams, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if got, err := v.Seed("222222"); err != nil || !bytes.Equal(got, seed) {
		t.Errorf("got err %v or a different seed", err)
	}
}

func TestVault_TamperedNode(t *testing.T) {
	v, _ := newTestVault(t)
	other, _ := newTestVault(t)
	v.Node = other.Node
	if _, err := v.Seed("123456"); !errors.Is(err, ErrSharesMismatch) {
		t.Errorf("node share of another vault: got %v, want ErrSharesMismatch", err)
	}
	v.Node = v.Node[:10]
	if _, err := v.Seed("123456"); err == nil {
		t.Error("truncated node share: got nil error, want one")
	}
}

func BenchmarkOpenPIN(b *testing.B) {
	for _, bc := range []struct {
		name string
		p    Params
	}{{"Default", DefaultParams}, {"Light", LightParams}} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := Seal([]byte("123456"), make([]byte, shareSize), bc.p, rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Open([]byte("123456"), s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDeriveEVM(b *testing.B) {
	seed := mustHex(b, abandonSeed)
	for b.Loop() {
		if _, err := DeriveEVM(seed, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeriveSolana(b *testing.B) {
	seed := mustHex(b, abandonSeed)
	for b.Loop() {
		if _, err := DeriveSolana(seed, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func TestVault_NilRand(t *testing.T) {
	v, err := NewVault("123456", []byte("recovery"), LightParams, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Seed("123456"); err != nil {
		t.Fatal(err)
	}
	if err := v.ResetPIN([]byte("recovery"), "654321", LightParams, nil); err != nil {
		t.Fatal(err)
	}
}

func TestNewVault_ShortRand(t *testing.T) {
	if _, err := NewVault("123456", nil, LightParams, bytes.NewReader(make([]byte, 10))); err == nil {
		t.Error("exhausted rand: got nil error, want one")
	}
}
