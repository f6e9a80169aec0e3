package keys

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
)

// ErrNoRecovery is returned by ResetPIN when the vault has no recovery share.
var ErrNoRecovery = errors.New("keys: recovery is not set up")

// ErrSharesMismatch is returned when two shares that both opened correctly do
// not rebuild the seed recorded in Vault.Check, for example when a store kept
// a new user share beside an old node share.
var ErrSharesMismatch = errors.New("keys: shares do not belong to the same seed")

// Vault is one customer's key material at rest. The master seed is split
// 2-of-3 with Shamir's secret sharing; nothing here reveals the seed without
// two shares, and two of the three shares are sealed: the PIN opens User, the
// recovery secret opens Recovery, and Node is kept in the clear by the sandbox
// (playing Planbok's node). Seed needs the PIN; ResetPIN needs the recovery
// secret. JSON-serialisable.
//
// A Vault without recovery (initialised with recovery = null) has a zero
// Recovery; its recovery share was discarded, so ResetPIN fails with
// ErrNoRecovery until SetRecovery.
type Vault struct {
	// User is the user share sealed under the PIN.
	User Sealed `json:"user"`
	// Node is the node share, kept by the sandbox.
	Node []byte `json:"node"`
	// Recovery is the recovery share sealed under the recovery secret, or
	// zero when recovery is not set up.
	Recovery Sealed `json:"recovery"`
	// Check is a SHA-256 fingerprint of the seed (domain-separated), so that
	// mismatched shares fail with ErrSharesMismatch instead of silently
	// deriving other keys. It reveals nothing usable: the seed has 252 random
	// bits. Optional: when empty, nothing is checked.
	Check []byte `json:"check,omitempty"`
}

// NewVault makes a random 32-byte master seed (252 random bits; see
// shamir.go) and splits it 2-of-3 into user, node and recovery shares, sealing
// the user share under pin and the recovery share under recoverySecret. A nil
// or empty recoverySecret makes a Vault without recovery. rand is the source
// of the seed, salts and nonces: crypto/rand.Reader (or nil, which means
// that) outside tests.
//
// 32 bytes rather than BIP-39's 64: BIP-32 recommends 256 bits and the keys
// derived from the seed give about 128-bit security, so a longer seed adds
// size, not strength (a 64-byte BIP-39 seed is PBKDF2 output of a mnemonic
// with at most 256 bits of entropy anyway).
func NewVault(pin string, recoverySecret []byte, p Params, rand io.Reader) (*Vault, error) {
	if !ValidPIN(pin) {
		return nil, ErrInvalidPIN
	}
	seed, err := newSeed(rand)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	return seal(seed, pin, recoverySecret, p, rand)
}

// Seed rebuilds the master seed from the user share (opened with pin) and the
// node share. It returns ErrWrongSecret for a wrong PIN. The caller owns the
// returned slice and should clear it once the keys are derived.
func (v *Vault) Seed(pin string) ([]byte, error) {
	user, err := Open([]byte(pin), v.User)
	if err != nil {
		return nil, err
	}
	defer clear(user)
	return v.rebuild(user, userX, v.Node, nodeX)
}

// ChangePIN re-seals the user share under newPIN after opening it with
// oldPIN (ErrWrongSecret if that fails). The seed and the other shares are
// unchanged. v is modified only on success.
func (v *Vault) ChangePIN(oldPIN, newPIN string, p Params, rand io.Reader) error {
	if !ValidPIN(newPIN) {
		return ErrInvalidPIN
	}
	user, err := Open([]byte(oldPIN), v.User)
	if err != nil {
		return err
	}
	defer clear(user)
	sealed, err := Seal([]byte(newPIN), user, p, rand)
	if err != nil {
		return err
	}
	v.User = sealed
	return nil
}

// SetRecovery sets up or re-configures recovery: it rebuilds the seed with pin
// (ErrWrongSecret if wrong), splits it afresh and re-seals all three shares,
// the recovery share under recoverySecret. The old shares, so the old
// recovery secret, stop working; the seed, so every key, stays the same. v is
// modified only on success.
func (v *Vault) SetRecovery(pin string, recoverySecret []byte, p Params, rand io.Reader) error {
	if len(recoverySecret) == 0 {
		return errors.New("keys: empty recovery secret")
	}
	seed, err := v.Seed(pin)
	if err != nil {
		return err
	}
	defer clear(seed)
	nv, err := seal(seed, pin, recoverySecret, p, rand)
	if err != nil {
		return err
	}
	*v = *nv
	return nil
}

// ResetPIN is the forgotten-PIN path: it rebuilds the seed from the node
// share and the recovery share (opened with recoverySecret; ErrWrongSecret if
// wrong, ErrNoRecovery if there is none), splits it afresh and re-seals all
// three shares, the user share under newPIN and the recovery share under the
// same recoverySecret. The old PIN and old user share stop working; the seed,
// so every key, stays the same. v is modified only on success.
func (v *Vault) ResetPIN(recoverySecret []byte, newPIN string, p Params, rand io.Reader) error {
	if !ValidPIN(newPIN) {
		return ErrInvalidPIN
	}
	if !v.HasRecovery() {
		return ErrNoRecovery
	}
	recovery, err := Open(recoverySecret, v.Recovery)
	if err != nil {
		return err
	}
	defer clear(recovery)
	seed, err := v.rebuild(v.Node, nodeX, recovery, recoveryX)
	if err != nil {
		return err
	}
	defer clear(seed)
	nv, err := seal(seed, newPIN, recoverySecret, p, rand)
	if err != nil {
		return err
	}
	*v = *nv
	return nil
}

// HasRecovery reports whether a recovery share is sealed in v.
func (v *Vault) HasRecovery() bool { return !v.Recovery.IsZero() }

// seal splits seed afresh and returns a Vault with every share sealed. With an
// empty recoverySecret the recovery share is dropped.
func seal(seed []byte, pin string, recoverySecret []byte, p Params, rand io.Reader) (*Vault, error) {
	user, node, recovery, err := split(seed, rand)
	if err != nil {
		return nil, err
	}
	defer clear(user)
	defer clear(recovery)
	v := &Vault{Node: node, Check: fingerprint(seed)}
	if v.User, err = Seal([]byte(pin), user, p, rand); err != nil {
		return nil, err
	}
	if len(recoverySecret) > 0 {
		if v.Recovery, err = Seal(recoverySecret, recovery, p, rand); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// rebuild combines two shares and checks the result against v.Check.
func (v *Vault) rebuild(a []byte, ax byte, b []byte, bx byte) ([]byte, error) {
	seed, err := combine(a, ax, b, bx)
	if err != nil {
		return nil, err
	}
	if len(v.Check) > 0 && subtle.ConstantTimeCompare(fingerprint(seed), v.Check) != 1 {
		clear(seed)
		return nil, ErrSharesMismatch
	}
	return seed, nil
}

// fingerprintLabel domain-separates Vault.Check from any other hash of the
// seed (BIP-32 itself uses HMAC-SHA512 keyed "Bitcoin seed").
const fingerprintLabel = "custodyflows/sandbox/keys.Vault.Check/v1"

func fingerprint(seed []byte) []byte {
	h := sha256.New()
	h.Write([]byte(fingerprintLabel))
	h.Write(seed)
	return h.Sum(nil)
}
