package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
)

// Webhook requests past the bound are answered 503 overloaded with
// Retry-After at once (nothing queues), while authenticated routes keep
// working; freed slots take requests again.
func TestIntake_BoundOnRequestsInFlight(t *testing.T) {
	const limit = 3
	e := newEnv(t, func(c *Config) { c.WebhookConcurrency = limit })

	// limit requests whose bodies never finish arriving hold every slot,
	// as slow unauthenticated clients would.
	var wg sync.WaitGroup
	writers := make([]*io.PipeWriter, limit)
	for i := range limit {
		pr, pw := io.Pipe()
		writers[i] = pw
		req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/planbok", pr)
		wg.Go(func() { e.h.ServeHTTP(httptest.NewRecorder(), req) })
		if _, err := pw.Write([]byte(`{"event":`)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(e.srv.intake.slots) < limit {
		if time.Now().After(deadline) {
			t.Fatalf("slots in use: got %d, want %d", len(e.srv.intake.slots), limit)
		}
		time.Sleep(time.Millisecond)
	}

	body := `{"event":"customer.locked_out","idempotencyKey":"evt-busy","data":{"customerId":"` + customerA + `"}}`
	start := time.Now()
	for range 20 {
		rec := e.webhook(body, testSecret, "h")
		wantError(t, rec, http.StatusServiceUnavailable, flow.CodeOverloaded)
		if got := rec.Header().Get("Retry-After"); got != strconv.Itoa(retryAfterIntake) {
			t.Fatalf("Retry-After: got %q, want %d", got, retryAfterIntake)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("20 refusals took %v: they must not wait for a slot", d)
	}
	if got := testutil.ToFloat64(e.srv.intake.rejected); got != 20 {
		t.Errorf("rejected metric: got %v, want 20", got)
	}
	if e.st.called("RecordWebhook") {
		t.Error("a refused webhook was recorded")
	}

	// The app API is not behind the intake's bound.
	if rec := e.api(http.MethodGet, "/v1/customers/"+customerA, ""); rec.Code != http.StatusOK {
		t.Errorf("authenticated GET while the intake is full: got %d %s", rec.Code, rec.Body)
	}
	if rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody); rec.Code != http.StatusCreated {
		t.Errorf("authenticated start while the intake is full: got %d %s", rec.Code, rec.Body)
	}

	for _, pw := range writers {
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}
	wg.Wait()
	if n := len(e.srv.intake.slots); n != 0 {
		t.Fatalf("slots still in use after the slow requests ended: %d", n)
	}
	rec := e.webhook(body, testSecret, "h")
	checkAck(t, rec.Code, rec.Body.String(), false)
}

func TestIntake_DefaultBound(t *testing.T) {
	e := newEnv(t)
	if got := cap(e.srv.intake.slots); got != DefaultWebhookConcurrency {
		t.Errorf("default bound: got %d, want %d", got, DefaultWebhookConcurrency)
	}
}

// Over a real connection: with every slot held by a slow sender, a signed
// webhook is refused in well under a second rather than left waiting.
func TestIntake_RealServerRefusesAtOnce(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.WebhookConcurrency = 1 })
	srv := httptest.NewServer(e.h)
	defer srv.Close()

	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Post(srv.URL+"/v1/webhooks/planbok", "application/json", pr)
		if err == nil {
			resp.Body.Close()
		}
	}()
	pw.Write([]byte(`{`))
	deadline := time.Now().Add(5 * time.Second)
	for len(e.srv.intake.slots) < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}

	body := []byte(`{"event":"customer.locked_out","idempotencyKey":"k","data":{}}`)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/webhooks/planbok", strings.NewReader(string(body)))
	planbok.SetWebhookHeaders(req.Header, []byte(testSecret), "id", "event", e.now, body)
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("over the bound: %v (it must answer at once)", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("over the bound: got %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	pw.CloseWithError(io.ErrUnexpectedEOF)
	<-done
}
