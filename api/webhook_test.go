package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
)

func checkAck(t *testing.T, code int, body string, duplicate bool) {
	t.Helper()
	want := `{"received":true,"duplicate":` + strconv.FormatBool(duplicate) + `}`
	if code != 200 || body != want {
		t.Fatalf("got %d %s, want 200 %s", code, body, want)
	}
}

func TestWebhook_ChallengeEventSignalsFlow(t *testing.T) {
	e := newEnv(t)
	f := testFlow(customerA, flow.KindUpdatePIN, flow.StatusAwaitingUser)
	e.st.addFlow(f, "", "")
	body := `{"event":"challenge.completed","timestamp":"2026-03-04T10:00:00Z","idempotencyKey":"evt-1",` +
		`"data":{"customerId":"` + customerA + `","challengeId":"` + f.ChallengeID + `","task":"update-pin","status":"verified","extra":{"x":1}}}`
	rec := e.webhook(body, testSecret, "hdr-1")
	checkAck(t, rec.Code, rec.Body.String(), false)

	sigs := e.tc.signalCalls()
	if len(sigs) != 1 || sigs[0].workflowID != f.ID || sigs[0].signal != flow.SignalChallengeEvent || sigs[0].start != nil {
		t.Fatalf("signals: got %+v", sigs)
	}
	ev := sigs[0].arg.(flow.ChallengeEvent)
	if ev.ChallengeID != f.ChallengeID || ev.Event != "challenge.completed" || ev.Status != "verified" ||
		ev.WebhookID != "evt-1" || !ev.Received.Equal(testNow) {
		t.Errorf("event: got %+v", ev)
	}
	entry := e.st.inbox["evt-1"]
	if entry == nil || entry.WebhookID != "hdr-1" || entry.EventType != "challenge.completed" || entry.ChallengeID != f.ChallengeID ||
		entry.CustomerID != customerA || len(entry.BodySHA256) != 64 || entry.Outcome != OutcomeSignalled || entry.ProcessedAt == nil {
		t.Errorf("inbox entry: got %+v", entry)
	}

	// The same idempotencyKey again (even under another X-Webhook-Id) is a
	// duplicate: acknowledged, not acted on.
	rec = e.webhook(body, testSecret, "hdr-2")
	checkAck(t, rec.Code, rec.Body.String(), true)
	if len(e.tc.signalCalls()) != 1 {
		t.Error("a duplicate was signalled")
	}
}

func TestWebhook_DedupeByHeaderWhenNoKey(t *testing.T) {
	e := newEnv(t)
	body := `{"event":"customer.locked_out","data":{"customerId":"` + customerA + `"}}`
	rec := e.webhook(body, testSecret, "hdr-9")
	checkAck(t, rec.Code, rec.Body.String(), false)
	rec = e.webhook(body, testSecret, "hdr-9")
	checkAck(t, rec.Code, rec.Body.String(), true)
	rec = e.webhook(body, testSecret, "")
	wantError(t, rec, 400, flow.CodeInvalidRequest)
}

// The X-Webhook-Id header is not signed: an oversized one next to a valid
// idempotencyKey does not cost the verified event.
func TestWebhook_OddHeaderIDWithBodyKey(t *testing.T) {
	e := newEnv(t)
	body := `{"event":"customer.locked_out","idempotencyKey":"evt-odd","data":{"customerId":"` + customerA + `"}}`
	rec := e.webhook(body, testSecret, strings.Repeat("x", 300))
	checkAck(t, rec.Code, rec.Body.String(), false)
	// Without a body key, that header is the key, and it is refused.
	rec = e.webhook(`{"event":"customer.locked_out","data":{}}`, testSecret, strings.Repeat("x", 300))
	wantError(t, rec, 400, flow.CodeInvalidRequest)
}

