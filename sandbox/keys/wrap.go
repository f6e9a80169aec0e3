package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// StorageKeySize is the size of a storage key: a random AES-256 key.
const StorageKeySize = 32

// wrapVersion starts every wrapped value, so a later format can be told
// apart.
const wrapVersion = 1

// ErrUnwrap is returned by Unwrap when the value was not wrapped under this
// key and label, or was altered.
var ErrUnwrap = errors.New("keys: wrapped value does not open under this key")

// Wrapper seals values at rest under a storage key that is kept apart from
// the values themselves (the sandbox keeps it in its own file; Planbok
// would keep it in an HSM or KMS). Unlike Seal, the key is random, not a
// PIN, so no key stretching is needed. Each value is bound to a label (what
// it is and whose it is), so a wrapped value copied into another row or
// column does not open there.
type Wrapper struct {
	aead cipher.AEAD
	mac  []byte
	rand io.Reader
}

// NewWrapper returns a Wrapper for a StorageKeySize-byte key. Separate
// keys for encryption and for MACs are derived from it. rand is the source
// of nonces (nil: crypto/rand).
func NewWrapper(key []byte, rand io.Reader) (*Wrapper, error) {
	if len(key) != StorageKeySize {
		return nil, fmt.Errorf("keys: storage key must be %d bytes, not %d", StorageKeySize, len(key))
	}
	encKey := derive(key, "custodyflows/sandbox/keys.Wrapper/encrypt/v1")
	defer clear(encKey)
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("keys: aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keys: gcm: %w", err)
	}
	return &Wrapper{aead: aead, mac: derive(key, "custodyflows/sandbox/keys.Wrapper/mac/v1"), rand: orCryptoRand(rand)}, nil
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Wrap encrypts plaintext with AES-256-GCM under a fresh nonce, bound to
// label.
func (w *Wrapper) Wrap(label string, plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+w.aead.Overhead())
	out[0] = wrapVersion
	if _, err := io.ReadFull(w.rand, out[1:]); err != nil {
		return nil, fmt.Errorf("keys: wrap: read nonce: %w", err)
	}
	return w.aead.Seal(out, out[1:], plaintext, []byte(label)), nil
}

// Unwrap opens a value made by Wrap with the same key and label.
func (w *Wrapper) Unwrap(label string, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 1+nonceSize+w.aead.Overhead() || wrapped[0] != wrapVersion {
		return nil, ErrUnwrap
	}
	plain, err := w.aead.Open(nil, wrapped[1:1+nonceSize], wrapped[1+nonceSize:], []byte(label))
	if err != nil {
		return nil, ErrUnwrap
	}
	return plain, nil
}

// MAC returns HMAC-SHA256 of value bound to label, under a key derived from
// the storage key. A short secret such as a 6-digit code is stored this
// way: a plain hash of it would be reversed by trying all million codes,
// which needs the storage key here. Compare with hmac.Equal.
func (w *Wrapper) MAC(label string, value []byte) []byte {
	m := hmac.New(sha256.New, w.mac)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write(value)
	return m.Sum(nil)
}

// KeyCheck is a value that identifies the storage key without revealing
// it, stored beside the wrapped values so a wrong key file is reported as
// such rather than as every value failing to open.
func (w *Wrapper) KeyCheck() []byte {
	return w.MAC("custodyflows/sandbox/keys.Wrapper/check/v1", nil)
}
