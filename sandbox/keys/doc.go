// Package keys is the sandbox's key custody, with real cryptography so that
// exported keys import into MetaMask and Phantom.
//
// Each customer has a random master seed, split 2-of-3 with Shamir's secret
// sharing (CIRCL's secretsharing over Ristretto255 scalars) into a user share,
// a node share and a recovery share; see Vault. The user share is sealed under
// the PIN and the recovery share under the recovery secret, each with AES-256-GCM
// under a key derived by Argon2id (see Seal and Params); the node share is kept
// by the sandbox as Planbok's node would keep it. Any two shares rebuild the
// seed: user + node for signing and export, node + recovery to reset a
// forgotten PIN.
//
// Wallet keys are derived from the seed as wallets do: BIP-32/BIP-44 over
// secp256k1 at m/44'/60'/0'/0/i for EVM chains (Keccak-256 address, EIP-55
// checksum) and SLIP-0010 over ed25519 at m/44'/501'/i'/0' for Solana (base58
// address); WriteCSV writes the export CSV.
//
// Nothing in this package logs. Functions that return secret bytes (Vault.Seed,
// Open, RecoverySecretFromAnswers) leave them to the caller, who should clear
// them when done; the package clears its own intermediate copies where Go
// allows (strings, such as PINs and Account.PrivateKey, cannot be cleared, and
// CIRCL keeps copies of the polynomial's coefficients that it does not clear).
package keys