func TestWebhook_CustomerEventSignalsWithStart(t *testing.T) {
	e := newEnv(t)
	body := `{"event":"customer.locked_out","timestamp":"2026-03-04T10:00:00Z","idempotencyKey":"evt-2","data":{"customerId":"` + customerA + `"}}`
	rec := e.webhook(body, testSecret, "h")
	checkAck(t, rec.Code, rec.Body.String(), false)
	sigs := e.tc.signalCalls()
	if len(sigs) != 1 {
		t.Fatalf("got %d signals", len(sigs))
	}
	s := sigs[0]
	if s.workflowID != flow.CustomerWorkflowID(customerA) || s.signal != flow.SignalCustomerEvent || s.start == nil ||
		s.start.ID != flow.CustomerWorkflowID(customerA) || s.start.TaskQueue != "tq" ||
		s.start.WorkflowIDConflictPolicy.String() != "UseExisting" || s.start.WorkflowIDReusePolicy.String() != "AllowDuplicate" ||
		s.wfType != flow.WorkflowCustomer || s.wfArgs[0].(flow.CustomerInput).CustomerID != customerA {
		t.Errorf("signal-with-start: got %+v %+v", s, s.start)
	}
	if ev := s.arg.(flow.CustomerEvent); ev.CustomerID != customerA || ev.Event != "customer.locked_out" || ev.WebhookID != "evt-2" {
		t.Errorf("event: got %+v", ev)
	}
	if got := e.st.outcome("evt-2"); got != OutcomeSignalled {
		t.Errorf("outcome: got %q", got)
	}
}

func TestWebhook_Outcomes(t *testing.T) {
	f := testFlow(customerA, flow.KindResetPIN, flow.StatusAwaitingUser)
	for _, tc := range []struct {
		name, body string
		setup      func(*env)
		outcome    string
		signals    int
	}{
		{"unknown event", `{"event":"wallet.created","idempotencyKey":"k","data":{"customerId":"` + customerA + `"}}`, nil, OutcomeIgnored, 0},
		{"event with no ids", `{"event":"customer.created","idempotencyKey":"k","data":{}}`, nil, OutcomeIgnored, 0},
		{"flow finished", `{"event":"challenge.failed","idempotencyKey":"k","data":{"challengeId":"` + f.ChallengeID + `"}}`,
			func(e *env) { e.tc.signalErr = serviceerror.NewNotFound("workflow execution already completed") }, OutcomeFlowFinished, 1},
		{"temporal down", `{"event":"challenge.completed","idempotencyKey":"k","data":{"challengeId":"` + f.ChallengeID + `"}}`,
			func(e *env) { e.tc.signalErr = serviceerror.NewUnavailable("down") }, OutcomeSignalFailed, 1},
		{"temporal down for customer", `{"event":"customer.pin_setup","idempotencyKey":"k","data":{"customerId":"` + customerA + `"}}`,
			func(e *env) { e.tc.signalErr = serviceerror.NewUnavailable("down") }, OutcomeSignalFailed, 1},
		{"unknown challenge", `{"event":"challenge.completed","idempotencyKey":"k","data":{"challengeId":"ch_unknown"}}`, nil, OutcomeUnmatched, 0},
		{"unknown challenge, customer event", `{"event":"customer.pin_setup","idempotencyKey":"k","data":{"challengeId":"ch_unknown","customerId":"` + customerA + `"}}`, nil, OutcomeSignalled, 1},
		{"malformed customer id", `{"event":"customer.pin_setup","idempotencyKey":"k","data":{"customerId":"a/b"}}`, nil, OutcomeIgnored, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.st.addFlow(f, "", "")
			if tc.setup != nil {
				tc.setup(e)
			}
			rec := e.webhook(tc.body, testSecret, "h")
			checkAck(t, rec.Code, rec.Body.String(), false)
			if got := e.st.outcome("k"); got != tc.outcome {
				t.Errorf("outcome: got %q, want %q", got, tc.outcome)
			}
			if got := len(e.tc.signalCalls()); got != tc.signals {
				t.Errorf("signals: got %d, want %d", got, tc.signals)
			}
		})
	}
}

func TestWebhook_StoreFailures(t *testing.T) {
	e := newEnv(t)
	e.st.err = errors.New("db down")
	rec := e.webhook(`{"event":"customer.pin_setup","idempotencyKey":"k","data":{}}`, testSecret, "h")
	wantError(t, rec, 500, flow.CodeInternal) // not recorded: Planbok must send it again
}

