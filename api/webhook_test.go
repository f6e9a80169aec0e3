package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.temporal.io/api/serviceerror"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
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

// A body without idempotencyKey is keyed by a hash of the signed body, not
// by the unsigned X-Webhook-Id: the same body replayed under another id (or
// none) is a duplicate, acted on once.
func TestWebhook_UnkeyedBodyKeyedBySignedContent(t *testing.T) {
	e := newEnv(t)
	body := `{"event":"customer.locked_out","data":{"customerId":"` + customerA + `"}}`
	rec := e.webhook(body, testSecret, "hdr-9")
	checkAck(t, rec.Code, rec.Body.String(), false)
	for _, id := range []string{"hdr-9", "hdr-10", "", strings.Repeat("x", 300)} {
		rec = e.webhook(body, testSecret, id)
		checkAck(t, rec.Code, rec.Body.String(), true)
	}
	if n := len(e.tc.signalCalls()); n != 1 {
		t.Fatalf("signals: got %d, want 1", n)
	}
	sum := sha256.Sum256([]byte(body))
	key := "body-sha256:" + hex.EncodeToString(sum[:])
	if entry := e.st.inbox[key]; entry == nil || entry.WebhookID != "hdr-9" || entry.Outcome != OutcomeSignalled {
		t.Errorf("inbox entry under %s: got %+v", key, entry)
	}
	// Another body is another event.
	rec = e.webhook(`{"event":"customer.locked_out","data":{"customerId":"`+customerB+`"}}`, testSecret, "hdr-9")
	checkAck(t, rec.Code, rec.Body.String(), false)
}

// The X-Webhook-Id header is not signed: an oversized one next to a valid
// idempotencyKey does not cost the verified event.
func TestWebhook_OddHeaderIDWithBodyKey(t *testing.T) {
	e := newEnv(t)
	body := `{"event":"customer.locked_out","idempotencyKey":"evt-odd","data":{"customerId":"` + customerA + `"}}`
	rec := e.webhook(body, testSecret, strings.Repeat("x", 300))
	checkAck(t, rec.Code, rec.Body.String(), false)
	if got := e.st.inbox["evt-odd"]; got == nil || got.WebhookID != "" {
		t.Errorf("inbox entry: got %+v, want the odd header dropped", got)
	}
	// A malformed idempotencyKey is refused.
	rec = e.webhook(`{"event":"customer.locked_out","idempotencyKey":"a\u0000b","data":{}}`, testSecret, "h")
	wantError(t, rec, 400, flow.CodeInvalidRequest)
}

// A verified body whose idempotencyKey was already recorded with another
// body is a conflict: not acted on, but answered as such, counted in a
// metric and left in the audit log.
func TestWebhook_ConflictingBodyCountedAndAudited(t *testing.T) {
	e := newEnv(t)
	first := `{"event":"customer.locked_out","idempotencyKey":"evt-c","data":{"customerId":"` + customerA + `"}}`
	other := `{"event":"customer.pin_reset","idempotencyKey":"evt-c","data":{"customerId":"` + customerB + `"}}`
	rec := e.webhook(first, testSecret, "h1")
	checkAck(t, rec.Code, rec.Body.String(), false)

	rec = e.webhook(other, testSecret, "h2")
	if want := `{"received":true,"duplicate":true,"conflict":true}`; rec.Code != 200 || rec.Body.String() != want {
		t.Fatalf("conflict: got %d %s, want 200 %s", rec.Code, rec.Body, want)
	}
	if n := len(e.tc.signalCalls()); n != 1 {
		t.Errorf("signals: got %d, want 1 (the conflict must not be acted on)", n)
	}
	a := e.st.lastAudit()
	if a.Action != "webhook.conflict" || a.Actor != "planbok" || a.CustomerID != customerB ||
		!strings.Contains(a.Detail, "evt-c") || !strings.Contains(a.Detail, "customer.pin_reset") {
		t.Errorf("audit: got %+v", a)
	}
	if got := testutil.ToFloat64(e.srv.intake.conflicts); got != 1 {
		t.Errorf("conflict metric: got %v, want 1", got)
	}
	metrics := e.do(http.MethodGet, "/metrics", "").Body.String()
	if !strings.Contains(metrics, "custodyflows_webhook_conflicts_total 1") {
		t.Error("/metrics does not show custodyflows_webhook_conflicts_total 1")
	}

	// The first body again is a plain duplicate.
	rec = e.webhook(first, testSecret, "h3")
	checkAck(t, rec.Code, rec.Body.String(), true)
	if got := testutil.ToFloat64(e.srv.intake.conflicts); got != 1 {
		t.Errorf("conflict metric after a plain duplicate: got %v, want 1", got)
	}

	// If the conflict cannot be audited, the answer is 500 so the sender
	// tries again: a conflict is never dropped silently.
	e.st.mu.Lock()
	e.st.auditErr = errors.New("disk full")
	e.st.mu.Unlock()
	rec = e.webhook(other, testSecret, "h4")
	wantError(t, rec, 500, flow.CodeInternal)
}

