package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/mr-tron/base58"
	"golang.org/x/crypto/sha3"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// abandonSeed is the BIP-39 seed (empty passphrase) of the standard test
// mnemonic "abandon abandon abandon abandon abandon abandon abandon abandon
// abandon abandon abandon about" (BIP-39 reference vectors, trezor/python-
// mnemonic vectors.json, with passphrase ""), which wallets use as their
// common reference point.
const abandonSeed = "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4"

// TestBIP32_Vectors checks bip32Derive against BIP-32's published test
// vectors (https://github.com/bitcoin/bips/blob/master/bip-0032.mediawiki,
// "Test Vectors"): vector 1 on every step of m/0H/1/2H/2/1000000000 and
// vector 3, which catches the leading-zero bug of btcutil's old derivation.
func TestBIP32_Vectors(t *testing.T) {
	const h = hardened
	tests := []struct {
		name       string
		seed       string
		path       []uint32
		xpub, xprv string
	}{
		{"v1 m", "000102030405060708090a0b0c0d0e0f", nil,
			"xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8",
			"xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi"},
		{"v1 m/0H", "000102030405060708090a0b0c0d0e0f", []uint32{h + 0},
			"xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw",
			"xprv9uHRZZhk6KAJC1avXpDAp4MDc3sQKNxDiPvvkX8Br5ngLNv1TxvUxt4cV1rGL5hj6KCesnDYUhd7oWgT11eZG7XnxHrnYeSvkzY7d2bhkJ7"},
		{"v1 m/0H/1", "000102030405060708090a0b0c0d0e0f", []uint32{h + 0, 1},
			"xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ",
			"xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs"},
		{"v1 m/0H/1/2H", "000102030405060708090a0b0c0d0e0f", []uint32{h + 0, 1, h + 2},
			"xpub6D4BDPcP2GT577Vvch3R8wDkScZWzQzMMUm3PWbmWvVJrZwQY4VUNgqFJPMM3No2dFDFGTsxxpG5uJh7n7epu4trkrX7x7DogT5Uv6fcLW5",
			"xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBDptWmT7FwuEzG3ryjH4ktypQSAewRiNMjANTtpgP4mLTj34bhnZX7UiM"},
		{"v1 m/0H/1/2H/2", "000102030405060708090a0b0c0d0e0f", []uint32{h + 0, 1, h + 2, 2},
			"xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV",
			"xprvA2JDeKCSNNZky6uBCviVfJSKyQ1mDYahRjijr5idH2WwLsEd4Hsb2Tyh8RfQMuPh7f7RtyzTtdrbdqqsunu5Mm3wDvUAKRHSC34sJ7in334"},
		{"v1 m/0H/1/2H/2/1000000000", "000102030405060708090a0b0c0d0e0f", []uint32{h + 0, 1, h + 2, 2, 1000000000},
			"xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy",
			"xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8FHa8kmHScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76"},
		{"v3 m", "4b381541583be4423346c643850da4b320e46a87ae3d2a4e6da11eba819cd4acba45d239319ac14f863b8d5ab5a0d0c64d2e8a1e7d1457df2e5a3c51c73235be", nil,
			"xpub661MyMwAqRbcEZVB4dScxMAdx6d4nFc9nvyvH3v4gJL378CSRZiYmhRoP7mBy6gSPSCYk6SzXPTf3ND1cZAceL7SfJ1Z3GC8vBgp2epUt13",
			"xprv9s21ZrQH143K25QhxbucbDDuQ4naNntJRi4KUfWT7xo4EKsHt2QJDu7KXp1A3u7Bi1j8ph3EGsZ9Xvz9dGuVrtHHs7pXeTzjuxBrCmmhgC6"},
		{"v3 m/0H", "4b381541583be4423346c643850da4b320e46a87ae3d2a4e6da11eba819cd4acba45d239319ac14f863b8d5ab5a0d0c64d2e8a1e7d1457df2e5a3c51c73235be", []uint32{h + 0},
			"xpub68NZiKmJWnxxS6aaHmn81bvJeTESw724CRDs6HbuccFQN9Ku14VQrADWgqbhhTHBaohPX4CjNLf9fq9MYo6oDaPPLPxSb7gwQN3ih19Zm4Y",
			"xprv9uPDJpEQgRQfDcW7BkF7eTya6RPxXeJCqCJGHuCJ4GiRVLzkTXBAJMu2qaMWPrS7AANYqdq6vcBcBUdJCVVFceUvJFjaPdGZ2y9WACViL4L"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := bip32Derive(mustHex(t, tt.seed), tt.path...)
			if err != nil {
				t.Fatal(err)
			}
			if got := k.String(); got != tt.xprv {
				t.Errorf("xprv: got %s, want %s", got, tt.xprv)
			}
			pub, err := k.Neuter()
			if err != nil {
				t.Fatal(err)
			}
			if got := pub.String(); got != tt.xpub {
				t.Errorf("xpub: got %s, want %s", got, tt.xpub)
			}
		})
	}
}

