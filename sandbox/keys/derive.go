package keys

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/mr-tron/base58"
	"golang.org/x/crypto/sha3"
)

// Key types, as in planbok.Blockchains and the export CSV.
const (
	KeyTypeSecp256k1 = "secp256k1"
	KeyTypeEd25519   = "ed25519"
)

// Account is one wallet's derived key, as listed in the export CSV.
type Account struct {
	// Blockchain is the Planbok blockchain code (for example "ETH-SEPOLIA").
	// Derive fills it; DeriveEVM and DeriveSolana leave it empty, because the
	// same key serves every chain of its key type.
	Blockchain string
	// Address is the EIP-55 checksummed 0x address (EVM) or the base58
	// public key (Solana).
	Address string
	// DerivationPath is the BIP-32 path, hardened steps marked with "'".
	DerivationPath string
	// KeyType is KeyTypeSecp256k1 or KeyTypeEd25519.
	KeyType string
	// PrivateKey is the export encoding wallets import: for EVM the 32-byte
	// key as 0x-prefixed lower-case hex (MetaMask "Import account"); for
	// Solana the base58 64-byte secret key (32-byte seed || public key)
	// that Phantom imports.
	PrivateKey string
}

// hardened is BIP-32's offset for hardened child indexes (written i').
const hardened = hdkeychain.HardenedKeyStart

// Derive derives the account at index for blockchain, choosing the scheme by
// the chain's key type in planbok.Blockchains: DeriveEVM for secp256k1 chains
// (ETH, ETH-SEPOLIA, MATIC, POL-AMOY, BASE, BASE-SEPOLIA, ARB, ARB-SEPOLIA,
// OP, OP-SEPOLIA), DeriveSolana for ed25519 ones (SOL, SOL-DEVNET,
// SOL-TESTNET). index is the customer's wallet number for that key type.
func Derive(seed []byte, blockchain string, index uint32) (Account, error) {
	var (
		a   Account
		err error
	)
	switch kt := planbok.Blockchains[blockchain]; kt {
	case KeyTypeSecp256k1:
		a, err = DeriveEVM(seed, index)
	case KeyTypeEd25519:
		a, err = DeriveSolana(seed, index)
	case "":
		return Account{}, fmt.Errorf("keys: unsupported blockchain %q", blockchain)
	default:
		return Account{}, fmt.Errorf("keys: blockchain %q has unsupported key type %q", blockchain, kt)
	}
	if err != nil {
		return Account{}, err
	}
	a.Blockchain = blockchain
	return a, nil
}

// DeriveEVM derives the EVM account at BIP-44 path m/44'/60'/0'/0/index with
// BIP-32 over secp256k1 (the path MetaMask uses for its accounts). The address
// is the last 20 bytes of Keccak-256 of the uncompressed public key, EIP-55
// checksummed. Blockchain is left empty (see Account). index must be below
// 2^31.
func DeriveEVM(seed []byte, index uint32) (Account, error) {
	if index >= hardened {
		return Account{}, fmt.Errorf("keys: index %d out of range", index)
	}
	k, err := bip32Derive(seed, hardened+44, hardened+60, hardened+0, 0, index)
	if err != nil {
		return Account{}, err
	}
	defer k.Zero()
	priv, err := k.ECPrivKey()
	if err != nil {
		return Account{}, fmt.Errorf("keys: bip32 key: %w", err)
	}
	defer priv.Zero()

	pub := priv.PubKey().SerializeUncompressed() // 0x04 || X || Y
	h := sha3.NewLegacyKeccak256()
	h.Write(pub[1:])
	var addr [20]byte
	copy(addr[:], h.Sum(nil)[12:])

	raw := priv.Serialize() // 32 bytes, left-padded
	defer clear(raw)
	return Account{
		Address:        EIP55(addr),
		DerivationPath: fmt.Sprintf("m/44'/60'/0'/0/%d", index),
		KeyType:        KeyTypeSecp256k1,
		PrivateKey:     "0x" + hex.EncodeToString(raw),
	}, nil
}