// Many deliveries of the same unkeyed body at once, each under its own
// X-Webhook-Id, are acted on once.
func TestWebhook_ConcurrentReplaysActedOnOnce(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.WebhookConcurrency = 200 })
	body := `{"event":"customer.locked_out","data":{"customerId":"` + customerA + `"}}`
	var wg sync.WaitGroup
	var fresh, dups atomic.Int32
	for i := range 100 {
		wg.Go(func() {
			h := http.Header{}
			planbok.SetWebhookHeaders(h, []byte(testSecret), "id-"+strconv.Itoa(i), "event", e.now, []byte(body))
			req := httptest.NewRequest(http.MethodPost, "/v1/webhooks/planbok", strings.NewReader(body))
			req.Header = h
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			switch rec.Body.String() {
			case `{"received":true,"duplicate":false}`:
				fresh.Add(1)
			case `{"received":true,"duplicate":true}`:
				dups.Add(1)
			default:
				t.Errorf("got %d %s", rec.Code, rec.Body)
			}
		})
	}
	wg.Wait()
	if fresh.Load() != 1 || dups.Load() != 99 || len(e.tc.signalCalls()) != 1 {
		t.Errorf("got %d fresh, %d duplicates, %d signals; want 1, 99, 1", fresh.Load(), dups.Load(), len(e.tc.signalCalls()))
	}
}

