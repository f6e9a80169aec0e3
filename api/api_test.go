package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/time/rate"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

func TestStatusTable_CoversEveryCode(t *testing.T) {
	for _, c := range flow.Codes {
		if _, ok := statusByCode[c]; !ok {
			t.Errorf("code %q has no HTTP status", c)
		}
	}
	for c := range statusByCode {
		if !slices.Contains(flow.Codes, c) {
			t.Errorf("status table has %q, which flow.Codes lacks", c)
		}
	}
	fixed := map[flow.Code]int{ // API.md §2-§3
		flow.CodeInvalidRequest: 400, flow.CodeInvalidRedirectURL: 400, flow.CodeUnauthorized: 401,
		flow.CodeCustomerNotFound: 404, flow.CodeFlowNotFound: 404, flow.CodePINAlreadySet: 409,
		flow.CodePINRequired: 409, flow.CodeRecoveryRequired: 409, flow.CodeCustomerLockedOut: 409,
		flow.CodeFlowInProgress: 409, flow.CodeFlowFinished: 409, flow.CodeIdempotencyKeyReused: 409,
		flow.CodeRateLimited: 429, flow.CodePlanbokUnavailable: 502, flow.CodeTemporalUnavailable: 503,
		flow.CodeInvalidSignature: 401, flow.CodePayloadTooLarge: 413, flow.CodeNotFound: 404, flow.CodeInternal: 500,
	}
	for c, want := range fixed {
		if got := StatusForCode(c); got != want {
			t.Errorf("StatusForCode(%q): got %d, want %d", c, got, want)
		}
	}
	if got := StatusForCode("no_such_code"); got != 500 {
		t.Errorf("unknown code: got %d, want 500", got)
	}
}

func TestNew_RefusesBadConfig(t *testing.T) {
	st, pb, tc := newFakeStore(), newFakePlanbok(), newFakeTemporal()
	if _, err := New(Config{}, st, pb, tc); err == nil {
		t.Error("no API keys: got nil error")
	}
	if _, err := New(Config{APIKeys: []string{""}}, st, pb, tc); err == nil {
		t.Error("empty API key: got nil error")
	}
	if _, err := New(Config{APIKeys: []string{"k"}, AllowedRedirectHosts: []string{"https://x.com/"}}, st, pb, tc); err == nil {
		t.Error("URL as redirect host: got nil error")
	}
	if _, err := New(Config{APIKeys: []string{"k"}}, nil, pb, tc); err == nil {
		t.Error("nil store: got nil error")
	}
}

// ---- auth ----

func TestAuth_EveryV1RouteNeedsKey(t *testing.T) {
	e := newEnv(t)
	for _, r := range e.srv.engine.Routes() {
		if !strings.HasPrefix(r.Path, "/v1/") || r.Path == "/v1/webhooks/planbok" {
			continue
		}
		path := strings.NewReplacer(":customerId", customerA, ":flowId", "flow_x").Replace(r.Path)
		for _, hdr := range [][]string{
			nil,
			{"Authorization", "Bearer wrong-key"},
			{"Authorization", "Basic " + testKey1},
			{"Authorization", "Bearer"},
			{"Authorization", testKey1},
		} {
			rec := e.do(r.Method, path, `{"bad":`, hdr...)
			wantError(t, rec, http.StatusUnauthorized, flow.CodeUnauthorized)
			if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("%s %s: WWW-Authenticate got %q, want Bearer", r.Method, path, got)
			}
		}
	}
	if e.pb.getCount() != 0 || len(e.tc.updateCalls()) != 0 {
		t.Error("an unauthenticated request reached Planbok or Temporal")
	}
}

func TestAuth_TwoKeysValid(t *testing.T) {
	e := newEnv(t)
	actors := map[string]bool{}
	for _, key := range []string{testKey1, testKey2} {
		rec := e.do(http.MethodPost, "/v1/customers/"+customerA+"/update-pin",
			`{"redirectUrl":"https://app.example.com/back"}`, "Authorization", "Bearer "+key)
		if rec.Code != http.StatusCreated {
			t.Fatalf("key %s…: got %d, want 201: %s", key[:8], rec.Code, rec.Body.String())
		}
		calls := e.tc.updateCalls()
		a := calls[len(calls)-1].options.Args[0].(flow.StartRequest).Actor
		if !strings.HasPrefix(a, "key:") || len(a) != len("key:")+8 || strings.Contains(key, a[4:]) {
			t.Errorf("actor %q: want key:<8 hex of sha256>, never part of the key", a)
		}
		actors[a] = true
	}
	if len(actors) != 2 {
		t.Errorf("got %d distinct actors, want 2", len(actors))
	}
	// Scheme is case-insensitive.
	rec := e.do(http.MethodGet, "/v1/customers/"+customerA, "", "Authorization", "bearer "+testKey2)
	if rec.Code != http.StatusOK {
		t.Errorf("lower-case bearer: got %d, want 200", rec.Code)
	}
}

// ---- customers ----

