package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/store"
)

const testHold = 24 * time.Hour

type holdCustomer struct {
	Security struct {
		ExportAvailableAt *time.Time `json:"exportAvailableAt"`
	} `json:"security"`
}

// The customer object shows exportAvailableAt while the hold runs, null
// when it is off or has passed; the time is RFC 3339 UTC.
func TestGetCustomer_ExportAvailableAt(t *testing.T) {
	reset := testNow.Add(-time.Hour)
	for _, tc := range []struct {
		name string
		hold time.Duration
		now  time.Time
		want string // "" = null
	}{
		{"hold off", 0, testNow, ""},
		{"during the hold", testHold, testNow, "2026-03-05T09:00:00Z"},
		{"one second before availableAt", testHold, reset.Add(testHold - time.Second), "2026-03-05T09:00:00Z"},
		{"one second after availableAt", testHold, reset.Add(testHold + time.Second), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.ExportHold = tc.hold })
			e.now = tc.now
			e.st.putCustomer(&store.Customer{ID: customerA, Security: flow.Security{HasPIN: true, HasRecovery: true, LastPINResetAt: &reset}})
			rec := e.api(http.MethodGet, "/v1/customers/"+customerA, "")
			if rec.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", rec.Code, rec.Body)
			}
			var raw struct {
				Security map[string]json.RawMessage `json:"security"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
				t.Fatal(err)
			}
			got, ok := raw.Security["exportAvailableAt"]
			if !ok {
				t.Fatalf("security has no exportAvailableAt: %s", rec.Body)
			}
			want := "null"
			if tc.want != "" {
				want = `"` + tc.want + `"`
			}
			if string(got) != want {
				t.Fatalf("exportAvailableAt: got %s, want %s", got, want)
			}
		})
	}
}

// The workflow's export_on_hold refusal reaches the client as 409 with
// error.availableAt.
func TestStart_ExportOnHold(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ExportHold = testHold })
	availableAt := testNow.Add(23 * time.Hour)
	e.tc.start = func(req flow.StartRequest) (flow.StartResult, error) {
		return flow.StartResult{Refusal: flow.CheckExportHold(req.Kind, ptrTime(testNow.Add(-time.Hour)), testHold, testNow)}, nil
	}
	rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/export-private-keys", `{"redirectUrl":"https://app.example.com/back"}`)
	wantError(t, rec, http.StatusConflict, flow.CodeExportOnHold)
	var body struct {
		Error struct {
			AvailableAt string `json:"availableAt"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Error.AvailableAt != availableAt.Format(time.RFC3339) {
		t.Fatalf("error.availableAt: got %q, want %q", body.Error.AvailableAt, availableAt.Format(time.RFC3339))
	}
	// Other refusals carry no availableAt.
	e.tc.start = func(flow.StartRequest) (flow.StartResult, error) {
		return flow.StartResult{Refusal: flow.Errorf(flow.CodeCustomerLockedOut, "Locked.")}, nil
	}
	rec = e.api(http.MethodPost, "/v1/customers/"+customerA+"/export-private-keys", `{"redirectUrl":"https://app.example.com/back"}`)
	var other map[string]map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &other); err != nil {
		t.Fatal(err)
	}
	if _, ok := other["error"]["availableAt"]; ok {
		t.Fatalf("customer_locked_out carries availableAt: %s", rec.Body)
	}
}

// The demo app exists only in dev: the API alone has no /demo.
func TestDemo_NotServedByAPI(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/demo", "/demo/", "/demo/api/customers"} {
		rec := e.do(http.MethodGet, path, "")
		wantError(t, rec, http.StatusNotFound, flow.CodeNotFound)
	}
}

// The AppEvent schema lists every event type, and a real event body with
// an export hold matches it.
func TestOpenAPI_AppEventsDocumented(t *testing.T) {
	doc := loadSpec(t)
	enum := doc.Components.Schemas["AppEventType"].Value.Enum
	for _, typ := range flow.EventTypes {
		if !slices.Contains(enum, any(string(typ))) {
			t.Errorf("event %q missing from AppEventType", typ)
		}
	}
	if len(enum) != len(flow.EventTypes) {
		t.Errorf("AppEventType lists %d types, flow.EventTypes %d", len(enum), len(flow.EventTypes))
	}
	at := testNow.Add(testHold)
	ev := flow.AppEvent{Type: flow.EventExportHoldStarted, Timestamp: testNow, Data: flow.AppEventData{
		CustomerID: customerA, FlowID: "flow_x", Kind: flow.KindResetPIN, Status: flow.StatusCompleted,
		Security: flow.Security{HasPIN: true, HasRecovery: true, CanTransact: true, LastPINResetAt: &testNow, ExportAvailableAt: &at},
	}}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if err := doc.Components.Schemas["AppEvent"].Value.VisitJSON(v); err != nil {
		t.Fatalf("event %s does not match AppEvent: %v", raw, err)
	}
}

func ptrTime(t time.Time) *time.Time { return &t }
