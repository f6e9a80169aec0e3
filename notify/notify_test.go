package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

// testSecretText is a Standard Webhooks secret used by the reference
// libraries' test suites.
const testSecretText = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func testSecret(t *testing.T) []byte {
	t.Helper()
	s, err := ParseSecret(testSecretText)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	return s
}

func TestParseSecret(t *testing.T) {
	long := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123"))
	tests := []struct {
		name    string
		in      string
		wantLen int
		wantErr bool
	}{
		{"prefixed", "whsec_" + long, 20, false},
		{"bare base64", long, 20, false},
		{"surrounding space", "  whsec_" + long + "\n", 20, false},
		{"reference secret", testSecretText, 24, false},
		{"empty", "", 0, true},
		{"prefix only", "whsec_", 0, true},
		{"not base64", "whsec_not*base64!!", 0, true},
		{"too short", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short")), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecret(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got nil error, want one")
				}
				if body := strings.TrimPrefix(strings.TrimSpace(tt.in), "whsec_"); body != "" && strings.Contains(err.Error(), body) {
					t.Errorf("error %q echoes the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if len(got) != tt.wantLen {
				t.Errorf("got %d bytes, want %d", len(got), tt.wantLen)
			}
		})
	}
}

// TestSign_ReferenceVector checks Sign against the vector published with
// the Standard Webhooks reference implementations.
func TestSign_ReferenceVector(t *testing.T) {
	got := Sign(testSecret(t), "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := testSecret(t)
	other := []byte("another-secret-of-enough-length")
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"customer.pin_setup"}`)
	good := Sign(secret, "msg_1", now, body)
	headers := func(id, ts, sig string) http.Header {
		h := http.Header{}
		if id != "" {
			h.Set(HeaderID, id)
		}
		if ts != "" {
			h.Set(HeaderTimestamp, ts)
		}
		if sig != "" {
			h.Set(HeaderSignature, sig)
		}
		return h
	}
	nowText := strconv.FormatInt(now.Unix(), 10)
	tests := []struct {
		name string
		h    http.Header
		body []byte
		now  time.Time
		tol  time.Duration
		want error
	}{
		{"valid", headers("msg_1", nowText, good), body, now, 0, nil},
		{"several signatures, second matches", headers("msg_1", nowText, Sign(other, "msg_1", now, body)+" "+good), body, now, 0, nil},
		{"other versions ignored", headers("msg_1", nowText, "v1a,"+strings.TrimPrefix(good, "v1,")+" "+good), body, now, 0, nil},
		{"within custom tolerance", headers("msg_1", nowText, good), body, now.Add(50 * time.Second), time.Minute, nil},
		{"wrong secret", headers("msg_1", nowText, Sign(other, "msg_1", now, body)), body, now, 0, ErrNoMatchingSignature},
		{"body changed", headers("msg_1", nowText, good), []byte(`{"type":"flow.failed"}`), now, 0, ErrNoMatchingSignature},
		{"id changed", headers("msg_2", nowText, good), body, now, 0, ErrNoMatchingSignature},
		{"only other version", headers("msg_1", nowText, "v1a,"+strings.TrimPrefix(good, "v1,")), body, now, 0, ErrNoMatchingSignature},
		{"garbage signature", headers("msg_1", nowText, "v1,%%%"), body, now, 0, ErrNoMatchingSignature},
		{"too old", headers("msg_1", nowText, good), body, now.Add(6 * time.Minute), 0, ErrStaleTimestamp},
		{"too new", headers("msg_1", nowText, good), body, now.Add(-6 * time.Minute), 0, ErrStaleTimestamp},
		{"outside custom tolerance", headers("msg_1", nowText, good), body, now.Add(2 * time.Minute), time.Minute, ErrStaleTimestamp},
		{"bad timestamp", headers("msg_1", "yesterday", good), body, now, 0, ErrBadTimestamp},
		{"missing id", headers("", nowText, good), body, now, 0, ErrMissingHeaders},
		{"missing timestamp", headers("msg_1", "", good), body, now, 0, ErrMissingHeaders},
		{"missing signature", headers("msg_1", nowText, ""), body, now, 0, ErrMissingHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Verify(secret, tt.h, tt.body, tt.now, tt.tol)
			if !errors.Is(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// independentSignature recomputes a signature without the package's
// helpers, so a bug shared by Sign and Verify cannot hide.
func independentSignature(secret []byte, id, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	io.WriteString(m, id+"."+ts+".")
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestSender_Deliver(t *testing.T) {
	secret := testSecret(t)
	type captured struct {
		method string
		header http.Header
		body   []byte
	}
	got := make(chan captured, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- captured{r.Method, r.Header.Clone(), b}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	pinSet := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := flow.AppEvent{
		Type:      flow.EventPINUpdated,
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600)),
		Data: flow.AppEventData{
			CustomerID: "cus_1", FlowID: "flow_1", Kind: flow.KindUpdatePIN, Status: flow.StatusCompleted,
			Security: flow.Security{HasPIN: true, PINSetAt: &pinSet},
		},
	}
	s := New(srv.URL, secret, srv.Client())
	before := time.Now()
	if err := s.Deliver(context.Background(), "evt_123", ev); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	c := <-got

	if c.method != http.MethodPost {
		t.Errorf("got method %s, want POST", c.method)
	}
	if ct := c.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
	if id := c.header.Get(HeaderID); id != "evt_123" {
		t.Errorf("got webhook-id %q, want evt_123", id)
	}
	tsText := c.header.Get(HeaderTimestamp)
	secs, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		t.Fatalf("webhook-timestamp %q: %v", tsText, err)
	}
	if d := time.Unix(secs, 0).Sub(before); d < -time.Second || d > time.Minute {
		t.Errorf("got webhook-timestamp %d, want about %d", secs, before.Unix())
	}
	if sig, want := c.header.Get(HeaderSignature), independentSignature(secret, "evt_123", tsText, c.body); sig != want {
		t.Errorf("got signature %q, want %q", sig, want)
	}
	if err := Verify(secret, c.header, c.body, time.Now(), 0); err != nil {
		t.Errorf("Verify: %v", err)
	}

	var top map[string]json.RawMessage
	if err := json.Unmarshal(c.body, &top); err != nil {
		t.Fatalf("body %s: %v", c.body, err)
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"data", "timestamp", "type"}; !slices.Equal(keys, want) {
		t.Errorf("got body keys %v, want %v", keys, want)
	}
	if string(top["type"]) != `"customer.pin_updated"` {
		t.Errorf("got type %s, want \"customer.pin_updated\"", top["type"])
	}
	if string(top["timestamp"]) != `"2026-01-02T02:04:05Z"` {
		t.Errorf("got timestamp %s, want UTC \"2026-01-02T02:04:05Z\"", top["timestamp"])
	}
	var data flow.AppEventData
	if err := json.Unmarshal(top["data"], &data); err != nil {
		t.Fatalf("data: %v", err)
	}
	if data.CustomerID != "cus_1" || data.FlowID != "flow_1" || data.Kind != flow.KindUpdatePIN ||
		data.Status != flow.StatusCompleted || !data.Security.HasPIN || data.Security.PINSetAt == nil {
		t.Errorf("got data %+v, want the event's data", data)
	}
}

func TestSender_DeliverStatus(t *testing.T) {
	tests := []struct {
		status        int
		wantErr       bool
		wantPermanent bool
	}{
		{200, false, false},
		{202, false, false},
		{204, false, false},
		{301, true, false},
		{400, true, false},
		{404, true, false},
		{410, true, true},
		{429, true, false},
		{500, true, false},
		{503, true, false},
	}
	secret := testSecret(t)
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/moved" {
					// Following the redirect would turn the POST into a
					// GET that lands here and "succeeds".
					w.WriteHeader(http.StatusOK)
					return
				}
				if tt.status == 301 {
					w.Header().Set("Location", "/moved")
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, "app says no")
			}))
			defer srv.Close()
			// The token stands in for a secret someone put in the URL.
			err := New(srv.URL+"/hook?token=url-secret-token", secret, srv.Client()).
				Deliver(context.Background(), "evt_1", flow.AppEvent{Type: flow.EventFlowFailed})
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			var de *DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("got %T %v, want *DeliveryError", err, err)
			}
			if got := IsPermanent(err); got != tt.wantPermanent {
				t.Errorf("got IsPermanent %v, want %v", got, tt.wantPermanent)
			}
			msg := err.Error()
			if !strings.Contains(msg, strconv.Itoa(tt.status)) {
				t.Errorf("error %q does not name status %d", msg, tt.status)
			}
			for _, secretText := range []string{"url-secret-token", strings.TrimPrefix(testSecretText, "whsec_")} {
				if strings.Contains(msg, secretText) {
					t.Errorf("error %q leaks %q", msg, secretText)
				}
			}
		})
	}
}

func TestSender_DeliverTransportErrorHidesURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens any more
	err := New(addr+"/hook?token=url-secret-token", testSecret(t), nil).
		Deliver(context.Background(), "evt_1", flow.AppEvent{Type: flow.EventFlowFailed})
	if err == nil {
		t.Fatal("got nil error, want a connection error")
	}
	if strings.Contains(err.Error(), "url-secret-token") {
		t.Errorf("error %q leaks the URL's token", err)
	}
	if IsPermanent(err) {
		t.Errorf("got permanent, want a retryable transport error")
	}
}

func TestSender_DeliverBadURL(t *testing.T) {
	err := New("://bad url with secret-token", testSecret(t), nil).
		Deliver(context.Background(), "evt_1", flow.AppEvent{})
	if err == nil || strings.Contains(err.Error(), "secret-token") {
		t.Errorf("got %v, want an error that does not quote the URL", err)
	}
}

func TestSender_DeliverEmptyID(t *testing.T) {
	if err := New("http://127.0.0.1:1", testSecret(t), nil).Deliver(context.Background(), "", flow.AppEvent{}); err == nil {
		t.Error("got nil error, want one for an empty message id")
	}
}

func TestSender_StringHidesSecrets(t *testing.T) {
	s := New("https://app.example/hook?token=t0k", testSecret(t), nil)
	if got := s.String(); strings.Contains(got, "t0k") || strings.Contains(got, "app.example") {
		t.Errorf("got %q, want no URL", got)
	}
}
