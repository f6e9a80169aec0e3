// Package notify sends custodyflows' events to the app's notify URL as
// Standard Webhooks (https://www.standardwebhooks.com): a JSON body
// {"type","timestamp","data"} signed with headers webhook-id,
// webhook-timestamp and webhook-signature ("v1,<base64 HMAC-SHA256>").
//
// The Sender makes one attempt per Deliver call and never retries: the
// DeliverEvent activity is retried by Temporal with backoff for days, which
// survives process restarts where an in-process retry loop would not.
//
// Verify is for app developers and tests; it accepts several signatures in
// one header so a sender may sign with an old and a new secret while the
// app rotates.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

// Standard Webhooks header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts a Standard Webhooks secret in its text form.
const SecretPrefix = "whsec_"

// MinSecretLen is the shortest decoded secret ParseSecret accepts. Standard
// Webhooks generates 24 to 64 random bytes; anything under 16 is too weak to
// be an HMAC key and is almost certainly a configuration mistake.
const MinSecretLen = 16

// DefaultTolerance is how far a webhook-timestamp may be from now in Verify
// when the caller passes a zero tolerance (the Standard Webhooks default).
const DefaultTolerance = 5 * time.Minute

// Errors returned by ParseSecret and Verify. They never contain secret
// material, so callers may log them.
var (
	ErrInvalidSecret       = errors.New("notify: invalid webhook secret: want whsec_ followed by standard base64 of at least 16 bytes")
	ErrMissingHeaders      = errors.New("notify: missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrBadTimestamp        = errors.New("notify: webhook-timestamp is not unix seconds")
	ErrStaleTimestamp      = errors.New("notify: webhook-timestamp outside tolerance")
	ErrNoMatchingSignature = errors.New("notify: no webhook signature matches")
)

// ParseSecret decodes a secret given as "whsec_<base64>". The prefix is
// optional because some tools print the bare base64; the decoded secret must
// be at least MinSecretLen bytes. The error never echoes the input.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, SecretPrefix)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) < MinSecretLen {
		return nil, ErrInvalidSecret
	}
	return b, nil
}

// Sign returns the webhook-signature value for body sent with message id at
// ts: "v1," + base64(HMAC-SHA256(secret, "<id>.<unix seconds>.<body>")).
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(secret, id, strconv.FormatInt(ts.Unix(), 10), body))
}

func mac(secret []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a Standard Webhooks request: the timestamp must be within
// tolerance of now (DefaultTolerance when tolerance is 0), and one of the
// space-separated "v1,<base64>" signatures in webhook-signature must match.
// Signatures of other versions are ignored. Comparison is constant-time.
func Verify(secret []byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, tsText, sigs := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return ErrMissingHeaders
	}
	secs, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(secs, 0)); d > tolerance || d < -tolerance {
		return ErrStaleTimestamp
	}
	want := mac(secret, id, tsText, body)
	for _, sig := range strings.Fields(sigs) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrNoMatchingSignature
}

// DeliveryError is a non-2xx answer from the app's notify URL. It holds
// only the status: the URL (which may carry a token) and the secret are
// never part of it.
type DeliveryError struct {
	StatusCode int
}

// Error implements error.
func (e *DeliveryError) Error() string {
	return fmt.Sprintf("notify: app answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// Permanent reports whether retrying is pointless. Only 410 Gone is: the
// Standard Webhooks convention is that a receiver answers 410 when the
// endpoint was removed on purpose, so retrying for days would only produce
// noise. Every other status (4xx included) may be a misconfiguration the
// app fixes while we retry, so it is retried.
func (e *DeliveryError) Permanent() bool { return e.StatusCode == http.StatusGone }

// IsPermanent reports whether err is a DeliveryError that should not be
// retried (see DeliveryError.Permanent).
func IsPermanent(err error) bool {
	var d *DeliveryError
	return errors.As(err, &d) && d.Permanent()
}

// Sender delivers events to one notify URL. It is safe for concurrent use.
type Sender struct {
	url    string
	secret []byte
	hc     *http.Client
	now    func() time.Time
}

// DefaultTimeout bounds one delivery attempt when New gets a nil client, so
// a hanging app cannot hold an activity slot until its start-to-close
// timeout.
const DefaultTimeout = 15 * time.Second

// New returns a Sender posting to url, signing with secret. A nil hc gets a
// client with DefaultTimeout. The Sender uses a copy of hc that does not
// follow redirects: Go would replay a redirected POST as a bodiless GET, so
// a 3xx is reported as a failed delivery instead (as Standard Webhooks
// senders do) and the app fixes its URL.
func New(url string, secret []byte, hc *http.Client) *Sender {
	c := http.Client{Timeout: DefaultTimeout}
	if hc != nil {
		c = *hc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Sender{url: url, secret: secret, hc: &c, now: time.Now}
}

// String describes the sender without its URL or secret, so a Sender that
// ends up in a log line leaks neither.
func (s *Sender) String() string { return "notify.Sender" }

// maxDrain bounds how much of a response body is read so the connection
// can be reused, without letting a large answer cost memory.
const maxDrain = 64 << 10

// Deliver POSTs ev as message id. The body is exactly
// {"type","timestamp","data"}; webhook-timestamp is the time of this
// attempt, as the standard asks, so retries are not refused as replays. Any
// 2xx is delivered; anything else is a *DeliveryError. Transport errors are
// returned without the URL.
func (s *Sender) Deliver(ctx context.Context, id string, ev flow.AppEvent) error {
	if id == "" {
		return errors.New("notify: empty message id")
	}
	ev.Timestamp = ev.Timestamp.UTC()
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("notify: encode event: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		// The parse error would quote the URL; say only that it is bad.
		return errors.New("notify: invalid notify URL")
	}
	ts := s.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "custodyflows-notify/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(s.secret, id, ts, body))
	resp, err := s.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL, which may carry a token
		}
		return fmt.Errorf("notify: post event: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &DeliveryError{StatusCode: resp.StatusCode}
	}
	return nil
}
