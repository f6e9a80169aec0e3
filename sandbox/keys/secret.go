package keys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// PINLength is the length of a Planbok PIN: six decimal digits.
const PINLength = 6

// ErrInvalidPIN is returned when a new PIN is not exactly six ASCII digits.
var ErrInvalidPIN = errors.New("keys: PIN must be exactly 6 digits")

// ErrEmptyAnswer is returned (wrapped, with the answer's position) by
// RecoverySecretFromAnswers when an answer is empty after normalisation.
var ErrEmptyAnswer = errors.New("keys: empty recovery answer")

// ValidPIN reports whether pin is exactly six ASCII digits ("0"–"9"; no other
// Unicode digits, signs or spaces).
func ValidPIN(pin string) bool {
	if len(pin) != PINLength {
		return false
	}
	for i := 0; i < len(pin); i++ {
		if pin[i] < '0' || pin[i] > '9' {
			return false
		}
	}
	return true
}

// recoveryLabel starts every recovery secret, so that the same answers used by
// another scheme never produce the same bytes.
const recoveryLabel = "custodyflows/sandbox/keys.recovery/v1"

// RecoverySecretFromAnswers turns security-question answers, in question
// order, into the recovery secret to pass to NewVault, SetRecovery and
// ResetPIN. Each answer is normalised so that trivial differences in typing
// still match: Unicode NFKC (full-width letters, ligatures), lower case, and
// whitespace trimmed and collapsed to single spaces. An answer that is empty
// after that is rejected with ErrEmptyAnswer. The answers are then joined
// unambiguously (each prefixed by its length), so {"ab","c"} and {"a","bc"}
// differ.
//
// The result is not a hash: Seal's Argon2id does the stretching. It contains
// the answers, so the caller should clear it after use and never store it.
func RecoverySecretFromAnswers(answers []string) ([]byte, error) {
	if len(answers) == 0 {
		return nil, errors.New("keys: no recovery answers")
	}
	norms := make([]string, len(answers))
	size := len(recoveryLabel) + 4
	for i, a := range answers {
		norms[i] = normaliseAnswer(a)
		if norms[i] == "" {
			return nil, fmt.Errorf("%w (answer %d)", ErrEmptyAnswer, i+1)
		}
		size += 4 + len(norms[i])
	}
	// Sized once, so appends never leave copies of the answers behind in
	// abandoned backing arrays.
	out := make([]byte, 0, size)
	out = append(out, recoveryLabel...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(norms)))
	for _, n := range norms {
		out = binary.BigEndian.AppendUint32(out, uint32(len(n)))
		out = append(out, n...)
	}
	return out, nil
}

// normaliseAnswer applies NFKC, lower-cases, then trims and collapses every
// run of Unicode white space to one ASCII space. NFKC runs first because it
// turns compatibility characters (such as U+3000 IDEOGRAPHIC SPACE or
// full-width letters) into the plain ones the later steps know about; it runs
// again at the end because lower-casing can leave a string that is not in
// normal form.
func normaliseAnswer(s string) string {
	s = norm.NFKC.String(s)
	s = strings.ToLower(s)
	s = strings.Join(strings.Fields(s), " ")
	return norm.NFKC.String(s)
}