// Repeated and case-variant keys in a verified body are refused and the
// event is not recorded or acted on: Go's decoder would have read the last
// (case-variant) "EVENT".
func TestWebhook_RepeatedOrCaseVariantKeysRefused(t *testing.T) {
	e := newEnv(t)
	data := `"data":{"customerId":"` + customerA + `"}`
	for name, tc := range map[string]struct{ body, field string }{
		"event event EVENT": {`{"event":"customer.created","event":"customer.created","EVENT":"customer.locked_out",` + data + `}`, "event"},
		"EVENT":             {`{"EVENT":"customer.locked_out",` + data + `}`, "EVENT"},
		"case-variant pair": {`{"event":"customer.created","Event":"customer.locked_out",` + data + `}`, "Event"},
		"key twice":         {`{"event":"customer.locked_out","idempotencyKey":"a","idempotencyKey":"b",` + data + `}`, "idempotencyKey"},
		"data twice":        {`{"event":"customer.locked_out",` + data + `,` + data + `}`, "data"},
		"customerId twice":  {`{"event":"customer.locked_out","data":{"customerId":"` + customerA + `","customerId":"` + customerB + `"}}`, "data.customerId"},
		"CUSTOMERID":        {`{"event":"customer.locked_out","data":{"CUSTOMERID":"` + customerB + `"}}`, "data.CUSTOMERID"},
		"unknown repeated":  {`{"event":"customer.locked_out",` + data + `,"x":{"y":1,"y":2}}`, "x.y"},
	} {
		t.Run(name, func(t *testing.T) {
			er := wantError(t, e.webhook(tc.body, testSecret, "h-"+name), 400, flow.CodeInvalidRequest)
			if !strings.Contains(er.Error.Message, `"`+tc.field+`"`) {
				t.Errorf("message %q does not name %q", er.Error.Message, tc.field)
			}
		})
	}
	if len(e.st.inbox) != 0 || len(e.tc.signalCalls()) != 0 {
		t.Errorf("a refused webhook was recorded (%d) or acted on (%d)", len(e.st.inbox), len(e.tc.signalCalls()))
	}
	// Unknown fields, once each, are still fine.
	rec := e.webhook(`{"event":"customer.locked_out","idempotencyKey":"u1","extra":{"a":1},`+data+`}`, testSecret, "h")
	checkAck(t, rec.Code, rec.Body.String(), false)
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

// challengeHook is a webhook body for a challenge, keyed, with the status
// given ("" leaves it out).
func challengeHook(event, key, challengeID, status string) string {
	st := ""
	if status != "" {
		st = `,"status":"` + status + `"`
	}
	return `{"event":"` + event + `","idempotencyKey":"` + key + `","data":{"customerId":"` + customerA +
		`","challengeId":"` + challengeID + `"` + st + `}}`
}

// The three webhooks Planbok sends when an initialize challenge is verified
// wake the flow once: the later two are recorded as coalesced.
func TestWebhook_ChallengeEndingSignalledOnce(t *testing.T) {
	e := newEnv(t)
	f := testFlow(customerA, flow.KindInitialize, flow.StatusAwaitingUser)
	e.st.addFlow(f, "", "")
	for _, h := range []struct{ event, key string }{
		{planbok.EventCustomerPINSetup, "evt-pin"},
		{planbok.EventCustomerRecoverySetup, "evt-recovery"},
		{planbok.EventChallengeCompleted, "evt-completed"},
	} {
		rec := e.webhook(challengeHook(h.event, h.key, f.ChallengeID, planbok.ChallengeVerified), testSecret, h.key)
		checkAck(t, rec.Code, rec.Body.String(), false)
	}
	sigs := e.tc.signalCalls()
	if len(sigs) != 1 || sigs[0].workflowID != f.ID || sigs[0].arg.(flow.ChallengeEvent).WebhookID != "evt-pin" {
		t.Fatalf("signals: got %+v, want one to %s for evt-pin", sigs, f.ID)
	}
	for key, want := range map[string]string{"evt-pin": OutcomeSignalled, "evt-recovery": OutcomeCoalesced, "evt-completed": OutcomeCoalesced} {
		if got := e.st.outcome(key); got != want {
			t.Errorf("outcome of %s: got %q, want %q", key, got, want)
		}
		if got := e.st.inbox[key].ChallengeStatus; got != planbok.ChallengeVerified {
			t.Errorf("challenge status of %s: got %q, want %q", key, got, planbok.ChallengeVerified)
		}
	}
}

// A webhook is coalesced only behind a signalled one for the same
// challenge and terminal status: anything else signals as before.
func TestWebhook_CoalescingSignalsAgain(t *testing.T) {
	type step struct {
		status  string
		setup   func(*env) // before this webhook
		outcome string
	}
	failSignal := func(e *env) { e.tc.signalErr = serviceerror.NewUnavailable("down") }
	healSignal := func(e *env) { e.tc.signalErr = nil }
	for _, tc := range []struct {
		name    string
		steps   []step
		signals int
	}{
		{"pending then verified", []step{
			{planbok.ChallengePending, nil, OutcomeSignalled},
			{planbok.ChallengeVerified, nil, OutcomeSignalled},
		}, 2},
		{"no status then verified", []step{
			{"", nil, OutcomeSignalled},
			{planbok.ChallengeVerified, nil, OutcomeSignalled},
		}, 2},
		{"no status twice", []step{
			{"", nil, OutcomeSignalled},
			{"", nil, OutcomeSignalled},
		}, 2},
		{"pending twice", []step{
			{planbok.ChallengePending, nil, OutcomeSignalled},
			{planbok.ChallengePending, nil, OutcomeSignalled},
		}, 2},
		{"signal failed then verified", []step{
			{planbok.ChallengeVerified, failSignal, OutcomeSignalFailed},
			{planbok.ChallengeVerified, healSignal, OutcomeSignalled},
			{planbok.ChallengeVerified, nil, OutcomeCoalesced},
		}, 2},
		{"failed after verified", []step{
			{planbok.ChallengeVerified, nil, OutcomeSignalled},
			{planbok.ChallengeFailed, nil, OutcomeSignalled},
		}, 2},
		{"failed twice", []step{
			{planbok.ChallengeFailed, nil, OutcomeSignalled},
			{planbok.ChallengeFailed, nil, OutcomeCoalesced},
		}, 1},
		{"lookup fails", []step{
			{planbok.ChallengeVerified, func(e *env) { e.st.signalledErr = errors.New("db down") }, OutcomeSignalled},
			{planbok.ChallengeVerified, nil, OutcomeSignalled},
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			f := testFlow(customerA, flow.KindInitialize, flow.StatusAwaitingUser)
			e.st.addFlow(f, "", "")
			for i, st := range tc.steps {
				if st.setup != nil {
					st.setup(e)
				}
				key := "evt-" + strconv.Itoa(i)
				rec := e.webhook(challengeHook(planbok.EventChallengeCompleted, key, f.ChallengeID, st.status), testSecret, key)
				checkAck(t, rec.Code, rec.Body.String(), false)
				if got := e.st.outcome(key); got != st.outcome {
					t.Errorf("webhook %d (status %q): got outcome %q, want %q", i, st.status, got, st.outcome)
				}
			}
			if got := len(e.tc.signalCalls()); got != tc.signals {
				t.Errorf("signals: got %d, want %d", got, tc.signals)
			}
		})
	}
}

// A signalled ending of one challenge does not stand for another's.
func TestWebhook_CoalescingPerChallenge(t *testing.T) {
	e := newEnv(t)
	f1 := testFlow(customerA, flow.KindInitialize, flow.StatusAwaitingUser)
	f2 := testFlow(customerB, flow.KindInitialize, flow.StatusAwaitingUser)
	e.st.addFlow(f1, "", "")
	e.st.addFlow(f2, "", "")
	for i, f := range []*flow.Flow{f1, f2} {
		key := "evt-" + strconv.Itoa(i)
		rec := e.webhook(challengeHook(planbok.EventChallengeCompleted, key, f.ChallengeID, planbok.ChallengeVerified), testSecret, key)
		checkAck(t, rec.Code, rec.Body.String(), false)
		if got := e.st.outcome(key); got != OutcomeSignalled {
			t.Errorf("outcome for %s: got %q, want %q", f.ID, got, OutcomeSignalled)
		}
	}
	if sigs := e.tc.signalCalls(); len(sigs) != 2 || sigs[0].workflowID != f1.ID || sigs[1].workflowID != f2.ID {
		t.Errorf("signals: got %+v, want one to each flow", sigs)
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

// customer.created for a customer the store holds changes nothing: no
// customer workflow is woken. One it never comes to hold (created outside
// this API) is acted on once the grace has passed.
func TestWebhook_CustomerCreatedForAKnownCustomerIsIgnored(t *testing.T) {
	const grace = 300 * time.Millisecond
	e := newEnv(t, func(c *Config) { c.CustomerCreatedGrace = grace })
	e.st.customers[customerA] = &store.Customer{ID: customerA, Name: "Ada"}
	rec := e.webhook(`{"event":"customer.created","idempotencyKey":"evt-known","data":{"customerId":"`+customerA+`"}}`, testSecret, "h1")
	checkAck(t, rec.Code, rec.Body.String(), false)
	began := time.Now()
	rec = e.webhook(`{"event":"customer.created","idempotencyKey":"evt-new","data":{"customerId":"`+customerB+`"}}`, testSecret, "h2")
	checkAck(t, rec.Code, rec.Body.String(), false)
	if waited := time.Since(began); waited < grace {
		t.Errorf("an unknown customer's event was acted on after %s, before the %s grace", waited, grace)
	}
	sigs := e.tc.signalCalls()
	if len(sigs) != 1 || sigs[0].workflowID != flow.CustomerWorkflowID(customerB) {
		t.Fatalf("signals: got %+v, want one, to %s", sigs, flow.CustomerWorkflowID(customerB))
	}
	if got := e.st.outcome("evt-known"); got != OutcomeIgnored {
		t.Errorf("known customer: outcome %q, want %q", got, OutcomeIgnored)
	}
	if got := e.st.outcome("evt-new"); got != OutcomeSignalled {
		t.Errorf("unknown customer: outcome %q, want %q", got, OutcomeSignalled)
	}
}

// Planbok's customer.created for a customer created through this API
// commonly arrives while POST /v1/customers is still storing it. The event
// waits for the row instead of starting a customer workflow to learn
// nothing.
func TestWebhook_CustomerCreatedWaitsForTheCreateInFlight(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CustomerCreatedGrace = 10 * time.Second })
	stored := make(chan time.Time, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		if err := e.st.UpsertCustomer(context.Background(), &store.Customer{ID: customerB, Name: "Bo", RefID: "user-2"}); err != nil {
			t.Errorf("upsert: %v", err)
		}
		stored <- time.Now()
	}()
	rec := e.webhook(`{"event":"customer.created","idempotencyKey":"evt-racing","data":{"customerId":"`+customerB+`"}}`, testSecret, "h1")
	answered := time.Now()
	checkAck(t, rec.Code, rec.Body.String(), false)
	if got := e.st.outcome("evt-racing"); got != OutcomeIgnored {
		t.Errorf("outcome %q, want %q", got, OutcomeIgnored)
	}
	if sigs := e.tc.signalCalls(); len(sigs) != 0 {
		t.Errorf("signals: got %+v, want none", sigs)
	}
	// Answered soon after the row appeared, not at the end of the grace.
	if lag := answered.Sub(<-stored); lag > 2*time.Second {
		t.Errorf("answered %s after the customer was stored", lag)
	}
}