// bip32Derive derives the extended private key at path (indexes with the
// hardened bit where hardened) from seed with BIP-32 over secp256k1. It uses
// hdkeychain's Derive, the BIP-32-conformant one (DeriveNonStandard keeps
// btcutil's old leading-zero bug for compatibility; test vector 3 covers it).
// The caller should Zero the result.
func bip32Derive(seed []byte, path ...uint32) (*hdkeychain.ExtendedKey, error) {
	k, err := hdkeychain.NewMaster(seed, &chaincfg.MainNetParams)
	if err != nil {
		return nil, fmt.Errorf("keys: bip32 master: %w", err)
	}
	for _, i := range path {
		child, err := k.Derive(i)
		k.Zero()
		if err != nil {
			// Probability below 2^-127 per step (BIP-32: IL ≥ n or a zero key).
			return nil, fmt.Errorf("keys: bip32 derive: %w", err)
		}
		k = child
	}
	return k, nil
}

// DeriveSolana derives the Solana account at m/44'/501'/index'/0' with
// SLIP-0010 over ed25519 (Phantom's path for its accounts, so index 0 is
// Phantom's first account). The address is the base58 public key.
// Blockchain is left empty (see Account). index must be below 2^31.
func DeriveSolana(seed []byte, index uint32) (Account, error) {
	if index >= hardened {
		return Account{}, fmt.Errorf("keys: index %d out of range", index)
	}
	key, chain, err := slip10Ed25519(seed, 44, 501, index, 0)
	if err != nil {
		return Account{}, err
	}
	clear(chain[:])
	defer clear(key[:])
	priv := ed25519.NewKeyFromSeed(key[:])
	defer clear(priv)
	return Account{
		Address:        base58.Encode(priv.Public().(ed25519.PublicKey)),
		DerivationPath: fmt.Sprintf("m/44'/501'/%d'/0'", index),
		KeyType:        KeyTypeEd25519,
		PrivateKey:     base58.Encode(priv), // seed || public key
	}, nil
}

// slip10Ed25519 derives the ed25519 private key (the RFC 8032 32-byte seed)
// and chain code at the path of hardened indexes given without the hardened bit, following
// SLIP-0010 (https://github.com/satoshilabs/slips/blob/master/slip-0010.md):
//
//	I = HMAC-SHA512(key = "ed25519 seed", data = seed); k, c = I[:32], I[32:]
//	for each i: I = HMAC-SHA512(key = c, data = 0x00 || k || ser32(i + 2^31))
//
// ed25519 has only hardened derivation, and unlike secp256k1 every 32-byte k
// is valid, so there is no retry case.
func slip10Ed25519(seed []byte, path ...uint32) (key, chain [32]byte, err error) {
	if len(seed) < 16 || len(seed) > 64 {
		return key, chain, errors.New("keys: seed must be 16 to 64 bytes")
	}
	mac := hmac.New(sha512.New, []byte("ed25519 seed"))
	mac.Write(seed)
	sum := mac.Sum(nil)
	copy(key[:], sum[:32])
	copy(chain[:], sum[32:])
	clear(sum)

	data := make([]byte, 1+32+4)
	defer clear(data)
	for _, i := range path {
		if i >= hardened {
			clear(key[:])
			clear(chain[:])
			return key, chain, fmt.Errorf("keys: slip10 index %d out of range", i)
		}
		data[0] = 0
		copy(data[1:33], key[:])
		binary.BigEndian.PutUint32(data[33:], i+hardened)
		mac := hmac.New(sha512.New, chain[:])
		mac.Write(data)
		sum := mac.Sum(nil)
		copy(key[:], sum[:32])
		copy(chain[:], sum[32:])
		clear(sum)
	}
	return key, chain, nil
}

// EIP55 returns addr as a 0x-prefixed EIP-55 mixed-case checksummed address
// (https://eips.ethereum.org/EIPS/eip-55): a hex letter is upper case when the
// matching nibble of Keccak-256 of the lower-case hex address is 8 or more.
func EIP55(addr [20]byte) string {
	lower := hex.EncodeToString(addr[:])
	h := sha3.NewLegacyKeccak256()
	h.Write([]byte(lower))
	hash := h.Sum(nil)
	out := []byte("0x" + lower)
	for i := 0; i < len(lower); i++ {
		nibble := hash[i/2]
		if i%2 == 0 {
			nibble >>= 4
		}
		if c := out[2+i]; c >= 'a' && c <= 'f' && nibble&0x0f >= 8 {
			out[2+i] = c - 'a' + 'A'
		}
	}
	return string(out)
}