func TestWebhook_Signature(t *testing.T) {
	body := `{"event":"customer.pin_setup","idempotencyKey":"k","data":{"customerId":"` + customerA + `"}}`
	e := newEnv(t)
	sign := func(secret string, ts time.Time) []string {
		h := http.Header{}
		planbok.SetWebhookHeaders(h, []byte(secret), "id", "customer.pin_setup", ts, []byte(body))
		return []string{planbok.HeaderWebhookTimestamp, h.Get(planbok.HeaderWebhookTimestamp),
			planbok.HeaderWebhookSignature, h.Get(planbok.HeaderWebhookSignature), planbok.HeaderWebhookID, "id"}
	}
	good := sign(testSecret, testNow)
	for name, hdr := range map[string][]string{
		"no headers":        nil,
		"wrong secret":      sign("nope", testNow),
		"stale":             sign(testSecret, testNow.Add(-301*time.Second)),
		"future":            sign(testSecret, testNow.Add(301*time.Second)),
		"no signature":      good[:2],
		"bad prefix":        {good[0], good[1], good[2], strings.TrimPrefix(good[3], "sha256=")},
		"not hex":           {good[0], good[1], good[2], "sha256=zz"},
		"timestamp not int": {good[0], "yesterday", good[2], good[3]},
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, e.do(http.MethodPost, "/v1/webhooks/planbok", body, hdr...), 401, flow.CodeInvalidSignature)
		})
	}
	// A body changed after signing fails.
	wantError(t, e.do(http.MethodPost, "/v1/webhooks/planbok", body+" ", good...), 401, flow.CodeInvalidSignature)
	if len(e.st.inbox) != 0 {
		t.Error("an unverified webhook was recorded")
	}
	// Rotation: the old secret still verifies; an API key is not needed.
	rec := e.do(http.MethodPost, "/v1/webhooks/planbok", body, sign("old-secret", testNow.Add(-299*time.Second))...)
	checkAck(t, rec.Code, rec.Body.String(), false)
}

func TestWebhook_InvalidShape(t *testing.T) {
	e := newEnv(t)
	for name, body := range map[string]string{
		"not json":         `event=x`,
		"array":            `[{"event":"x"}]`,
		"empty":            ``,
		"missing event":    `{"idempotencyKey":"k","data":{}}`,
		"empty event":      `{"event":"","idempotencyKey":"k","data":{}}`,
		"event not string": `{"event":5,"idempotencyKey":"k","data":{}}`,
		"missing data":     `{"event":"customer.created","idempotencyKey":"k"}`,
		"data array":       `{"event":"customer.created","idempotencyKey":"k","data":[]}`,
		"data null":        `{"event":"customer.created","idempotencyKey":"k","data":null}`,
		"id not string":    `{"event":"customer.created","idempotencyKey":"k","data":{"customerId":5}}`,
		"bad timestamp":    `{"event":"customer.created","timestamp":"yesterday","idempotencyKey":"k","data":{}}`,
		"key not string":   `{"event":"customer.created","idempotencyKey":5,"data":{}}`,
		"two objects":      `{"event":"a","idempotencyKey":"k","data":{}}{}`,
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, e.webhook(body, testSecret, "h-"+name), 400, flow.CodeInvalidRequest)
		})
	}
	if len(e.st.inbox) != 0 {
		t.Error("a malformed webhook was recorded")
	}
}

func TestWebhook_TooLarge(t *testing.T) {
	e := newEnv(t)
	body := `{"event":"customer.created","idempotencyKey":"k","data":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}`
	wantError(t, e.webhook(body, testSecret, "h"), 413, flow.CodePayloadTooLarge)
	// Just under the cap is fine.
	body = `{"event":"customer.created","idempotencyKey":"k","data":{"pad":"` + strings.Repeat("x", 1<<20-100) + `"}}`
	rec := e.webhook(body, testSecret, "h")
	checkAck(t, rec.Code, rec.Body.String(), false)
}