// TestSLIP10_Ed25519Vector1 checks slip10Ed25519 against SLIP-0010's "Test
// vector 1 for ed25519" (https://github.com/satoshilabs/slips/blob/master/slip-0010.md),
// seed 000102030405060708090a0b0c0d0e0f, chain m/0H/1H/2H/2H/1000000000H.
// SLIP-0010 prints public keys with a 0x00 prefix byte; it is stripped here.
func TestSLIP10_Ed25519Vector1(t *testing.T) {
	seed := mustHex(t, "000102030405060708090a0b0c0d0e0f")
	tests := []struct {
		name             string
		path             []uint32
		chain, priv, pub string
	}{
		{"m", nil,
			"90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
			"2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
			"a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed"},
		{"m/0H", []uint32{0},
			"8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
			"68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
			"8c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c"},
		{"m/0H/1H", []uint32{0, 1},
			"a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
			"b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
			"1932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187"},
		{"m/0H/1H/2H", []uint32{0, 1, 2},
			"2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
			"92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
			"ae98736566d30ed0e9d2f4486a64bc95740d89c7db33f52121f8ea8f76ff0fc1"},
		{"m/0H/1H/2H/2H", []uint32{0, 1, 2, 2},
			"8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
			"30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
			"8abae2d66361c879b900d204ad2cc4984fa2aa344dd7ddc46007329ac76c429c"},
		{"m/0H/1H/2H/2H/1000000000H", []uint32{0, 1, 2, 2, 1000000000},
			"68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
			"8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
			"3c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, chain, err := slip10Ed25519(seed, tt.path...)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(chain[:]); got != tt.chain {
				t.Errorf("chain code: got %s, want %s", got, tt.chain)
			}
			if got := hex.EncodeToString(key[:]); got != tt.priv {
				t.Errorf("private key: got %s, want %s", got, tt.priv)
			}
			pub := ed25519.NewKeyFromSeed(key[:]).Public().(ed25519.PublicKey)
			if got := hex.EncodeToString(pub); got != tt.pub {
				t.Errorf("public key: got %s, want %s", got, tt.pub)
			}
		})
	}
}

func TestSLIP10_Errors(t *testing.T) {
	if _, _, err := slip10Ed25519(make([]byte, 15)); err == nil {
		t.Error("15-byte seed: got nil error, want one")
	}
	if _, _, err := slip10Ed25519(make([]byte, 65)); err == nil {
		t.Error("65-byte seed: got nil error, want one")
	}
	if _, _, err := slip10Ed25519(make([]byte, 32), hardened); err == nil {
		t.Error("index 2^31: got nil error, want one")
	}
}

