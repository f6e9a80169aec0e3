package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

func mustKey(t *testing.T, id string) Key {
	t.Helper()
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	k.ID = id
	return k
}

func mustCodec(t *testing.T, keys ...Key) *Codec {
	t.Helper()
	c, err := New(keys)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func plainPayload(t *testing.T, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	if err != nil {
		t.Fatalf("ToPayload: %v", err)
	}
	return p
}

func TestParseKeys(t *testing.T) {
	secret := bytes.Repeat([]byte{0xAB}, 32)
	std := base64.StdEncoding.EncodeToString(secret)
	rawURL := base64.RawURLEncoding.EncodeToString(secret)
	tests := []struct {
		name    string
		spec    string
		wantIDs []string
		wantErr string
	}{
		{"one", "k1:" + std, []string{"k1"}, ""},
		{"ring in order", "k2:" + std + ",k1:" + rawURL, []string{"k2", "k1"}, ""},
		{"spaces and newlines", " k2 : " + std + " \n# old key below\nk1:" + std + "\n", []string{"k2", "k1"}, ""},
		{"empty", "", nil, "no keys"},
		{"only comments", "# nothing\n", nil, "no keys"},
		{"missing colon", "k1" + std, nil, "want <id>:<base64 secret>"},
		{"not base64", "k1:***", nil, "not base64"},
		{"short secret", "k1:" + base64.StdEncoding.EncodeToString(secret[:16]), nil, "want a 32-byte secret, got 16"},
		{"bad id", "k 1:" + std, nil, "key id"},
		{"empty id", ":" + std, nil, "key id"},
		{"duplicate id", "k1:" + std + ",k1:" + std, nil, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseKeys(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				for _, leak := range []string{std, rawURL, std[:20]} {
					if strings.Contains(err.Error(), leak) {
						t.Errorf("error %q leaks key material", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			var ids []string
			for _, k := range keys {
				ids = append(ids, k.ID)
				if !bytes.Equal(k.Secret, secret) {
					t.Errorf("key %s: got another secret, want the given one", k.ID)
				}
			}
			if strings.Join(ids, ",") != strings.Join(tt.wantIDs, ",") {
				t.Errorf("got ids %v, want %v", ids, tt.wantIDs)
			}
		})
	}
}

func TestFormatKeys_RoundTrip(t *testing.T) {
	keys := []Key{mustKey(t, "k2"), mustKey(t, "k1")}
	got, err := ParseKeys(FormatKeys(keys))
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	for i := range keys {
		if got[i].ID != keys[i].ID || !bytes.Equal(got[i].Secret, keys[i].Secret) {
			t.Errorf("key %d: got %s, want %s", i, got[i], keys[i])
		}
	}
}

func TestKey_StringHidesSecret(t *testing.T) {
	k := mustKey(t, "k1")
	for _, s := range []string{k.String(), k.GoString()} {
		if strings.Contains(s, base64.StdEncoding.EncodeToString(k.Secret)) || strings.Contains(s, string(k.Secret)) {
			t.Errorf("got %q, want no secret", s)
		}
	}
}

func TestNew_Errors(t *testing.T) {
	good := mustKey(t, "k1")
	tests := []struct {
		name string
		keys []Key
		want string
	}{
		{"no keys", nil, "no keys"},
		{"short secret", []Key{{ID: "k1", Secret: make([]byte, 16)}}, "32-byte"},
		{"bad id", []Key{{ID: "a,b", Secret: good.Secret}}, "key id"},
		{"duplicate", []Key{good, good}, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.keys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestCodec_RoundTrip(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	in := []*commonpb.Payload{plainPayload(t, "secret-marker-1"), plainPayload(t, map[string]int{"a": 1}), plainPayload(t, nil)}
	enc, err := c.Encode(in)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if len(enc) != len(in) {
		t.Fatalf("got %d payloads, want %d", len(enc), len(in))
	}
	for i, p := range enc {
		if got := string(p.Metadata[MetadataEncoding]); got != MetadataEncodingValue {
			t.Errorf("payload %d: got encoding %q, want %q", i, got, MetadataEncodingValue)
		}
		if got := string(p.Metadata[MetadataKeyID]); got != "k1" {
			t.Errorf("payload %d: got key id %q, want k1", i, got)
		}
		if len(p.Metadata) != 2 {
			t.Errorf("payload %d: got metadata %v, want only encoding and key id", i, p.Metadata)
		}
		if bytes.Contains(p.Data, []byte("secret-marker-1")) || bytes.Contains(p.Data, []byte("json/plain")) {
			t.Errorf("payload %d: ciphertext holds plaintext", i)
		}
	}
	dec, err := c.Decode(enc)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	for i := range in {
		if !proto.Equal(dec[i], in[i]) {
			t.Errorf("payload %d: got %v, want %v", i, dec[i], in[i])
		}
	}

	again, err := c.Encode(in[:1])
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if bytes.Equal(again[0].Data, enc[0].Data) {
		t.Error("got identical ciphertexts for the same payload, want a fresh nonce each time")
	}
}

func TestCodec_Rotation(t *testing.T) {
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	old := mustCodec(t, k1)
	encOld, err := old.Encode([]*commonpb.Payload{plainPayload(t, "before rotation")})
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}

	ring := mustCodec(t, k2, k1)
	if got := ring.KeyID(); got != "k2" {
		t.Errorf("got KeyID %q, want k2", got)
	}
	dec, err := ring.Decode(encOld)
	if err != nil {
		t.Fatalf("ring decodes k1 payload: %v", err)
	}
	if !proto.Equal(dec[0], plainPayload(t, "before rotation")) {
		t.Errorf("got %v, want the original payload", dec[0])
	}
	encNew, err := ring.Encode([]*commonpb.Payload{plainPayload(t, "after rotation")})
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if got := string(encNew[0].Metadata[MetadataKeyID]); got != "k2" {
		t.Errorf("got key id %q, want k2", got)
	}
	// The old deployment (k1 only) cannot read what k2 wrote: it says so.
	if _, err := old.Decode(encNew); err == nil || !strings.Contains(err.Error(), `unknown key id "k2"`) {
		t.Errorf("got %v, want an unknown key id error", err)
	}
}

func TestCodec_Tampered(t *testing.T) {
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	c := mustCodec(t, k1, k2)
	fresh := func() *commonpb.Payload {
		enc, err := c.Encode([]*commonpb.Payload{plainPayload(t, "tamper me")})
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		return enc[0]
	}
	tests := []struct {
		name   string
		mutate func(p *commonpb.Payload)
		want   string
	}{
		{"flipped ciphertext bit", func(p *commonpb.Payload) { p.Data[len(p.Data)/2] ^= 1 }, "does not decrypt"},
		{"flipped nonce bit", func(p *commonpb.Payload) { p.Data[0] ^= 1 }, "does not decrypt"},
		{"flipped tag bit", func(p *commonpb.Payload) { p.Data[len(p.Data)-1] ^= 1 }, "does not decrypt"},
		{"relabelled with another known key", func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("k2") }, "does not decrypt"},
		{"truncated", func(p *commonpb.Payload) { p.Data = p.Data[:10] }, "too short"},
		{"unknown key id", func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("k9") }, "unknown key id"},
		{"missing key id", func(p *commonpb.Payload) { delete(p.Metadata, MetadataKeyID) }, "unknown key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fresh()
			tt.mutate(p)
			_, err := c.Decode([]*commonpb.Payload{p})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestCodec_PlainPassesThrough(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	plain := []*commonpb.Payload{
		plainPayload(t, "written before encryption"),
		plainPayload(t, nil),
		{Metadata: map[string][]byte{"encoding": []byte("binary/protobuf")}, Data: []byte{1, 2, 3}},
		{},
	}
	got, err := c.Decode(plain)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	for i := range plain {
		if !proto.Equal(got[i], plain[i]) {
			t.Errorf("payload %d: got %v, want it unchanged", i, got[i])
		}
	}
}

func TestCodec_NonceReadError(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	c.rand = bytes.NewReader(nil)
	if _, err := c.Encode([]*commonpb.Payload{plainPayload(t, "x")}); err == nil {
		t.Error("got nil error, want one when no randomness is available")
	}
}

func TestDataConverter_RoundTrip(t *testing.T) {
	dc := DataConverter(mustCodec(t, mustKey(t, "k1")))
	p, err := dc.ToPayload("customer cus_123")
	if err != nil {
		t.Fatalf("ToPayload: %v", err)
	}
	if string(p.Metadata[MetadataEncoding]) != MetadataEncodingValue {
		t.Errorf("got encoding %q, want %q", p.Metadata[MetadataEncoding], MetadataEncodingValue)
	}
	var got string
	if err := dc.FromPayload(p, &got); err != nil {
		t.Fatalf("FromPayload: %v", err)
	}
	if got != "customer cus_123" {
		t.Errorf("got %q, want %q", got, "customer cus_123")
	}
}

func TestFailureConverter_EncryptsMessage(t *testing.T) {
	dc := DataConverter(mustCodec(t, mustKey(t, "k1")))
	fc := FailureConverter(dc)
	f := fc.ErrorToFailure(temporal.NewApplicationError("customer cus_secret is locked", "customer_locked_out"))
	raw, err := proto.Marshal(f)
	if err != nil {
		t.Fatalf("marshal failure: %v", err)
	}
	if bytes.Contains(raw, []byte("cus_secret")) {
		t.Errorf("failure proto holds the message in clear: %q", f.GetMessage())
	}
	if f.GetEncodedAttributes() == nil {
		t.Fatal("got no encoded attributes, want the message moved there")
	}
	back := fc.FailureToError(f)
	if !strings.Contains(back.Error(), "customer cus_secret is locked") {
		t.Errorf("got %q, want the original message back", back.Error())
	}
	var appErr *temporal.ApplicationError
	if !errors.As(back, &appErr) || appErr.Type() != "customer_locked_out" {
		t.Errorf("got %#v, want an application error of type customer_locked_out", back)
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	b, err := GenerateKey(nil)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	if len(a.Secret) != KeySize {
		t.Errorf("got %d-byte secret, want %d", len(a.Secret), KeySize)
	}
	if a.ID == b.ID || bytes.Equal(a.Secret, b.Secret) {
		t.Error("got two equal keys, want distinct random keys")
	}
	if err := a.validate(); err != nil {
		t.Errorf("generated key invalid: %v", err)
	}
	if _, err := GenerateKey(bytes.NewReader(make([]byte, 10))); err == nil {
		t.Error("got nil error from a short reader, want one")
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "codec.keys")

	first, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("got mode %04o, want 0600", got)
	}
	if len(first) != 1 {
		t.Fatalf("got %d keys, want 1", len(first))
	}

	second, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if second[0].ID != first[0].ID || !bytes.Equal(second[0].Secret, first[0].Secret) {
		t.Error("got a new key on reload, want the stored one so old histories decrypt")
	}

	// An operator may prepend a new key to rotate.
	k := mustKey(t, "k-new")
	if err := os.WriteFile(path, []byte(FormatKeys([]Key{k})+"\n"+FormatKeys(first)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("rotated reload: %v", err)
	}
	if len(ring) != 2 || ring[0].ID != "k-new" || ring[1].ID != first[0].ID {
		t.Errorf("got %v, want [k-new %s]", ring, first[0].ID)
	}
}

func TestLoadOrCreateKeyFile_Refuses(t *testing.T) {
	secret := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
	}{
		{"readable by others", "k1:" + secret, 0o644, "chmod 600"},
		{"truncated secret", "k1:" + secret[:10], 0o600, "want a 32-byte secret"},
		{"not base64", "k1:%%%", 0o600, "not base64"},
		{"empty", "", 0o600, "no keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "codec.keys")
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // umask may have narrowed it
				t.Fatal(err)
			}
			_, err := LoadOrCreateKeyFile(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret[:10]) {
				t.Errorf("error %q leaks key material", err)
			}
		})
	}
}
