package keys

import (
	"bytes"
	"crypto/hmac"
	"errors"
	"testing"
)

func TestWrapper_RoundTripAndBinding(t *testing.T) {
	key := bytes.Repeat([]byte{1}, StorageKeySize)
	w, err := NewWrapper(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("a recovery secret of thirty-two!")
	a, err := w.Wrap("escrow|c1", secret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := w.Wrap("escrow|c1", secret)
	if bytes.Equal(a, b) {
		t.Error("two wraps of the same value are equal: nonces repeat")
	}
	if bytes.Contains(a, secret) {
		t.Error("the wrapped value holds the plaintext")
	}
	got, err := w.Unwrap("escrow|c1", a)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("unwrap: got %q, %v", got, err)
	}
	// Another label (another customer's row), another key, or a changed
	// byte does not open.
	if _, err := w.Unwrap("escrow|c2", a); !errors.Is(err, ErrUnwrap) {
		t.Errorf("other label: got %v, want ErrUnwrap", err)
	}
	other, _ := NewWrapper(bytes.Repeat([]byte{2}, StorageKeySize), nil)
	if _, err := other.Unwrap("escrow|c1", a); !errors.Is(err, ErrUnwrap) {
		t.Errorf("other key: got %v, want ErrUnwrap", err)
	}
	bad := bytes.Clone(a)
	bad[len(bad)-1] ^= 1
	for _, v := range [][]byte{bad, nil, {1}, a[:20], append([]byte{9}, a[1:]...)} {
		if _, err := w.Unwrap("escrow|c1", v); !errors.Is(err, ErrUnwrap) {
			t.Errorf("%x: got %v, want ErrUnwrap", v, err)
		}
	}
	if _, err := NewWrapper(key[:16], nil); err == nil {
		t.Error("short key accepted")
	}
}

func TestWrapper_MAC(t *testing.T) {
	w, _ := NewWrapper(bytes.Repeat([]byte{1}, StorageKeySize), nil)
	other, _ := NewWrapper(bytes.Repeat([]byte{2}, StorageKeySize), nil)
	m := w.MAC("code|ch1", []byte("123456"))
	if !hmac.Equal(m, w.MAC("code|ch1", []byte("123456"))) {
		t.Error("MAC is not deterministic")
	}
	for name, m2 := range map[string][]byte{
		"other code":  w.MAC("code|ch1", []byte("123457")),
		"other label": w.MAC("code|ch2", []byte("123456")),
		"other key":   other.MAC("code|ch1", []byte("123456")),
		"split moved": w.MAC("code|ch11", []byte("23456")),
	} {
		if hmac.Equal(m, m2) {
			t.Errorf("%s: same MAC", name)
		}
	}
	if bytes.Equal(w.KeyCheck(), other.KeyCheck()) {
		t.Error("two keys have the same key check")
	}
}
