// Package codec encrypts the payloads custodyflows writes to Temporal
// history, so that customer ids, redirect URLs and failure messages are not
// readable by anyone with access to the Temporal database or UI but without
// the key.
//
// Payloads are sealed with AES-256-GCM under a random 96-bit nonce. The key
// id travels in the payload's metadata, so a ring of keys can decrypt old
// histories while the first key encrypts new ones: to rotate, put the new
// key first and keep the old ones until every history they encrypted has
// passed its retention.
//
// The package also serves the codec HTTP endpoint that lets the Temporal
// Web UI decode payloads for operators (Handler), and manages the key file
// the dev command keeps in its data directory (LoadOrCreateKeyFile).
//
// No error, String() or log line of this package contains key material.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata keys and values of an encrypted payload. They match the Temporal
// samples' encryption codec so that operators' tooling recognises them.
const (
	MetadataEncoding      = converter.MetadataEncoding // "encoding"
	MetadataEncodingValue = "binary/encrypted"
	MetadataKeyID         = "encryption-key-id"
)

// KeySize is the length of a key's secret: AES-256.
const KeySize = 32

// aadPrefix is authenticated with every payload together with the key id,
// so a ciphertext cannot be relabelled with another key id (or moved to
// another scheme that happens to share a key) without failing to open.
const aadPrefix = "custodyflows/codec/v1:"

// Key is one encryption key. ID is not secret (it is written in clear next
// to every payload); Secret is 32 random bytes.
type Key struct {
	ID     string
	Secret []byte
}

// String describes the key without its secret, so a Key printed by mistake
// leaks nothing.
func (k Key) String() string { return "codec.Key{ID: " + k.ID + "}" }

// GoString is String, for %#v.
func (k Key) GoString() string { return k.String() }

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (k Key) validate() error {
	if !keyIDPattern.MatchString(k.ID) {
		return fmt.Errorf("codec: key id %q: want 1-64 characters from A-Z a-z 0-9 . _ -", k.ID)
	}
	if len(k.Secret) != KeySize {
		return fmt.Errorf("codec: key %q: want a %d-byte secret, got %d bytes", k.ID, KeySize, len(k.Secret))
	}
	return nil
}

// ParseKeys parses a key ring written as comma- (or newline-) separated
// "<id>:<base64 of 32 bytes>" entries, e.g. "k2:…,k1:…". The first key
// encrypts; all decrypt. Lines starting with # are comments. Standard and
// URL-safe base64, padded or not, are accepted. Errors name the entry by
// position and id, never its secret.
func ParseKeys(spec string) ([]Key, error) {
	var fields []string
	for _, line := range strings.Split(spec, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		fields = append(fields, strings.Split(line, ",")...)
	}
	var keys []Key
	for _, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n := len(keys) + 1
		id, b64, ok := strings.Cut(f, ":")
		if !ok {
			return nil, fmt.Errorf("codec: key %d: want <id>:<base64 secret>", n)
		}
		id = strings.TrimSpace(id)
		secret, err := decodeBase64(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("codec: key %d (%q): secret is not base64", n, id)
		}
		k := Key{ID: id, Secret: secret}
		if err := k.validate(); err != nil {
			return nil, fmt.Errorf("codec: key %d: %s", n, strings.TrimPrefix(err.Error(), "codec: "))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("codec: no keys given")
	}
	if err := checkUnique(keys); err != nil {
		return nil, err
	}
	return keys, nil
}

func decodeBase64(s string) ([]byte, error) {
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

func checkUnique(keys []Key) error {
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[k.ID] {
			return fmt.Errorf("codec: key id %q appears twice", k.ID)
		}
		seen[k.ID] = true
	}
	return nil
}

// FormatKeys writes keys in the form ParseKeys reads. The result holds key
// material: write it only to a protected file or a secret store.
func FormatKeys(keys []Key) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k.ID + ":" + base64.StdEncoding.EncodeToString(k.Secret)
	}
	return strings.Join(parts, ",")
}

// Codec is a converter.PayloadCodec that encrypts with its first key and
// decrypts with any of its keys. It is safe for concurrent use.
type Codec struct {
	encryptID string
	aeads     map[string]cipher.AEAD
	rand      io.Reader
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a Codec over keys; keys[0] encrypts.
func New(keys []Key) (*Codec, error) {
	if len(keys) == 0 {
		return nil, errors.New("codec: no keys given")
	}
	if err := checkUnique(keys); err != nil {
		return nil, err
	}
	c := &Codec{encryptID: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys)), rand: rand.Reader}
	for _, k := range keys {
		if err := k.validate(); err != nil {
			return nil, err
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", k.ID, err)
		}
		c.aeads[k.ID] = aead
	}
	return c, nil
}

// KeyID is the id of the key that encrypts, for start-up logs.
func (c *Codec) KeyID() string { return c.encryptID }

// String describes the codec without key material.
func (c *Codec) String() string {
	return fmt.Sprintf("codec.Codec{encrypt: %s, keys: %d}", c.encryptID, len(c.aeads))
}

func aad(keyID string) []byte { return []byte(aadPrefix + keyID) }

// Encode encrypts every payload: the whole serialised payload (metadata
// included, so the JSON encoding and type hints are hidden too) becomes the
// data of a new payload that names only the scheme and the key id.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.encryptID]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: encode payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := io.ReadFull(c.rand, nonce); err != nil {
			return nil, fmt.Errorf("codec: read nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				MetadataEncoding: []byte(MetadataEncodingValue),
				MetadataKeyID:    []byte(c.encryptID),
			},
			Data: aead.Seal(nonce, nonce, plain, aad(c.encryptID)),
		}
	}
	return out, nil
}

// Decode decrypts encrypted payloads and passes others through unchanged,
// so histories written before encryption was turned on stay readable.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[MetadataEncoding]) != MetadataEncodingValue {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return nil, fmt.Errorf("codec: payload encrypted with unknown key id %q", id)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return nil, fmt.Errorf("codec: encrypted payload (key %q) is too short", id)
		}
		nonce, sealed := data[:aead.NonceSize()], data[aead.NonceSize():]
		plain, err := aead.Open(nil, nonce, sealed, aad(id))
		if err != nil {
			return nil, fmt.Errorf("codec: payload (key %q) does not decrypt: tampered with or wrong key", id)
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return nil, fmt.Errorf("codec: decrypted payload (key %q): %w", id, err)
		}
		out[i] = &dec
	}
	return out, nil
}

// DataConverter returns Temporal's default data converter with c applied
// to every payload. Clients and workers must use the same one.
func DataConverter(c *Codec) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter returns the default failure converter set to move
// failure messages and stack traces into an encoded attributes payload, so
// that an error message (which may name a customer) is encrypted too.
func FailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: true,
	})
}

// GenerateKey returns a new key read from r (crypto/rand when r is nil).
// The id is random too, not derived from the secret, so it reveals nothing
// about it.
func GenerateKey(r io.Reader) (Key, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, 4+KeySize)
	if _, err := io.ReadFull(r, b); err != nil {
		return Key{}, fmt.Errorf("codec: generate key: %w", err)
	}
	return Key{ID: "k" + hex.EncodeToString(b[:4]), Secret: b[4:]}, nil
}
