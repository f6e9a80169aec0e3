package keys

import (
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"
)

// Shamir's secret sharing comes from Cloudflare's CIRCL
// (github.com/cloudflare/circl/secretsharing), which shares a scalar of a
// prime-order group. We use Ristretto255, whose scalar arithmetic CIRCL
// implements in constant time (its P-256/P-384/P-521 scalars are not). The
// scalar field has order ℓ = 2^252 + 27742317777372353535851937790883648493,
// so the master seed is 32 bytes whose top four bits are zero: 252 random
// bits, read as a little-endian scalar. Every such value is below ℓ, so the
// seed maps to a scalar and back unchanged, with no reduction and no
// rejection sampling. 252 bits is far above BIP-32's 128-bit minimum and the
// ~128-bit security of the secp256k1 and ed25519 keys derived from it.
//
// hashicorp/vault/shamir (byte-wise GF(2^8)) was the first choice, but it
// lives only in Vault's root module: requiring it adds ~360 modules and raises
// modules this one pins for the Temporal server (go-oidc, golang/mock,
// mapstructure, opentracing).

const (
	// seedSize is the master seed length in bytes (BIP-32 accepts 16..64).
	seedSize = 32
	// shareSize is one share's encoding: its x coordinate (1 byte, 1..3)
	// followed by the 32-byte little-endian scalar f(x).
	shareSize = 1 + seedSize
	// degree is CIRCL's threshold parameter t, the polynomial's degree: any
	// t+1 = 2 shares rebuild the secret, one share reveals nothing.
	degree = 1
)

// The x coordinate of each share. Fixed, so that a share in the wrong slot is
// detected instead of silently rebuilding a wrong seed.
const (
	userX     = 1
	nodeX     = 2
	recoveryX = 3
)

// newSeed draws a master seed from rand: 32 bytes with the top four bits of
// the last (most significant, little-endian) byte cleared, so that the seed
// is a canonical Ristretto255 scalar.
func newSeed(rand io.Reader) ([]byte, error) {
	rand = orCryptoRand(rand)
	seed := make([]byte, seedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("keys: read seed: %w", err)
	}
	seed[seedSize-1] &= 0x0f
	return seed, nil
}

// split shares seed 2-of-3 and returns the user, node and recovery shares.
// CIRCL draws the polynomial's random coefficient for Ristretto255 from
// crypto/rand itself (it ignores the reader it is given), so shares are never
// reproducible even with a deterministic rand; the seed is.
func split(seed []byte, rand io.Reader) (user, node, recovery []byte, err error) {
	s := group.Ristretto255.NewScalar()
	if err := s.UnmarshalBinary(seed); err != nil {
		return nil, nil, nil, errors.New("keys: seed is not a canonical scalar")
	}
	defer s.SetUint64(0)

	shares := secretsharing.New(orCryptoRand(rand), degree, s).Share(3)
	out := make([][]byte, len(shares))
	for i, sh := range shares {
		out[i], err = encodeShare(byte(i+1), sh.Value)
		sh.Value.SetUint64(0)
		if err != nil {
			return nil, nil, nil, err
		}
	}
	return out[0], out[1], out[2], nil
}

// combine rebuilds the seed from two shares, checking that their x
// coordinates are the expected ones.
func combine(a []byte, ax byte, b []byte, bx byte) ([]byte, error) {
	if ax == bx {
		// Recover panics on equal x coordinates.
		return nil, fmt.Errorf("keys: combine: share %d given twice", ax)
	}
	sa, err := decodeShare(a, ax)
	if err != nil {
		return nil, err
	}
	defer sa.Value.SetUint64(0)
	sb, err := decodeShare(b, bx)
	if err != nil {
		return nil, err
	}
	defer sb.Value.SetUint64(0)

	// The x coordinates are now distinct and non-zero, as Recover requires.
	secret, err := secretsharing.Recover(degree, []secretsharing.Share{sa, sb})
	if err != nil {
		return nil, fmt.Errorf("keys: combine shares: %w", err)
	}
	defer secret.SetUint64(0)
	seed, err := secret.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("keys: encode seed: %w", err)
	}
	return seed, nil
}

func encodeShare(x byte, v group.Scalar) ([]byte, error) {
	b, err := v.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("keys: encode share: %w", err)
	}
	defer clear(b)
	if len(b) != seedSize {
		return nil, errors.New("keys: encode share: unexpected scalar size")
	}
	out := make([]byte, 0, shareSize)
	out = append(out, x)
	return append(out, b...), nil
}

func decodeShare(b []byte, wantX byte) (secretsharing.Share, error) {
	if len(b) != shareSize {
		return secretsharing.Share{}, fmt.Errorf("keys: share %d: malformed", wantX)
	}
	if b[0] != wantX {
		return secretsharing.Share{}, fmt.Errorf("keys: share %d: has x=%d", wantX, b[0])
	}
	g := group.Ristretto255
	v := g.NewScalar()
	if err := v.UnmarshalBinary(b[1:]); err != nil {
		return secretsharing.Share{}, fmt.Errorf("keys: share %d: malformed", wantX)
	}
	return secretsharing.Share{ID: g.NewScalar().SetUint64(uint64(wantX)), Value: v}, nil
}
