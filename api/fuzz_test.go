package api

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
)

// FuzzWebhookIntake sends arbitrary bodies and headers through the intake,
// signed with the right secret when sign is true: it must never panic and
// never answer 5xx (the fakes never fail).
func FuzzWebhookIntake(f *testing.F) {
	f.Add([]byte(`{"event":"challenge.completed","idempotencyKey":"k1","data":{"challengeId":"ch_1","customerId":"66aa0000000000000000000a","status":"verified"}}`), "id-1", "", true)
	f.Add([]byte(`{"event":"customer.locked_out","data":{"customerId":"66aa0000000000000000000a"}}`), "id-2", "", true)
	f.Add([]byte(`{"event":"customer.pin_setup","timestamp":"2026-03-04T10:00:00Z","idempotencyKey":"k3","data":{}}`), "", "", true)
	f.Add([]byte(`{"event":"x","data":[]}`), "id", "", true)
	f.Add([]byte(`[]`), "id", "", true)
	f.Add([]byte(``), "", "", false)
	f.Add([]byte(`{"event":"x","idempotencyKey":"k","data":{}}`), "id", "sha256=00", false)
	f.Add([]byte("{\"event\":\"\xff\",\"idempotencyKey\":\"\x00\",\"data\":{\"customerId\":\"../..\"}}"), "\x01", "sha256=", true)
	f.Add([]byte(`{"event":"a","event":"b","EVENT":"customer.locked_out","data":{}}`), "id", "", true)
	f.Add([]byte(`{"event":"customer.locked_out","data":{"customerId":"a","CUSTOMERID":"b","x":[[[{"y":1,"y":2}]]]}}`), "id", "", true)
	f.Add([]byte(`{"event":"x","data":{},"z":`+strings.Repeat("[", 5000)+`}`), "id", "", true)
	f.Add([]byte(`{"event":"x","data":{"K":1,"k":2}}`), "id", "", true)
	e := newEnv(f, func(c *Config) { c.Logger = nil })
	f.Fuzz(func(t *testing.T, body []byte, id, sig string, sign bool) {
		req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/planbok", strings.NewReader(string(body)))
		req.Header.Set(planbok.HeaderWebhookTimestamp, strconv.FormatInt(testNow.Unix(), 10))
		if validHeaderValue(id) {
			req.Header.Set(planbok.HeaderWebhookID, id)
		}
		if sign {
			sig = planbok.SignWebhook([]byte(testSecret), testNow, body)
		}
		if validHeaderValue(sig) {
			req.Header.Set(planbok.HeaderWebhookSignature, sig)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("got %d %s", rec.Code, rec.Body.String())
		}
		if !sign && rec.Code != http.StatusUnauthorized && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("unsigned: got %d, want 401", rec.Code)
		}
	})
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// FuzzStartBody sends arbitrary start bodies: decoding and validation must
// never panic, and the answer is always 2xx or 4xx.
func FuzzStartBody(f *testing.F) {
	f.Add(uint8(0), []byte(`{"redirectUrl":"https://app.example.com/back"}`))
	f.Add(uint8(5), []byte(`{"redirectUrl":"https://app.example.com/back","blockchains":["ETH","SOL-DEVNET"],"idempotencyKey":"k"}`))
	f.Add(uint8(5), []byte(`{"redirectUrl":"https://app.example.com/back","blockchains":["ETH","ETH"]}`))
	f.Add(uint8(2), []byte(`{"redirectUrl":"https://user:pw@app.example.com/#frag"}`))
	f.Add(uint8(1), []byte(`{"redirectUrl":"http://[::1]:namedport"}`))
	f.Add(uint8(3), []byte(`{"redirectUrl":"https://app.example.com/","idempotencyKey":null,"x":1}`))
	f.Add(uint8(4), []byte(`{"redirectUrl":"https://app.example.com/"} trailing`))
	f.Add(uint8(0), []byte(`null`))
	f.Add(uint8(0), []byte("{\"redirectUrl\":\"https://app.example.com/\xff\"}"))
	f.Add(uint8(0), []byte(`{"redirectUrl":"https://evil.com／.app.example.com/","REDIRECTURL":"x"}`))
	f.Add(uint8(0), []byte(`{"redirectUrl":"https://app.example.com:99999/"}`))
	f.Add(uint8(5), []byte(`{"redirectUrl":"https://app.example.com/","blockchains":["ETH"],"blockchains":[{"a":1,"a":2}]}`))
	f.Add(uint8(0), []byte(`{"redirectUrl":"https://xn--.app.example.com/"}`))
	e := newEnv(f, func(c *Config) { c.StartQuota, c.StartBurst, c.Logger = 1e9, 1e9, nil })
	f.Fuzz(func(t *testing.T, kindIndex uint8, body []byte) {
		kind := flow.Kinds[int(kindIndex)%len(flow.Kinds)]
		if _, err := parseStart(kind, body, e.srv.redirect); err != nil && StatusForCode(err.code) >= 500 {
			t.Fatalf("parseStart: got %v", err)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/customers/"+customerA+"/"+kind.Route(), strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+testKey1)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code < 200 || rec.Code >= 500 {
			t.Fatalf("got %d %s", rec.Code, rec.Body.String())
		}
	})
}
