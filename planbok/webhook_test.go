package planbok

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSignWebhook_KnownValue(t *testing.T) {
	// Computed independently:
	//   printf '1767225600.{"event":"customer.created"}' | openssl dgst -sha256 -hmac whsec
	ts := time.Unix(1767225600, 0)
	got := SignWebhook([]byte("whsec"), ts, []byte(`{"event":"customer.created"}`))
	const want = "sha256=" + knownSignatureHex
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestVerifyWebhook(t *testing.T) {
	now := time.Unix(1767225600, 0)
	secret := []byte("whsec_current")
	body := []byte(`{"event":"customer.pin_setup","timestamp":"2026-01-01T00:00:00Z","idempotencyKey":"k1","data":{"customerId":"c1"}}`)

	// headers returns headers signed with key at ts for body.
	headers := func(key []byte, ts time.Time, b []byte) http.Header {
		h := http.Header{}
		SetWebhookHeaders(h, key, "wh_1", "customer.pin_setup", ts, b)
		return h
	}
	tests := []struct {
		name    string
		h       http.Header
		body    []byte
		secrets [][]byte
		want    error
	}{
		{"valid", headers(secret, now, body), body, [][]byte{secret}, nil},
		{"valid at the tolerance edge (past)", headers(secret, now.Add(-WebhookTolerance), body), body, [][]byte{secret}, nil},
		{"valid at the tolerance edge (future)", headers(secret, now.Add(WebhookTolerance), body), body, [][]byte{secret}, nil},
		{"tampered body", headers(secret, now, body), []byte(strings.Replace(string(body), "c1", "c2", 1)), [][]byte{secret}, ErrBadSignature},
		{"body with trailing newline", headers(secret, now, body), append(append([]byte{}, body...), '\n'), [][]byte{secret}, ErrBadSignature},
		{"wrong secret", headers([]byte("other"), now, body), body, [][]byte{secret}, ErrBadSignature},
		{"stale timestamp", headers(secret, now.Add(-WebhookTolerance-time.Second), body), body, [][]byte{secret}, ErrStaleTimestamp},
		{"future timestamp", headers(secret, now.Add(WebhookTolerance+time.Second), body), body, [][]byte{secret}, ErrStaleTimestamp},
		{"old secret still valid during rotation", headers([]byte("whsec_old"), now, body), body, [][]byte{secret, []byte("whsec_old")}, nil},
		{"new secret first in the list", headers(secret, now, body), body, [][]byte{[]byte("whsec_old"), secret}, nil},
		{"empty secrets are skipped", headers(nil, now, body), body, [][]byte{nil, {}}, ErrBadSignature},
		{"no secrets", headers(secret, now, body), body, nil, ErrBadSignature},
		{"missing signature", without(headers(secret, now, body), HeaderWebhookSignature), body, [][]byte{secret}, ErrMissingSignature},
		{"missing timestamp", without(headers(secret, now, body), HeaderWebhookTimestamp), body, [][]byte{secret}, ErrMissingSignature},
		{"no headers", http.Header{}, body, [][]byte{secret}, ErrMissingSignature},
		{"timestamp not a number", with(headers(secret, now, body), HeaderWebhookTimestamp, "2026-01-01T00:00:00Z"), body, [][]byte{secret}, ErrBadTimestamp},
		{"timestamp in milliseconds", with(headers(secret, now, body), HeaderWebhookTimestamp, strconv.FormatInt(now.UnixMilli(), 10)), body, [][]byte{secret}, ErrStaleTimestamp},
		{"signature without prefix", with(headers(secret, now, body), HeaderWebhookSignature, strings.TrimPrefix(SignWebhook(secret, now, body), "sha256=")), body, [][]byte{secret}, ErrBadSignature},
		{"signature with another scheme", with(headers(secret, now, body), HeaderWebhookSignature, "sha1="+strings.TrimPrefix(SignWebhook(secret, now, body), "sha256=")), body, [][]byte{secret}, ErrBadSignature},
		{"signature not hex", with(headers(secret, now, body), HeaderWebhookSignature, "sha256=zz"), body, [][]byte{secret}, ErrBadSignature},
		{"signature truncated", with(headers(secret, now, body), HeaderWebhookSignature, SignWebhook(secret, now, body)[:40]), body, [][]byte{secret}, ErrBadSignature},
		{"signature for another timestamp", with(headers(secret, now, body), HeaderWebhookSignature, SignWebhook(secret, now.Add(-time.Second), body)), body, [][]byte{secret}, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyWebhook(tt.h, tt.body, now, tt.secrets...)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSetWebhookHeaders(t *testing.T) {
	h := http.Header{}
	ts := time.Unix(1767225600, 0)
	SetWebhookHeaders(h, []byte("s"), "wh_1", "customer.created", ts, []byte("{}"))
	want := map[string]string{
		HeaderWebhookTimestamp: "1767225600",
		HeaderWebhookID:        "wh_1",
		HeaderWebhookEvent:     "customer.created",
		HeaderWebhookSignature: SignWebhook([]byte("s"), ts, []byte("{}")),
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: got %q, want %q", k, got, v)
		}
	}
}

func with(h http.Header, key, value string) http.Header {
	h.Set(key, value)
	return h
}

func without(h http.Header, key string) http.Header {
	h.Del(key)
	return h
}

// knownSignatureHex is HMAC-SHA256("whsec", `1767225600.{"event":"customer.created"}`),
// computed with openssl.
const knownSignatureHex = "c291b58bac6d4e86c28ea0922627747a79f8fb684256d4626ddc95d4870e703f"