// TestEIP55_Examples checks the examples listed in EIP-55
// (https://eips.ethereum.org/EIPS/eip-55, "Test Cases"): all caps, all lower
// and the four "normal" mixed-case addresses.
func TestEIP55_Examples(t *testing.T) {
	for _, want := range []string{
		// All caps
		"0x52908400098527886E0F7030069857D2E4169EE7",
		"0x8617E340B3D01FA5F11F306F4090FD50E238070D",
		// All lower
		"0xde709f2102306220921060314715629080e2fb77",
		"0x27b1fdb04752bbc536007a920d24acb045561c26",
		// Normal
		"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
		"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
		"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
		"0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
	} {
		var addr [20]byte
		copy(addr[:], mustHex(t, strings.ToLower(want[2:])))
		if got := EIP55(addr); got != want {
			t.Errorf("EIP55(%s): got %s, want %s", strings.ToLower(want), got, want)
		}
	}
}

// TestDeriveEVM_AbandonMnemonic checks the first BIP-44 Ethereum account of
// the "abandon … about" mnemonic, 0x9858EfFD232B4033E47d90003D41EC34EcaEda94,
// the address MetaMask, Ledger and ethers.js show for it.
func TestDeriveEVM_AbandonMnemonic(t *testing.T) {
	a, err := DeriveEVM(mustHex(t, abandonSeed), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Account{
		Address:        "0x9858EfFD232B4033E47d90003D41EC34EcaEda94",
		DerivationPath: "m/44'/60'/0'/0/0",
		KeyType:        "secp256k1",
		PrivateKey:     a.PrivateKey,
	}
	if a != want {
		t.Errorf("got %+v, want %+v", redact(a), redact(want))
	}
	if len(a.PrivateKey) != 66 || !strings.HasPrefix(a.PrivateKey, "0x") || strings.ToLower(a.PrivateKey) != a.PrivateKey {
		t.Errorf("private key: got %d chars, want 0x + 64 lower-case hex", len(a.PrivateKey))
	}
	// The exported key must give back the same address (what MetaMask does
	// on import): derive the account from the raw key.
	priv := mustHex(t, a.PrivateKey[2:])
	if got := evmAddressFromKey(t, priv); got != a.Address {
		t.Errorf("address from exported key: got %s, want %s", got, a.Address)
	}

	a1, err := DeriveEVM(mustHex(t, abandonSeed), 1)
	if err != nil {
		t.Fatal(err)
	}
	if a1.Address == a.Address || a1.DerivationPath != "m/44'/60'/0'/0/1" {
		t.Errorf("index 1: got %s at %s, want a new address at m/44'/60'/0'/0/1", a1.Address, a1.DerivationPath)
	}
}

// TestDeriveSolana_AbandonMnemonic checks Phantom's first Solana account of
// the "abandon … about" mnemonic, m/44'/501'/0'/0' =
// HAgk14JpMQLgt6rVgv7cBQFJWFto5Dqxi472uT3DKpqk, and that the exported secret
// key is what Phantom imports: 64 bytes, seed || public key, and it signs.
func TestDeriveSolana_AbandonMnemonic(t *testing.T) {
	a, err := DeriveSolana(mustHex(t, abandonSeed), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Account{
		Address:        "HAgk14JpMQLgt6rVgv7cBQFJWFto5Dqxi472uT3DKpqk",
		DerivationPath: "m/44'/501'/0'/0'",
		KeyType:        "ed25519",
		PrivateKey:     a.PrivateKey,
	}
	if a != want {
		t.Errorf("got %+v, want %+v", redact(a), redact(want))
	}

	sk, err := base58.Decode(a.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(sk) != ed25519.PrivateKeySize {
		t.Fatalf("secret key: got %d bytes, want %d", len(sk), ed25519.PrivateKeySize)
	}
	pub, err := base58.Decode(a.Address)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sk[32:], pub) {
		t.Errorf("secret key's last 32 bytes: got %x, want the public key %x", sk[32:], pub)
	}
	// The first 32 bytes alone must regenerate the whole secret key.
	if !bytes.Equal(ed25519.NewKeyFromSeed(sk[:32]), sk) {
		t.Error("secret key is not seed || public key")
	}
	msg := []byte("custodyflows export check")
	sig := ed25519.Sign(ed25519.PrivateKey(sk), msg)
	if !ed25519.Verify(ed25519.PublicKey(pub), msg, sig) {
		t.Error("signature made with the exported key does not verify under the address")
	}

	a1, err := DeriveSolana(mustHex(t, abandonSeed), 1)
	if err != nil {
		t.Fatal(err)
	}
	if a1.Address == a.Address || a1.DerivationPath != "m/44'/501'/1'/0'" {
		t.Errorf("index 1: got %s at %s, want a new address at m/44'/501'/1'/0'", a1.Address, a1.DerivationPath)
	}
}

func TestDerive_AllBlockchains(t *testing.T) {
	seed := mustHex(t, abandonSeed)
	for chain, kt := range planbok.Blockchains {
		a, err := Derive(seed, chain, 0)
		if err != nil {
			t.Errorf("%s: %v", chain, err)
			continue
		}
		if a.Blockchain != chain || a.KeyType != kt {
			t.Errorf("%s: got blockchain %q key type %q, want %q %q", chain, a.Blockchain, a.KeyType, chain, kt)
		}
		var want string
		switch kt {
		case KeyTypeSecp256k1:
			want = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
		case KeyTypeEd25519:
			want = "HAgk14JpMQLgt6rVgv7cBQFJWFto5Dqxi472uT3DKpqk"
		}
		if a.Address != want {
			t.Errorf("%s: got address %s, want %s", chain, a.Address, want)
		}
	}
}

func TestDerive_Errors(t *testing.T) {
	seed := mustHex(t, abandonSeed)
	if _, err := Derive(seed, "BTC", 0); err == nil {
		t.Error("BTC: got nil error, want one")
	}
	if _, err := Derive(seed, "eth", 0); err == nil {
		t.Error("lower-case eth: got nil error, want one")
	}
	for _, chain := range []string{"ETH", "SOL"} {
		if _, err := Derive(seed, chain, hardened); err == nil {
			t.Errorf("%s index 2^31: got nil error, want one", chain)
		}
		if _, err := Derive(make([]byte, 8), chain, 0); err == nil {
			t.Errorf("%s 8-byte seed: got nil error, want one", chain)
		}
	}
}

func TestWriteCSV(t *testing.T) {
	seed := mustHex(t, abandonSeed)
	var accounts []Account
	for _, chain := range []string{"ETH-SEPOLIA", "SOL-DEVNET"} {
		a, err := Derive(seed, chain, 0)
		if err != nil {
			t.Fatal(err)
		}
		accounts = append(accounts, a)
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, accounts); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	want := []string{
		"Address,Private Key,Blockchain,Derivation Path,Key Type",
		"0x9858EfFD232B4033E47d90003D41EC34EcaEda94," + accounts[0].PrivateKey + ",ETH-SEPOLIA,m/44'/60'/0'/0/0,secp256k1",
		"HAgk14JpMQLgt6rVgv7cBQFJWFto5Dqxi472uT3DKpqk," + accounts[1].PrivateKey + ",SOL-DEVNET,m/44'/501'/0'/0',ed25519",
		"",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d", len(lines), len(want))
	}
	for i := range want {
		if lines[i] != want[i] {
			// Compare without printing keys.
			t.Errorf("line %d differs from the expected row", i)
		}
	}

	buf.Reset()
	if err := WriteCSV(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "Address,Private Key,Blockchain,Derivation Path,Key Type\n" {
		t.Errorf("empty export: got %q, want the header line only", got)
	}
}

// evmAddressFromKey computes an EVM address from a raw private key
// independently of DeriveEVM's code path, as an importing wallet does.
func evmAddressFromKey(t *testing.T, raw []byte) string {
	t.Helper()
	priv, _ := btcec.PrivKeyFromBytes(raw)
	pub := priv.PubKey().SerializeUncompressed()
	h := sha3.NewLegacyKeccak256()
	h.Write(pub[1:])
	var addr [20]byte
	copy(addr[:], h.Sum(nil)[12:])
	return EIP55(addr)
}

// redact hides the private key in failure messages.
func redact(a Account) Account {
	if a.PrivateKey != "" {
		a.PrivateKey = "<redacted>"
	}
	return a
}
