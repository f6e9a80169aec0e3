package api

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/custodyflows/custodyflows/planbok"
)

// BenchmarkStartRoute measures a start request through auth, decoding,
// validation, the fakes and rendering.
func BenchmarkStartRoute(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.StartQuota = rate.Inf; c.Logger = nil })
	body := `{"redirectUrl":"https://app.example.com/back","blockchains":["ETH-SEPOLIA","SOL-DEVNET"]}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/customers/"+customerA+"/wallets", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testKey2)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("got %d %s", rec.Code, rec.Body.String())
		}
	}
}

// BenchmarkWebhookIntake measures a verified, new webhook: read, verify,
// parse, record, route to a flow.
func BenchmarkWebhookIntake(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.Logger = nil })
	f := testFlow(customerA, "update_pin", "awaiting_user")
	e.st.addFlow(f, "", "")
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		body := []byte(`{"event":"challenge.completed","idempotencyKey":"bench-` + strconv.Itoa(i) +
			`","data":{"customerId":"` + customerA + `","challengeId":"` + f.ChallengeID + `","status":"verified"}}`)
		req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/planbok", strings.NewReader(string(body)))
		planbok.SetWebhookHeaders(req.Header, []byte(testSecret), "id", "challenge.completed", testNow, body)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("got %d %s", rec.Code, rec.Body.String())
		}
	}
}

// BenchmarkDecodeStrictLargeWebhook measures the key check and decode of
// a webhook body near the 1 MiB cap made of many small objects, the most
// work an attacker with a valid signature could ask of it.
func BenchmarkDecodeStrictLargeWebhook(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"event":"customer.created","idempotencyKey":"k","data":{"customerId":"c"},"pad":[`)
	for i := 0; sb.Len() < 1<<20-64; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"a":1,"b":"x","c":[1,2]}`)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, aerr := parseWebhook(body); aerr != nil {
			b.Fatal(aerr)
		}
	}
}
