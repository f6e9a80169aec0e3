package planbok

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook headers (Planbok's beta documentation).
const (
	HeaderWebhookTimestamp = "X-Webhook-Timestamp"
	HeaderWebhookID        = "X-Webhook-Id"
	HeaderWebhookEvent     = "X-Webhook-Event"
	HeaderWebhookSignature = "X-Webhook-Signature"
)

// WebhookTolerance is how far a webhook's timestamp may be from now.
const WebhookTolerance = 300 * time.Second

// Errors returned by VerifyWebhook.
var (
	ErrMissingSignature = errors.New("planbok: missing webhook signature or timestamp")
	ErrBadTimestamp     = errors.New("planbok: webhook timestamp is not unix seconds")
	ErrStaleTimestamp   = errors.New("planbok: webhook timestamp outside tolerance")
	ErrBadSignature     = errors.New("planbok: webhook signature does not match")
)

// SignWebhook returns the X-Webhook-Signature value for body sent at ts:
// "sha256=" + hex(HMAC-SHA256(secret, "<unix seconds>.<body>")).
func SignWebhook(secret []byte, ts time.Time, body []byte) string {
	return "sha256=" + hex.EncodeToString(webhookMAC(secret, strconv.FormatInt(ts.Unix(), 10), body))
}

func webhookMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// SetWebhookHeaders sets the signature headers of a webhook request.
func SetWebhookHeaders(h http.Header, secret []byte, id, event string, ts time.Time, body []byte) {
	h.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookEvent, event)
	h.Set(HeaderWebhookSignature, SignWebhook(secret, ts, body))
}

// VerifyWebhook checks the signature headers of a webhook against its raw
// body. Any of secrets may have signed it (rotation). The timestamp must be
// within WebhookTolerance of now. The comparison is constant-time.
func VerifyWebhook(h http.Header, body []byte, now time.Time, secrets ...[]byte) error {
	tsText, sig := h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature)
	if tsText == "" || sig == "" {
		return ErrMissingSignature
	}
	secs, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if d := now.Sub(time.Unix(secs, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		return ErrStaleTimestamp
	}
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return ErrBadSignature
	}
	for _, s := range secrets {
		if len(s) > 0 && hmac.Equal(got, webhookMAC(s, tsText, body)) {
			return nil
		}
	}
	return ErrBadSignature
}