func TestCreateCustomer_Created(t *testing.T) {
	e := newEnv(t)
	rec := e.api(http.MethodPost, "/v1/customers", `{"name":"Grace","refId":"user-42"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("got %d, want 201: %s", rec.Code, rec.Body.String())
	}
	c := decode[flow.Customer](t, rec)
	if c.ID == "" || c.Name != "Grace" || c.RefID != "user-42" || c.ActiveFlow != nil {
		t.Errorf("got %+v", c)
	}
	s := c.Security
	if s.HasPIN || s.HasRecovery || s.LockedOut || s.CanTransact || s.PINSetAt != nil || s.SyncedAt == nil || !s.SyncedAt.Equal(testNow) {
		t.Errorf("security: got %+v, want all false, syncedAt now", s)
	}
	if !strings.Contains(rec.Body.String(), `"activeFlow":null`) {
		t.Errorf("activeFlow must be null: %s", rec.Body.String())
	}
	row, err := e.st.FindCustomerByID(context.Background(), c.ID)
	if err != nil || row.RefID != "user-42" || !row.CreatedAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("stored row: got %+v, %v", row, err)
	}
	// A retried create sends the same Planbok idempotency key and gets the
	// same customer; the stored timestamps survive.
	pinSet := testNow.Add(-time.Hour)
	row.Security.PINSetAt = &pinSet
	e.st.putCustomer(row)
	rec2 := e.api(http.MethodPost, "/v1/customers", `{"name":"Grace","refId":"user-42"}`)
	c2 := decode[flow.Customer](t, rec2)
	if rec2.Code != http.StatusCreated || c2.ID != c.ID || c2.Security.PINSetAt == nil {
		t.Errorf("retried create: got %d %+v, want 201, same id, pinSetAt kept", rec2.Code, c2)
	}
	if len(e.pb.creates) != 2 || e.pb.creates[0].IdempotencyKey != e.pb.creates[1].IdempotencyKey || e.pb.creates[0].IdempotencyKey == "" {
		t.Errorf("idempotency keys: got %+v, want two equal non-empty keys", e.pb.creates)
	}
	if a := e.st.lastAudit(); a.Action != "customer.create" || a.Outcome != "created" || a.CustomerID != c.ID {
		t.Errorf("audit: got %+v", a)
	}
}

func TestCreateCustomer_InvalidBody(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("x", 201)
	for name, body := range map[string]string{
		"empty":         ``,
		"not json":      `name=x`,
		"array":         `[{"name":"a","refId":"b"}]`,
		"null":          `null`,
		"unknown field": `{"name":"a","refId":"b","email":"x@y"}`,
		"missing name":  `{"refId":"b"}`,
		"empty refId":   `{"name":"a","refId":""}`,
		"wrong type":    `{"name":1,"refId":"b"}`,
		"two objects":   `{"name":"a","refId":"b"}{}`,
		"truncated":     `{"name":"a"`,
		"long name":     `{"name":"` + long + `","refId":"b"}`,
		"control char":  `{"name":"a\u0001","refId":"b"}`,
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, e.api(http.MethodPost, "/v1/customers", body), http.StatusBadRequest, flow.CodeInvalidRequest)
		})
	}
	rec := e.api(http.MethodPost, "/v1/customers", `{"name":1,"refId":"b"}`)
	if msg := decode[errResp](t, rec).Error.Message; !strings.Contains(msg, `"name"`) {
		t.Errorf("message %q does not name the field", msg)
	}
	big := `{"name":"` + strings.Repeat("x", 70<<10) + `","refId":"b"}`
	wantError(t, e.api(http.MethodPost, "/v1/customers", big), http.StatusRequestEntityTooLarge, flow.CodePayloadTooLarge)
	if len(e.pb.creates) != 0 {
		t.Errorf("Planbok was called %d times for invalid bodies", len(e.pb.creates))
	}
}

func TestCreateCustomer_PlanbokErrors(t *testing.T) {
	e := newEnv(t)
	e.pb.err = &planbok.Error{Op: "create customer", StatusCode: 503, Message: "down"}
	rec := e.api(http.MethodPost, "/v1/customers", `{"name":"a","refId":"b"}`)
	wantError(t, rec, http.StatusBadGateway, flow.CodePlanbokUnavailable)
	if rec.Header().Get("Retry-After") == "" {
		t.Error("502 without Retry-After")
	}
	e.pb.err = &planbok.Error{Op: "create customer", StatusCode: 400, Message: "refId too long"}
	rec = e.api(http.MethodPost, "/v1/customers", `{"name":"a","refId":"b"}`)
	if m := wantError(t, rec, http.StatusBadRequest, flow.CodeInvalidRequest); !strings.Contains(m.Error.Message, "refId too long") {
		t.Errorf("message %q should carry Planbok's reason", m.Error.Message)
	}
	e.pb.err = &planbok.Error{Op: "create customer", StatusCode: 401, Message: "bad api key"}
	wantError(t, e.api(http.MethodPost, "/v1/customers", `{"name":"a","refId":"b"}`), http.StatusBadGateway, flow.CodePlanbokUnavailable)
}

func TestCreateCustomer_StoreFails(t *testing.T) {
	e := newEnv(t)
	e.st.err = errors.New("disk on fire at /var/secret/path")
	rec := e.api(http.MethodPost, "/v1/customers", `{"name":"a","refId":"b"}`)
	m := wantError(t, rec, http.StatusInternalServerError, flow.CodeInternal)
	if strings.Contains(m.Error.Message, "disk") {
		t.Errorf("internal detail leaked: %q", m.Error.Message)
	}
}

func TestGetCustomer_CombinesPlanbokAndStore(t *testing.T) {
	e := newEnv(t)
	pinSet := testNow.Add(-48 * time.Hour)
	e.st.putCustomer(&store.Customer{ID: customerA, Name: "Ada", RefID: "user-1",
		Security: flow.Security{HasPIN: false, PINSetAt: &pinSet}})
	active := testFlow(customerA, flow.KindUpdatePIN, flow.StatusStarting)
	e.st.addFlow(active, "", "")
	live := *active
	live.Status = flow.StatusAwaitingUser
	e.tc.queries[active.ID] = &live

	rec := e.api(http.MethodGet, "/v1/customers/"+customerA, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("got %d: %s", rec.Code, rec.Body.String())
	}
	c := decode[flow.Customer](t, rec)
	s := c.Security
	if !s.HasPIN || !s.HasRecovery || s.LockedOut || !s.CanTransact {
		t.Errorf("booleans must come from Planbok: got %+v", s)
	}
	if s.PINSetAt == nil || !s.PINSetAt.Equal(pinSet) || s.SyncedAt == nil || !s.SyncedAt.Equal(testNow) {
		t.Errorf("timestamps: got pinSetAt %v syncedAt %v", s.PINSetAt, s.SyncedAt)
	}
	if c.ActiveFlow == nil || c.ActiveFlow.ID != active.ID || c.ActiveFlow.Status != flow.StatusAwaitingUser {
		t.Errorf("activeFlow: got %+v, want the live view of %s", c.ActiveFlow, active.ID)
	}

	// Locked out at Planbok: lockedOut true, canTransact false.
	e.pb.customers[customerA].Status = planbok.CustomerLocked
	c = decode[flow.Customer](t, e.api(http.MethodGet, "/v1/customers/"+customerA, ""))
	if !c.Security.LockedOut || c.Security.CanTransact {
		t.Errorf("locked: got %+v", c.Security)
	}
}

func TestGetCustomer_CreatedElsewhere(t *testing.T) {
	e := newEnv(t)
	e.pb.customers[customerB] = &planbok.Customer{ID: customerB, Name: "Bo", RefID: "x", Status: "active", HasPIN: true}
	rec := e.api(http.MethodGet, "/v1/customers/"+customerB, "")
	c := decode[flow.Customer](t, rec)
	if rec.Code != 200 || c.Security.PINSetAt != nil || !c.Security.HasPIN || c.Security.CanTransact || c.ActiveFlow != nil {
		t.Errorf("got %d %+v", rec.Code, c)
	}
	for _, f := range []string{`"pinSetAt":null`, `"lastExportAt":null`, `"activeFlow":null`} {
		if !strings.Contains(rec.Body.String(), f) {
			t.Errorf("body lacks %s: %s", f, rec.Body.String())
		}
	}
}

func TestGetCustomer_Errors(t *testing.T) {
	e := newEnv(t)
	wantError(t, e.api(http.MethodGet, "/v1/customers/"+customerB, ""), http.StatusNotFound, flow.CodeCustomerNotFound)
	before := e.pb.getCount()
	for _, id := range []string{"has%20space", strings.Repeat("a", 65), "semi;colon", "dot.dot"} {
		wantError(t, e.api(http.MethodGet, "/v1/customers/"+id, ""), http.StatusNotFound, flow.CodeCustomerNotFound)
	}
	if e.pb.getCount() != before {
		t.Error("malformed ids reached Planbok")
	}
	e.pb.err = &planbok.Error{Op: "get customer", StatusCode: 500, Message: "oops"}
	rec := e.api(http.MethodGet, "/v1/customers/"+customerA, "")
	wantError(t, rec, http.StatusBadGateway, flow.CodePlanbokUnavailable)
	if rec.Header().Get("Retry-After") == "" {
		t.Error("502 without Retry-After")
	}
	e.pb.err = context.DeadlineExceeded // network-level failure
	wantError(t, e.api(http.MethodGet, "/v1/customers/"+customerA, ""), http.StatusBadGateway, flow.CodePlanbokUnavailable)
	// One classifier with the activities: an id Planbok cannot parse is
	// not an outage, and a 403 on a read is our key's permissions (a
	// locked customer can still be read), never a lockout.
	e.pb.err = &planbok.Error{Op: "get customer", StatusCode: 400, Message: "Invalid customer id"}
	rec = e.api(http.MethodGet, "/v1/customers/"+customerA, "")
	wantError(t, rec, http.StatusNotFound, flow.CodeCustomerNotFound)
	if ra := rec.Header().Get("Retry-After"); ra != "" {
		t.Errorf("404 with Retry-After %q", ra)
	}
	e.pb.err = &planbok.Error{Op: "get customer", StatusCode: 403, Message: "Forbidden"}
	wantError(t, e.api(http.MethodGet, "/v1/customers/"+customerA, ""), http.StatusBadGateway, flow.CodePlanbokUnavailable)
}

// ---- starts ----

const okBody = `{"redirectUrl":"https://app.example.com/back?x=1"}`

func startBodyFor(k flow.Kind) string {
	if k == flow.KindCreateWallets {
		return `{"redirectUrl":"https://app.example.com/back","blockchains":["ETH-SEPOLIA","SOL-DEVNET"]}`
	}
	return okBody
}

func TestStart_EveryKindCreated(t *testing.T) {
	for _, k := range flow.Kinds {
		t.Run(string(k), func(t *testing.T) {
			e := newEnv(t)
			rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/"+k.Route(), startBodyFor(k))
			if rec.Code != http.StatusCreated {
				t.Fatalf("got %d, want 201: %s", rec.Code, rec.Body.String())
			}
			f := decode[flow.Flow](t, rec)
			if f.Kind != k || f.Status != flow.StatusAwaitingUser || f.GatewayURL == "" || !flow.ValidFlowID(f.ID) {
				t.Errorf("flow: got %+v", f)
			}
			calls := e.tc.updateCalls()
			if len(calls) != 1 {
				t.Fatalf("got %d update-with-start calls, want 1", len(calls))
			}
			c := calls[0]
			if c.start.ID != flow.CustomerWorkflowID(customerA) || c.start.TaskQueue != "tq" ||
				c.start.WorkflowIDConflictPolicy.String() != "UseExisting" || c.start.WorkflowIDReusePolicy.String() != "AllowDuplicate" {
				t.Errorf("start options: got %+v", c.start)
			}
			if c.wfType != flow.WorkflowCustomer || len(c.wfArgs) != 1 || c.wfArgs[0].(flow.CustomerInput).CustomerID != customerA {
				t.Errorf("workflow: got %v %v", c.wfType, c.wfArgs)
			}
			// Accepted first (Temporal's answer within StartAdmitTimeout),
			// then the result.
			if c.options.UpdateName != flow.UpdateStartFlow || c.options.WaitForStage != client.WorkflowUpdateStageAccepted {
				t.Errorf("update options: got %+v", c.options)
			}
			req := c.options.Args[0].(flow.StartRequest)
			if req.Kind != k || req.CustomerID != customerA || req.RequestHash == "" || req.IdempotencyKey != "" {
				t.Errorf("start request: got %+v", req)
			}
			// The default quota (20 an hour, burst 20) and the Planbok
			// budget of a request with the default timeout.
			if want := (flow.Quota{Every: 3 * time.Minute, Burst: 20}); req.Quota != want {
				t.Errorf("quota: got %+v, want %+v", req.Quota, want)
			}
			if req.PlanbokBudget <= flow.StartPlanbokBudget-time.Second || req.PlanbokBudget > flow.StartPlanbokBudget {
				t.Errorf("Planbok budget: got %s, want about %s", req.PlanbokBudget, flow.StartPlanbokBudget)
			}
			if e.pb.getCount() != 0 {
				t.Errorf("the API read the customer at Planbok %d times; the workflow does that", e.pb.getCount())
			}
			if k == flow.KindCreateWallets && !slices.Equal(req.Blockchains, []string{"ETH-SEPOLIA", "SOL-DEVNET"}) {
				t.Errorf("blockchains: got %v", req.Blockchains)
			}
			if a := e.st.lastAudit(); a.Action != "flow.start" || a.Outcome != "created" || a.FlowID != f.ID || a.Actor == "" {
				t.Errorf("audit: got %+v", a)
			}
		})
	}
}

func TestStart_SameKindActiveIs200(t *testing.T) {
	e := newEnv(t)
	existing := testFlow(customerA, flow.KindUpdatePIN, flow.StatusAwaitingUser)
	e.tc.start = func(flow.StartRequest) (flow.StartResult, error) {
		return flow.StartResult{Flow: existing, Created: false}, nil
	}
	rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody)
	if rec.Code != http.StatusOK || decode[flow.Flow](t, rec).ID != existing.ID {
		t.Fatalf("got %d %s, want 200 with %s", rec.Code, rec.Body.String(), existing.ID)
	}
}

// A customer workflow that completes (idle) in the task that admitted the
// update fails it with "already completed"; the start is sent again and
// lands on a new run.
func TestStart_RetriedWhenCustomerRunEndedUnderIt(t *testing.T) {
	e := newEnv(t)
	calls := 0
	created := testFlow(customerA, flow.KindUpdatePIN, flow.StatusAwaitingUser)
	e.tc.start = func(flow.StartRequest) (flow.StartResult, error) {
		calls++
		if calls == 1 {
			return flow.StartResult{}, serviceerror.NewNotFound("workflow execution already completed")
		}
		return flow.StartResult{Flow: created, Created: true}, nil
	}
	rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody)
	if rec.Code != http.StatusCreated || decode[flow.Flow](t, rec).ID != created.ID {
		t.Fatalf("got %d %s, want 201 with %s", rec.Code, rec.Body.String(), created.ID)
	}
	if len(e.tc.updates) != 2 {
		t.Fatalf("update-with-start calls: got %d, want 2", len(e.tc.updates))
	}
}

func TestStart_Refusals(t *testing.T) {
	for _, tc := range []struct {
		code   flow.Code
		status int
	}{
		{flow.CodePINAlreadySet, 409}, {flow.CodePINRequired, 409}, {flow.CodeRecoveryRequired, 409},
		{flow.CodeCustomerLockedOut, 409}, {flow.CodeFlowInProgress, 409}, {flow.CodeIdempotencyKeyReused, 409},
		{flow.CodeCustomerNotFound, 404}, {flow.CodePlanbokUnavailable, 502}, {flow.CodeInvalidRequest, 400},
	} {
		t.Run(string(tc.code), func(t *testing.T) {
			e := newEnv(t)
			active := "flow_activeactiveactiveactive"
			e.tc.start = func(flow.StartRequest) (flow.StartResult, error) {
				r := flow.StartResult{Refusal: flow.Errorf(tc.code, "Refused for a reason.")}
				if tc.code == flow.CodeFlowInProgress {
					r.ActiveFlowID = active
				}
				return r, nil
			}
			rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/initialize", okBody)
			got := wantError(t, rec, tc.status, tc.code)
			if tc.code == flow.CodeFlowInProgress && got.Error.ActiveFlowID != active {
				t.Errorf("activeFlowId: got %q, want %q", got.Error.ActiveFlowID, active)
			}
			if tc.code == flow.CodePlanbokUnavailable && rec.Header().Get("Retry-After") == "" {
				t.Error("502 without Retry-After")
			}
			if a := e.st.lastAudit(); a.Outcome != string(tc.code) {
				t.Errorf("audit outcome: got %q, want %q", a.Outcome, tc.code)
			}
		})
	}
}

func TestStart_FlowFailedBeforeChallenge(t *testing.T) {
	e := newEnv(t)
	failed := testFlow(customerA, flow.KindRecovery, flow.StatusFailed)
	failed.Error = &flow.Error{Code: flow.CodePlanbokUnavailable, Message: "Planbok kept failing."}
	e.tc.start = func(flow.StartRequest) (flow.StartResult, error) {
		return flow.StartResult{Flow: failed, Created: true, Refusal: failed.Error}, nil
	}
	rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/recovery", okBody)
	got := wantError(t, rec, http.StatusBadGateway, flow.CodePlanbokUnavailable)
	if got.Error.FlowID != failed.ID || rec.Header().Get("Retry-After") == "" {
		t.Errorf("got flowId %q Retry-After %q, want %s and a value", got.Error.FlowID, rec.Header().Get("Retry-After"), failed.ID)
	}
}

func TestStart_InvalidBody(t *testing.T) {
	cases := []struct {
		name, route, body string
		code              flow.Code
		status            int
	}{
		{"empty body", "update-pin", ``, flow.CodeInvalidRequest, 400},
		{"not json", "update-pin", `redirectUrl=x`, flow.CodeInvalidRequest, 400},
		{"array", "update-pin", `["https://app.example.com"]`, flow.CodeInvalidRequest, 400},
		{"string", "update-pin", `"x"`, flow.CodeInvalidRequest, 400},
		{"two objects", "update-pin", okBody + okBody, flow.CodeInvalidRequest, 400},
		{"trailing garbage", "update-pin", okBody + `x`, flow.CodeInvalidRequest, 400},
		{"missing redirectUrl", "update-pin", `{}`, flow.CodeInvalidRequest, 400},
		{"null redirectUrl", "update-pin", `{"redirectUrl":null}`, flow.CodeInvalidRequest, 400},
		{"empty redirectUrl", "update-pin", `{"redirectUrl":""}`, flow.CodeInvalidRequest, 400},
		{"redirectUrl number", "update-pin", `{"redirectUrl":5}`, flow.CodeInvalidRequest, 400},
		{"unknown field", "update-pin", `{"redirectUrl":"https://app.example.com","pin":"123456"}`, flow.CodeInvalidRequest, 400},
		{"blockchains off wallets", "initialize", `{"redirectUrl":"https://app.example.com","blockchains":["ETH"]}`, flow.CodeInvalidRequest, 400},
		{"idempotencyKey empty", "reset-pin", `{"redirectUrl":"https://app.example.com","idempotencyKey":""}`, flow.CodeInvalidRequest, 400},
		{"idempotencyKey long", "reset-pin", `{"redirectUrl":"https://app.example.com","idempotencyKey":"` + strings.Repeat("k", 256) + `"}`, flow.CodeInvalidRequest, 400},
		{"idempotencyKey control", "reset-pin", `{"redirectUrl":"https://app.example.com","idempotencyKey":"a\nb"}`, flow.CodeInvalidRequest, 400},
		{"idempotencyKey number", "reset-pin", `{"redirectUrl":"https://app.example.com","idempotencyKey":7}`, flow.CodeInvalidRequest, 400},
		{"wallets no blockchains", "wallets", `{"redirectUrl":"https://app.example.com"}`, flow.CodeInvalidRequest, 400},
		{"wallets empty blockchains", "wallets", `{"redirectUrl":"https://app.example.com","blockchains":[]}`, flow.CodeInvalidRequest, 400},
		{"wallets unknown chain", "wallets", `{"redirectUrl":"https://app.example.com","blockchains":["DOGE"]}`, flow.CodeInvalidRequest, 400},
		{"wallets duplicate chain", "wallets", `{"redirectUrl":"https://app.example.com","blockchains":["ETH","ETH"]}`, flow.CodeInvalidRequest, 400},
		{"wallets chain not string", "wallets", `{"redirectUrl":"https://app.example.com","blockchains":[1]}`, flow.CodeInvalidRequest, 400},
		{"relative url", "update-pin", `{"redirectUrl":"/back"}`, flow.CodeInvalidRedirectURL, 400},
		{"no scheme", "update-pin", `{"redirectUrl":"app.example.com/back"}`, flow.CodeInvalidRedirectURL, 400},
		{"http", "update-pin", `{"redirectUrl":"http://app.example.com/back"}`, flow.CodeInvalidRedirectURL, 400},
		{"javascript", "update-pin", `{"redirectUrl":"javascript:alert(1)"}`, flow.CodeInvalidRedirectURL, 400},
		{"host not allowed", "update-pin", `{"redirectUrl":"https://evil.com/back"}`, flow.CodeInvalidRedirectURL, 400},
		{"suffix trick", "update-pin", `{"redirectUrl":"https://app.example.com.evil.com/"}`, flow.CodeInvalidRedirectURL, 400},
		{"wildcard base", "update-pin", `{"redirectUrl":"https://example.org/"}`, flow.CodeInvalidRedirectURL, 400},
		{"userinfo", "update-pin", `{"redirectUrl":"https://evil.com@app.example.com/"}`, flow.CodeInvalidRedirectURL, 400},
		{"fragment", "update-pin", `{"redirectUrl":"https://app.example.com/#x"}`, flow.CodeInvalidRedirectURL, 400},
		{"localhost not in prod", "update-pin", `{"redirectUrl":"http://localhost:3000/back"}`, flow.CodeInvalidRedirectURL, 400},
		{"too long", "update-pin", `{"redirectUrl":"https://app.example.com/` + strings.Repeat("a", 2100) + `"}`, flow.CodeInvalidRedirectURL, 400},
		{"too large", "update-pin", `{"redirectUrl":"https://app.example.com/` + strings.Repeat("a", 65<<10) + `"}`, flow.CodePayloadTooLarge, 413},
	}
	e := newEnv(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, e.api(http.MethodPost, "/v1/customers/"+customerA+"/"+tc.route, tc.body), tc.status, tc.code)
		})
	}
	if e.pb.getCount() != 0 || len(e.tc.updateCalls()) != 0 {
		t.Error("an invalid body reached Planbok or Temporal")
	}
	rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", `{"redirectUrl":"https://app.example.com","pin":"1"}`)
	if m := decode[errResp](t, rec).Error.Message; !strings.Contains(m, `"pin"`) {
		t.Errorf("message %q does not name the unknown field", m)
	}
}

func TestStart_AllowedRedirects(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowLocalhostHTTP = true })
	for _, u := range []string{
		"https://app.example.com/back", "https://APP.example.com:8443/back?a=b",
		"https://shop.example.org/x", "https://a.b.example.org/",
		"http://localhost:3000/back", "http://127.0.0.1/back", "https://localhost/back",
	} {
		if err := e.srv.redirect.check(u); err != nil {
			t.Errorf("%s: got %v, want allowed", u, err)
		}
	}
	if err := e.srv.redirect.check("http://localhost.evil.com/"); err == nil {
		t.Error("http://localhost.evil.com allowed")
	}
}

func TestStart_CheckOrder(t *testing.T) {
	t.Run("auth before body", func(t *testing.T) {
		e := newEnv(t)
		wantError(t, e.do(http.MethodPost, "/v1/customers/"+customerB+"/initialize", `{`), 401, flow.CodeUnauthorized)
	})
	t.Run("bad body and unknown customer is 400", func(t *testing.T) {
		e := newEnv(t)
		wantError(t, e.api(http.MethodPost, "/v1/customers/"+customerB+"/initialize", `{"nope":1}`), 400, flow.CodeInvalidRequest)
		wantError(t, e.api(http.MethodPost, "/v1/customers/"+customerB+"/initialize", `{"redirectUrl":"https://evil.com"}`), 400, flow.CodeInvalidRedirectURL)
		wantError(t, e.api(http.MethodPost, "/v1/customers/bad.id/initialize", `{}`), 400, flow.CodeInvalidRequest)
		if e.pb.getCount() != 0 {
			t.Error("Planbok called before the body was validated")
		}
	})
	t.Run("bad body while Planbok is down is 400", func(t *testing.T) {
		e := newEnv(t)
		e.pb.err = &planbok.Error{StatusCode: 503}
		wantError(t, e.api(http.MethodPost, "/v1/customers/"+customerA+"/initialize", `{}`), 400, flow.CodeInvalidRequest)
	})
	t.Run("unknown customer is the workflow's 404", func(t *testing.T) {
		e := newEnv(t)
		e.tc.start = func(flow.StartRequest) (flow.StartResult, error) {
			return flow.StartResult{Refusal: flow.Errorf(flow.CodeCustomerNotFound, "No customer has this id at Planbok.")}, nil
		}
		wantError(t, e.api(http.MethodPost, "/v1/customers/"+customerB+"/initialize",
			`{"redirectUrl":"https://app.example.com/back?x=1","idempotencyKey":"k1"}`), 404, flow.CodeCustomerNotFound)
		if e.pb.getCount() != 0 {
			t.Error("the API read the customer at Planbok")
		}
	})
	t.Run("malformed customer id is 404 without Planbok", func(t *testing.T) {
		e := newEnv(t)
		wantError(t, e.api(http.MethodPost, "/v1/customers/bad.id/initialize", okBody), 404, flow.CodeCustomerNotFound)
		if e.pb.getCount() != 0 {
			t.Error("Planbok called for a malformed id")
		}
	})
	t.Run("Planbok down does not stop a start at the API", func(t *testing.T) {
		// The workflow reads Planbok with retries; the API never does.
		e := newEnv(t)
		e.pb.err = &planbok.Error{StatusCode: 502, Message: "bad gateway"}
		if rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/initialize", okBody); rec.Code != 201 {
			t.Fatalf("got %d %s, want 201", rec.Code, rec.Body.String())
		}
	})
}

func TestStart_IdempotencyReplay(t *testing.T) {
	e := newEnv(t)
	body := `{"redirectUrl":"https://app.example.com/back","idempotencyKey":"order-77"}`
	rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", body)
	if rec.Code != 201 {
		t.Fatalf("first: got %d", rec.Code)
	}
	f := decode[flow.Flow](t, rec)
	req := e.tc.updateCalls()[0].options.Args[0].(flow.StartRequest)
	if req.IdempotencyKey != "order-77" {
		t.Fatalf("idempotency key not passed: %+v", req)
	}
	// The workflow recorded the flow; it has since completed.
	f.Status = flow.StatusCompleted
	e.st.addFlow(&f, "order-77", req.RequestHash)

	rec = e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", body)
	if rec.Code != 200 || decode[flow.Flow](t, rec).Status != flow.StatusCompleted {
		t.Fatalf("replay: got %d %s, want 200 with the completed flow", rec.Code, rec.Body.String())
	}
	if len(e.tc.updateCalls()) != 1 {
		t.Error("a replay reached Temporal")
	}
	if a := e.st.lastAudit(); a.Outcome != "replayed" {
		t.Errorf("audit outcome: got %q, want replayed", a.Outcome)
	}
	for name, tc := range map[string]struct{ route, body string }{
		"other body":  {"update-pin", `{"redirectUrl":"https://app.example.com/other","idempotencyKey":"order-77"}`},
		"other route": {"reset-pin", body},
	} {
		t.Run(name, func(t *testing.T) {
			wantError(t, e.api(http.MethodPost, "/v1/customers/"+customerA+"/"+tc.route, tc.body), 409, flow.CodeIdempotencyKeyReused)
		})
	}
	// Keys are per customer: another customer's same key is its own.
	if rec := e.api(http.MethodPost, "/v1/customers/"+customerB+"/update-pin", body); rec.Code != 201 {
		t.Fatalf("same key, other customer: got %d %s, want 201", rec.Code, rec.Body.String())
	}
	if len(e.tc.updateCalls()) != 2 {
		t.Error("the other customer's start did not reach Temporal")
	}
}

// A stored flow that failed before its challenge existed no longer holds
// its key (its row may not say so yet); one still starting is answered by
// the workflow once its challenge exists.
func TestStart_IdempotencyKeyOfUnfinishedStart(t *testing.T) {
	for _, live := range []flow.Status{flow.StatusFailed, flow.StatusStarting} {
		t.Run(string(live), func(t *testing.T) {
			e := newEnv(t)
			body := `{"redirectUrl":"https://app.example.com/back","idempotencyKey":"order-9"}`
			in := startInput{Kind: flow.KindUpdatePIN, CustomerID: customerA, RedirectURL: "https://app.example.com/back"}
			row := testFlow(customerA, flow.KindUpdatePIN, flow.StatusStarting)
			row.ChallengeID, row.GatewayURL, row.ExpiresAt = "", "", nil
			e.st.addFlow(row, "order-9", requestHash(in))
			q := *row
			q.Status = live
			e.tc.queries[row.ID] = &q
			rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", body)
			if rec.Code != 201 || len(e.tc.updateCalls()) != 1 {
				t.Fatalf("got %d %s with %d updates, want 201 from the workflow", rec.Code, rec.Body.String(), len(e.tc.updateCalls()))
			}
		})
	}
}

func TestRequestHash(t *testing.T) {
	a := startInput{Kind: flow.KindCreateWallets, CustomerID: "c", RedirectURL: "https://x", Blockchains: []string{"ETH", "SOL"}}
	b := a
	b.Blockchains = []string{"SOL", "ETH"}
	if requestHash(a) != requestHash(b) {
		t.Error("blockchain order changed the hash")
	}
	for _, mod := range []func(*startInput){
		func(s *startInput) { s.Kind = flow.KindInitialize },
		func(s *startInput) { s.CustomerID = "d" },
		func(s *startInput) { s.RedirectURL = "https://y" },
		func(s *startInput) { s.Blockchains = []string{"ETH"} },
	} {
		c := a
		mod(&c)
		if requestHash(c) == requestHash(a) {
			t.Errorf("%+v hashes like %+v", c, a)
		}
	}
	k := a
	k.IdempotencyKey = "other"
	if requestHash(k) != requestHash(a) {
		t.Error("the idempotency key itself changed the hash")
	}
}

// The customer workflow counts the quota; the API sends its configured
// quota and turns a rate_limited refusal into 429 with Retry-After.
func TestStart_RateLimited(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.StartQuota, c.StartBurst = 1.0/3600, 2 })
	e.tc.start = func(req flow.StartRequest) (flow.StartResult, error) {
		if want := (flow.Quota{Every: time.Hour, Burst: 2}); req.Quota != want {
			t.Errorf("quota: got %+v, want %+v", req.Quota, want)
		}
		return flow.StartResult{Refusal: flow.Errorf(flow.CodeRateLimited, "Too many."), RetryAfter: 90*time.Minute + time.Millisecond}, nil
	}
	rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody)
	wantError(t, rec, http.StatusTooManyRequests, flow.CodeRateLimited)
	if ra := rec.Header().Get("Retry-After"); ra != "5401" {
		t.Errorf("Retry-After: got %q, want 5401 (seconds, rounded up)", ra)
	}

	off := newEnv(t, func(c *Config) { c.StartQuota = rate.Inf })
	off.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody)
	if q := off.tc.updateCalls()[0].options.Args[0].(flow.StartRequest).Quota; !q.Off() {
		t.Errorf("rate.Inf: got quota %+v, want none", q)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, 1500 * time.Millisecond: 2, time.Hour: 3600} {
		if got := retryAfterSeconds(d); got != want {
			t.Errorf("retryAfterSeconds(%s): got %d, want %d", d, got, want)
		}
	}
}

func TestStart_TemporalUnavailable(t *testing.T) {
	for name, err := range map[string]error{
		"unavailable":       serviceerror.NewUnavailable("connection refused"),
		"deadline":          serviceerror.NewDeadlineExceeded("deadline"),
		"context deadline":  context.DeadlineExceeded,
		"resourceExhausted": serviceerror.NewResourceExhausted(0, "busy"),
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.tc.updateErr = err
			rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody)
			wantError(t, rec, http.StatusServiceUnavailable, flow.CodeTemporalUnavailable)
			if rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
	t.Run("request timeout", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.RequestTimeout = 30 * time.Millisecond })
		e.tc.blockCtx = true
		wantError(t, e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody), 503, flow.CodeTemporalUnavailable)
		if a := e.st.lastAudit(); a.Outcome != string(flow.CodeTemporalUnavailable) {
			t.Errorf("audit after timeout: got %+v", a)
		}
	})
	t.Run("other errors are 500 without details", func(t *testing.T) {
		e := newEnv(t)
		e.tc.updateErr = errors.New("weird failure with secret detail")
		m := wantError(t, e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody), 500, flow.CodeInternal)
		if strings.Contains(m.Error.Message, "secret") {
			t.Errorf("detail leaked: %q", m.Error.Message)
		}
	})
	t.Run("update rejected with a flow code", func(t *testing.T) {
		e := newEnv(t)
		e.tc.start = func(flow.StartRequest) (flow.StartResult, error) {
			return flow.StartResult{}, temporal.NewApplicationError("Bad kind.", string(flow.CodeInvalidRequest))
		}
		wantError(t, e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody), 400, flow.CodeInvalidRequest)
	})
}

// ---- flows ----

func TestGetFlow(t *testing.T) {
	e := newEnv(t)
	done := testFlow(customerA, flow.KindInitialize, flow.StatusCompleted)
	active := testFlow(customerA, flow.KindRecovery, flow.StatusStarting)
	e.st.addFlow(done, "", "")
	e.st.addFlow(active, "", "")

	rec := e.api(http.MethodGet, "/v1/flows/"+done.ID, "")
	if rec.Code != 200 || decode[flow.Flow](t, rec).Status != flow.StatusCompleted || e.tc.queryN != 0 {
		t.Fatalf("terminal: got %d %s (queries %d), want 200 from the store without a query", rec.Code, rec.Body.String(), e.tc.queryN)
	}
	// Active: the workflow's live view wins, the store is the fallback.
	rec = e.api(http.MethodGet, "/v1/flows/"+active.ID, "")
	if decode[flow.Flow](t, rec).Status != flow.StatusStarting {
		t.Errorf("query failing: got %s, want the store's row", rec.Body.String())
	}
	live := *active
	live.Status = flow.StatusAwaitingUser
	e.tc.queries[active.ID] = &live
	rec = e.api(http.MethodGet, "/v1/flows/"+active.ID, "")
	if decode[flow.Flow](t, rec).Status != flow.StatusAwaitingUser {
		t.Errorf("live: got %s, want awaiting_user", rec.Body.String())
	}
	// Known to the workflow only (row not written yet).
	fresh := testFlow(customerA, flow.KindResetPIN, flow.StatusAwaitingUser)
	e.tc.queries[fresh.ID] = fresh
	if rec := e.api(http.MethodGet, "/v1/flows/"+fresh.ID, ""); rec.Code != 200 {
		t.Errorf("workflow-only flow: got %d, want 200", rec.Code)
	}

	wantError(t, e.api(http.MethodGet, "/v1/flows/flow_aaaaaaaaaaaaaaaaaaaaaaaa", ""), 404, flow.CodeFlowNotFound)
	e.st.calls = nil
	for _, id := range []string{"nope", "flow_short", "customer-" + customerA, "flow_AAAAAAAAAAAAAAAAAAAAAAAA"} {
		wantError(t, e.api(http.MethodGet, "/v1/flows/"+id, ""), 404, flow.CodeFlowNotFound)
	}
	if e.st.called("FindFlowByID") {
		t.Error("malformed flow ids reached the store")
	}
	// No row yet and Temporal unreachable: not "no such flow", but 503.
	e.tc.queryErr = serviceerror.NewUnavailable("frontend down")
	rec = e.api(http.MethodGet, "/v1/flows/flow_bbbbbbbbbbbbbbbbbbbbbbbb", "")
	wantError(t, rec, 503, flow.CodeTemporalUnavailable)
	if rec.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	e.tc.queryErr = nil

	e.st.err = errors.New("db down")
	wantError(t, e.api(http.MethodGet, "/v1/flows/"+done.ID, ""), 500, flow.CodeInternal)
}

func TestListFlows(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i, st := range []flow.Status{flow.StatusCompleted, flow.StatusCancelled, flow.StatusAwaitingUser} {
		f := testFlow(customerA, flow.Kinds[i], st)
		e.st.addFlow(f, "", "")
		ids = append([]string{f.ID}, ids...) // newest first
	}
	e.st.addFlow(testFlow(customerB, flow.KindInitialize, flow.StatusCompleted), "", "")

	rec := e.api(http.MethodGet, "/v1/customers/"+customerA+"/flows", "")
	list := decode[flowList](t, rec)
	var got []string
	for _, f := range list.Flows {
		got = append(got, f.ID)
	}
	if rec.Code != 200 || !slices.Equal(got, ids) {
		t.Fatalf("got %d %v, want %v", rec.Code, got, ids)
	}
	if list := decode[flowList](t, e.api(http.MethodGet, "/v1/customers/"+customerA+"/flows?limit=2", "")); len(list.Flows) != 2 {
		t.Errorf("limit=2: got %d flows", len(list.Flows))
	}
	list = decode[flowList](t, e.api(http.MethodGet, "/v1/customers/"+customerA+"/flows?status=completed&status=cancelled", ""))
	if len(list.Flows) != 2 {
		t.Errorf("status filter: got %d flows, want 2", len(list.Flows))
	}
	rec = e.api(http.MethodGet, "/v1/customers/66ccffffffffffffffffffff/flows", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"flows":[]`) {
		t.Errorf("no flows: got %d %s, want 200 with an empty array", rec.Code, rec.Body.String())
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=abc", "limit=", "status=running"} {
		wantError(t, e.api(http.MethodGet, "/v1/customers/"+customerA+"/flows?"+q, ""), 400, flow.CodeInvalidRequest)
	}
	wantError(t, e.api(http.MethodGet, "/v1/customers/bad.id/flows", ""), 404, flow.CodeCustomerNotFound)
}

func TestCancelFlow(t *testing.T) {
	e := newEnv(t)
	active := testFlow(customerA, flow.KindUpdatePIN, flow.StatusAwaitingUser)
	e.st.addFlow(active, "", "")
	e.tc.cancel = func(id string) (*flow.Flow, error) {
		f := *active
		f.Status = flow.StatusCancelled
		f.Error = &flow.Error{Code: flow.CodeCancelled, Message: "Cancelled by the app."}
		return &f, nil
	}
	rec := e.api(http.MethodPost, "/v1/flows/"+active.ID+"/cancel", "")
	if rec.Code != 200 || decode[flow.Flow](t, rec).Status != flow.StatusCancelled {
		t.Fatalf("got %d %s, want 200 cancelled", rec.Code, rec.Body.String())
	}
	c := e.tc.cancels[0]
	if c.WorkflowID != active.ID || c.UpdateName != flow.UpdateCancel || c.WaitForStage != client.WorkflowUpdateStageCompleted {
		t.Errorf("cancel update: got %+v", c)
	}
	if a := e.st.lastAudit(); a.Action != "flow.cancel" || a.Outcome != "cancelled" || a.FlowID != active.ID {
		t.Errorf("audit: got %+v", a)
	}

	done := testFlow(customerA, flow.KindInitialize, flow.StatusExpired)
	e.st.addFlow(done, "", "")
	wantError(t, e.api(http.MethodPost, "/v1/flows/"+done.ID+"/cancel", ""), 409, flow.CodeFlowFinished)
	if len(e.tc.cancels) != 1 {
		t.Error("a finished flow was sent a cancel update")
	}
	wantError(t, e.api(http.MethodPost, "/v1/flows/flow_aaaaaaaaaaaaaaaaaaaaaaaa/cancel", ""), 404, flow.CodeFlowNotFound)
	wantError(t, e.api(http.MethodPost, "/v1/flows/garbage/cancel", ""), 404, flow.CodeFlowNotFound)

	for name, tc := range map[string]struct {
		answer func(string) (*flow.Flow, error)
		status int
		code   flow.Code
	}{
		"finished meanwhile (not found)": {func(string) (*flow.Flow, error) {
			return nil, serviceerror.NewNotFound("workflow execution already completed")
		}, 409, flow.CodeFlowFinished},
		"finished meanwhile (refused)": {func(string) (*flow.Flow, error) {
			return nil, temporal.NewApplicationError("The flow has ended.", string(flow.CodeFlowFinished))
		}, 409, flow.CodeFlowFinished},
		"completed meanwhile": {func(string) (*flow.Flow, error) {
			f := *active
			f.Status = flow.StatusCompleted
			return &f, nil
		}, 409, flow.CodeFlowFinished},
		"temporal down": {func(string) (*flow.Flow, error) {
			return nil, serviceerror.NewUnavailable("down")
		}, 503, flow.CodeTemporalUnavailable},
	} {
		t.Run(name, func(t *testing.T) {
			e.tc.cancel = tc.answer
			rec := e.api(http.MethodPost, "/v1/flows/"+active.ID+"/cancel", "")
			wantError(t, rec, tc.status, tc.code)
			if tc.status == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

// ---- service routes ----

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodGet, "/healthz", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"status":"ok"`) {
		t.Fatalf("got %d %s", rec.Code, rec.Body.String())
	}
}

func TestReadyz(t *testing.T) {
	var readyErr error
	e := newEnv(t, func(c *Config) { c.Ready = func(context.Context) error { return readyErr } })
	if rec := e.do(http.MethodGet, "/readyz", ""); rec.Code != 200 {
		t.Fatalf("all up: got %d %s", rec.Code, rec.Body.String())
	}
	for name, breakIt := range map[string]func(){
		"database": func() { e.st.pingErr = errors.New("sqlite: /data/app.db locked") },
		"temporal": func() { e.tc.healthErr = serviceerror.NewUnavailable("dial tcp 10.0.0.1:7233") },
		"service":  func() { readyErr = errors.New("worker not running") },
	} {
		t.Run(name, func(t *testing.T) {
			e.st.pingErr, e.tc.healthErr, readyErr = nil, nil, nil
			breakIt()
			rec := e.do(http.MethodGet, "/readyz", "")
			r := decode[readiness](t, rec)
			if rec.Code != 503 || r.Checks[name] != "unavailable" || r.Status != "unavailable" {
				t.Errorf("got %d %s, want 503 naming %s", rec.Code, rec.Body.String(), name)
			}
			for other, v := range r.Checks {
				if other != name && v != "ok" {
					t.Errorf("%s: got %q, want ok", other, v)
				}
			}
			if strings.Contains(rec.Body.String(), "10.0.0.1") || strings.Contains(rec.Body.String(), "/data") {
				t.Errorf("details leaked: %s", rec.Body.String())
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.api(http.MethodGet, "/v1/customers/"+customerA, "")
	e.do(http.MethodGet, "/nope", "")
	rec := e.do(http.MethodGet, "/metrics", "")
	body := rec.Body.String()
	for _, want := range []string{
		`custodyflows_http_requests_total{method="GET",route="/v1/customers/:customerId",status="200"} 1`,
		`custodyflows_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`custodyflows_http_request_duration_seconds_bucket`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, customerA) {
		t.Error("metrics carry a customer id (label cardinality)")
	}
	// A second server on the same registry reuses the collectors.
	if _, err := New(Config{APIKeys: []string{"k"}, Registry: e.srv.cfg.Registry}, e.st, e.pb, e.tc); err != nil {
		t.Errorf("second server on one registry: %v", err)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newEnv(t)
	wantError(t, e.do(http.MethodGet, "/v2/nothing", ""), 404, flow.CodeNotFound)
	wantError(t, e.api(http.MethodGet, "/v1/customers/"+customerA+"/nothing", ""), 404, flow.CodeNotFound)
	wantError(t, e.do(http.MethodGet, "/v1/customers/", ""), 404, flow.CodeNotFound)
	rec := e.api(http.MethodDelete, "/v1/customers/"+customerA, "")
	wantError(t, rec, 405, flow.CodeInvalidRequest)
	if rec.Header().Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	wantError(t, e.do(http.MethodGet, "/v1/webhooks/planbok", ""), 405, flow.CodeInvalidRequest)
}

func TestRecovery_PanicIs500WithoutDetails(t *testing.T) {
	e := newEnv(t)
	e.pb.panics = true
	rec := e.api(http.MethodGet, "/v1/customers/"+customerA, "")
	m := wantError(t, rec, 500, flow.CodeInternal)
	if strings.Contains(rec.Body.String(), "boom") || m.Error.Message != "An internal error occurred." {
		t.Errorf("panic detail leaked: %s", rec.Body.String())
	}
	if !strings.Contains(e.logs.String(), "panic in handler") {
		t.Error("panic not logged")
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t)
	rec := e.do(http.MethodGet, "/healthz", "", HeaderRequestID, "abc-123")
	if got := rec.Header().Get(HeaderRequestID); got != "abc-123" {
		t.Errorf("echo: got %q, want abc-123", got)
	}
	if !strings.Contains(e.logs.String(), `"request_id":"abc-123"`) {
		t.Error("request id not in the access log")
	}
	rec = e.do(http.MethodGet, "/healthz", "", HeaderRequestID, "bad id\twith junk")
	if got := rec.Header().Get(HeaderRequestID); len(got) != 24 || strings.Contains(got, " ") {
		t.Errorf("malformed incoming id: got %q, want a fresh one", got)
	}
	rec = e.do(http.MethodGet, "/nope", "")
	if rec.Header().Get(HeaderRequestID) == "" {
		t.Error("404 without X-Request-Id")
	}
}

func TestCodecMount(t *testing.T) {
	var seen string
	e := newEnv(t, func(c *Config) {
		c.Codec = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = r.Method + " " + r.URL.Path
			w.WriteHeader(http.StatusNoContent)
		})
	})
	rec := e.do(http.MethodPost, "/codec/decode", `{"payloads":[]}`)
	if rec.Code != http.StatusNoContent || seen != "POST /decode" {
		t.Errorf("got %d, codec saw %q; want 204 and POST /decode", rec.Code, seen)
	}
	if rec := newEnv(t).do(http.MethodPost, "/codec/decode", `{}`); rec.Code != 404 {
		t.Errorf("without a codec: got %d, want 404", rec.Code)
	}
}

func TestLogs_NoSecrets(t *testing.T) {
	e := newEnv(t)
	e.api(http.MethodGet, "/v1/customers/"+customerA, "")
	e.do(http.MethodGet, "/v1/customers/"+customerA, "", "Authorization", "Bearer "+testKey2)
	e.do(http.MethodGet, "/v1/customers/"+customerA, "", "Authorization", "Bearer "+testKey2+"x")
	e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody)
	e.webhook(`{"event":"customer.pin_setup","idempotencyKey":"w1","data":{"customerId":"`+customerA+`"}}`, testSecret, "id1")
	e.webhook(`{"event":"customer.pin_setup","idempotencyKey":"w2","data":{}}`, "wrong-secret", "id2")
	e.tc.updateErr = errors.New("boom")
	e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", okBody)
	e.pb.panics = true
	e.api(http.MethodGet, "/v1/customers/"+customerA, "")

	logs := e.logs.String()
	if !strings.Contains(logs, "http request") {
		t.Fatal("no access log captured")
	}
	for _, secret := range []string{testKey1, testKey2, testSecret, "Bearer", "Authorization"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
	for _, a := range e.st.audits {
		for _, secret := range []string{testKey1, testKey2} {
			if strings.Contains(a.Actor+a.Detail, secret) {
				t.Errorf("audit row contains an API key: %+v", a)
			}
		}
	}
}
