package keys

import (
	"crypto/aes"
	"crypto/cipher"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"
)

// Params tunes Argon2id. They are stored with every Sealed value, so changing
// DefaultParams later does not break secrets sealed earlier.
type Params struct {
	// Time is the number of passes over the memory (Argon2 "t").
	Time uint32 `json:"time"`
	// MemoryKiB is the memory size in KiB (Argon2 "m").
	MemoryKiB uint32 `json:"memoryKiB"`
	// Threads is the number of lanes (Argon2 "p"). It is part of the
	// function's definition: the same secret gives a different key with a
	// different lane count.
	Threads uint8 `json:"threads"`
}

// DefaultParams takes RFC 9106 §4's SECOND RECOMMENDED option (for hosts
// that cannot spare 2 GiB per hash): t=3 passes over m=64 MiB. That option
// names p=4 lanes, but the parameter-choice procedure in the same section
// sets p to the number of threads one call may use, and lanes do not change
// an attacker's cost (the same t×m blocks must be computed either way), only
// how much of the defender's work runs in parallel. The sandbox runs on a
// couple of shared cores and checks PINs for concurrent requests, so one call
// gets one thread: p=1. More lanes would only let one PIN check take both
// cores from the others (x/crypto/argon2 runs a goroutine per lane) without
// making a guess any dearer.
//
// LightParams is for tests and the sandbox's test mode only: one pass over
// 64 KiB, well under a millisecond, and no protection against guessing.
var (
	DefaultParams = Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 1}
	LightParams   = Params{Time: 1, MemoryKiB: 64, Threads: 1}
)

// Limits on Params accepted by Seal and Open: they keep a corrupted or hostile
// stored value from making Open allocate gigabytes or spin for minutes.
const (
	maxTime      = 16
	maxMemoryKiB = 1 << 20 // 1 GiB
)

func (p Params) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("keys: argon2id time %d out of range 1..%d", p.Time, maxTime)
	case p.Threads < 1:
		return errors.New("keys: argon2id needs at least one thread")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxMemoryKiB:
		// Argon2 needs at least 8 KiB per lane (RFC 9106 §3.1).
		return fmt.Errorf("keys: argon2id memory %d KiB out of range %d..%d", p.MemoryKiB, 8*uint32(p.Threads), maxMemoryKiB)
	}
	return nil
}

// Sizes of the sealing primitives: a 128-bit salt as RFC 9106 §4 recommends, a
// 256-bit AES key, and GCM's standard 96-bit nonce.
const (
	saltSize  = 16
	keySize   = 32
	nonceSize = 12
)

// sealAD is GCM's additional data: it names the format so that a ciphertext
// made by another scheme that happened to use the same key never opens here.
var sealAD = []byte("custodyflows/sandbox/keys.Sealed/v1")

// ErrWrongSecret is returned by Open (and so by every Vault method that takes
// a PIN or a recovery secret) when the secret is wrong. AES-GCM cannot tell a
// wrong key from an altered ciphertext, so tampering reads the same way.
var ErrWrongSecret = errors.New("keys: wrong PIN or recovery secret")

// Sealed is a secret wrapped with AES-256-GCM under a key derived by Argon2id
// from a secret (a PIN or a recovery secret) and a fresh random salt. It is
// JSON-serialisable (byte slices as base64) for the sandbox's SQLite store.
// The zero Sealed means "nothing sealed" (see IsZero).
type Sealed struct {
	// Salt is Argon2id's 16-byte salt, new for every Seal.
	Salt []byte `json:"salt,omitempty"`
	// Nonce is AES-GCM's 12-byte nonce.
	Nonce []byte `json:"nonce,omitempty"`
	// Ciphertext is the sealed value followed by GCM's 16-byte tag.
	Ciphertext []byte `json:"ciphertext,omitempty"`
	// Params are the Argon2id parameters the key was derived with.
	Params Params `json:"params"`
}

// IsZero reports whether s holds nothing, as a Vault's Recovery does when
// recovery has not been set up.
func (s Sealed) IsZero() bool {
	return len(s.Salt) == 0 && len(s.Nonce) == 0 && len(s.Ciphertext) == 0
}

// Seal wraps plaintext under secret. Every call draws a new salt (so a new
// key) and a new nonce from rand; a nil rand means crypto/rand.Reader.
func Seal(secret, plaintext []byte, p Params, rand io.Reader) (Sealed, error) {
	rand = orCryptoRand(rand)
	if len(secret) == 0 {
		return Sealed{}, errors.New("keys: seal: empty secret")
	}
	if err := p.validate(); err != nil {
		return Sealed{}, err
	}
	salt := make([]byte, saltSize)
	nonce := make([]byte, nonceSize)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return Sealed{}, fmt.Errorf("keys: seal: read salt: %w", err)
	}
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return Sealed{}, fmt.Errorf("keys: seal: read nonce: %w", err)
	}
	aead, err := newAEAD(secret, salt, p)
	if err != nil {
		return Sealed{}, err
	}
	return Sealed{
		Salt:       salt,
		Nonce:      nonce,
		Ciphertext: aead.Seal(nil, nonce, plaintext, sealAD),
		Params:     p,
	}, nil
}

// Open unwraps s with secret. It returns ErrWrongSecret when authentication
// fails, and another error when s is malformed (for example the zero Sealed).
func Open(secret []byte, s Sealed) ([]byte, error) {
	if s.IsZero() {
		return nil, errors.New("keys: open: nothing sealed")
	}
	if len(s.Salt) != saltSize || len(s.Nonce) != nonceSize {
		return nil, errors.New("keys: open: malformed sealed value")
	}
	if err := s.Params.validate(); err != nil {
		return nil, err
	}
	if len(secret) == 0 {
		return nil, ErrWrongSecret
	}
	aead, err := newAEAD(secret, s.Salt, s.Params)
	if err != nil {
		return nil, err
	}
	plaintext, err := aead.Open(nil, s.Nonce, s.Ciphertext, sealAD)
	if err != nil {
		return nil, ErrWrongSecret
	}
	return plaintext, nil
}

// newAEAD derives the AES-256 key with Argon2id and returns the GCM cipher.
// The raw key is cleared once the cipher has expanded it.
func newAEAD(secret, salt []byte, p Params) (cipher.AEAD, error) {
	key := argon2.IDKey(secret, salt, p.Time, p.MemoryKiB, p.Threads, keySize)
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keys: aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keys: gcm: %w", err)
	}
	return aead, nil
}

// orCryptoRand returns r, or crypto/rand.Reader when r is nil.
func orCryptoRand(r io.Reader) io.Reader {
	if r == nil {
		return cryptorand.Reader
	}
	return r
}
