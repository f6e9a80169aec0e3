package demo

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/notify"
)

const (
	testKey    = "demo-test-api-key-0123456789"
	testSecret = "whsec_ZGV2LW5vdGlmeS1zZWNyZXQtZm9yLWxvY2FsLXVzZQ=="
	testCust   = "66aa0000000000000000000a"
	testFlowID = "flow_aaaaaaaaaaaaaaaaaaaaaaaa"
)

// fakeAPI is custodyflows' API as the demo sees it: it records each
// request and answers from a table.
type fakeAPI struct {
	t      *testing.T
	server *httptest.Server
	mu     sync.Mutex
	reqs   []apiRequest
}

type apiRequest struct {
	Method, Path, Auth string
	Body               map[string]any
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t}
	f.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Errorf("API got a body that is not JSON: %s", raw)
			}
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, apiRequest{r.Method, r.URL.RequestURI(), r.Header.Get("Authorization"), body})
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/customers":
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id":"`+testCust+`","name":"Ada","refId":"x","security":{},"activeFlow":null}`)
		case r.Method == http.MethodGet && r.URL.Path == "/v1/customers/"+testCust:
			io.WriteString(w, `{"id":"`+testCust+`","name":"Ada","refId":"x","security":{"hasPin":true},"activeFlow":null}`)
		case r.Method == http.MethodGet && r.URL.Path == "/v1/customers/"+testCust+"/flows":
			io.WriteString(w, `{"flows":[{"id":"`+testFlowID+`","kind":"reset_pin","status":"completed"}]}`)
		case r.Method == http.MethodPost && r.URL.Path == "/v1/customers/"+testCust+"/export-private-keys":
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"error":{"code":"export_on_hold","message":"On hold.","availableAt":"2026-03-05T09:00:00Z"}}`)
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/customers/"+testCust+"/"):
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id":"`+testFlowID+`","status":"awaiting_user","gatewayUrl":"http://127.0.0.1:8090/gateway/challenges/c1"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"code":"customer_not_found","message":"No customer has this id."}}`)
		}
	}))
	t.Cleanup(f.server.Close)
	return f
}

func (f *fakeAPI) requests() []apiRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiRequest(nil), f.reqs...)
}

func newTestApp(t *testing.T, mod ...func(*Options)) (*App, *fakeAPI) {
	api := newFakeAPI(t)
	o := Options{
		APIURL: api.server.URL, APIKey: testKey, PublicURL: "http://127.0.0.1:8080",
		TemporalUIURL: "http://127.0.0.1:8233", Namespace: "default", NotifySecret: testSecret,
	}
	for _, m := range mod {
		m(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a, api
}

// page sends a request as the demo page does (same origin, JSON).
func page(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "http://127.0.0.1:8080"+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Origin", "http://127.0.0.1:8080")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if strings.Contains(rec.Body.String(), testKey) {
		t.Fatalf("%s %s: the API key reached the browser: %s", method, path, rec.Body)
	}
	return rec
}

func TestApp_ServesPageAndAssetsWithoutExternalResources(t *testing.T) {
	a, _ := newTestApp(t)
	rec := page(t, a, http.MethodGet, "/demo", "")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /demo: got %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP: got %q, want default-src 'self'", csp)
	}
	external := regexp.MustCompile(`(?i)(src|href)=["'](https?:)?//`)
	for _, path := range []string{"/demo", "/demo/assets/app.js", "/demo/assets/app.css"} {
		rec := page(t, a, http.MethodGet, path, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: got %d", path, rec.Code)
		}
		if m := external.FindString(rec.Body.String()); m != "" {
			t.Errorf("%s loads an external resource: %s", path, m)
		}
		if strings.Contains(rec.Body.String(), "innerHTML") {
			t.Errorf("%s builds markup from strings (innerHTML)", path)
		}
	}
	if rec := page(t, a, http.MethodGet, "/demo/nothing", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /demo/nothing: got %d, want 404", rec.Code)
	}
}

func TestApp_CreateCustomerCallsAPIWithKey(t *testing.T) {
	a, api := newTestApp(t)
	rec := page(t, a, http.MethodPost, "/demo/api/customers", `{"name":"Ada"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("got %d %s, want 201", rec.Code, rec.Body)
	}
	reqs := api.requests()
	if len(reqs) != 1 || reqs[0].Path != "/v1/customers" || reqs[0].Auth != "Bearer "+testKey {
		t.Fatalf("API requests: got %+v, want one POST /v1/customers with the key", reqs)
	}
	if reqs[0].Body["name"] != "Ada" || !strings.HasPrefix(reqs[0].Body["refId"].(string), "demo-") {
		t.Errorf("create body: got %v", reqs[0].Body)
	}
	// A second click is a second customer: a fresh refId.
	page(t, a, http.MethodPost, "/demo/api/customers", `{"name":"Ada"}`)
	if r := api.requests(); r[1].Body["refId"] == r[0].Body["refId"] {
		t.Errorf("two creates sent the same refId %v", r[0].Body["refId"])
	}
}

func TestApp_StartFlowRedirectsBackToTheDemo(t *testing.T) {
	a, api := newTestApp(t)
	rec := page(t, a, http.MethodPost, "/demo/api/customers/"+testCust+"/flows/wallets", `{"blockchains":["ETH-SEPOLIA","SOL-DEVNET"]}`)
	if rec.Code != http.StatusCreated || !strings.Contains(rec.Body.String(), "gatewayUrl") {
		t.Fatalf("got %d %s, want 201 with the flow", rec.Code, rec.Body)
	}
	r := api.requests()[0]
	if r.Path != "/v1/customers/"+testCust+"/wallets" {
		t.Fatalf("API path: got %s", r.Path)
	}
	if got, want := r.Body["redirectUrl"], "http://127.0.0.1:8080/demo?customer="+testCust; got != want {
		t.Errorf("redirectUrl: got %v, want %s", got, want)
	}
	if bc, _ := json.Marshal(r.Body["blockchains"]); string(bc) != `["ETH-SEPOLIA","SOL-DEVNET"]` {
		t.Errorf("blockchains: got %s", bc)
	}

	// The API's refusal reaches the page as it was.
	rec = page(t, a, http.MethodPost, "/demo/api/customers/"+testCust+"/flows/export-private-keys", `{}`)
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), `"availableAt":"2026-03-05T09:00:00Z"`) {
		t.Fatalf("export on hold: got %d %s, want the API's 409 with availableAt", rec.Code, rec.Body)
	}
	// Unknown routes and odd ids never reach the API.
	n := len(api.requests())
	for _, path := range []string{"/demo/api/customers/" + testCust + "/flows/transfer", "/demo/api/customers/a..b/flows/initialize"} {
		if rec := page(t, a, http.MethodPost, path, `{}`); rec.Code != http.StatusNotFound {
			t.Errorf("POST %s: got %d, want 404", path, rec.Code)
		}
	}
	if len(api.requests()) != n {
		t.Error("a refused path reached the API")
	}
}

func TestApp_BackendRefusesOtherSites(t *testing.T) {
	a, api := newTestApp(t)
	for _, tc := range []struct {
		name  string
		host  string
		hdr   map[string]string
		ctype string
		want  int
	}{
		{"cross-site fetch", "127.0.0.1:8080", map[string]string{"Sec-Fetch-Site": "cross-site"}, "application/json", http.StatusForbidden},
		{"other origin", "127.0.0.1:8080", map[string]string{"Origin": "https://evil.example"}, "application/json", http.StatusForbidden},
		{"DNS rebinding", "evil.example:8080", nil, "application/json", http.StatusForbidden},
		{"form post", "127.0.0.1:8080", nil, "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"same origin on localhost", "localhost:8080", map[string]string{"Origin": "http://localhost:8080"}, "application/json", http.StatusCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "http://"+tc.host+"/demo/api/customers", strings.NewReader(`{"name":"x"}`))
			req.Header.Set("Content-Type", tc.ctype)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tc.want)
			}
		})
	}
	if n := len(api.requests()); n != 1 {
		t.Errorf("API requests: got %d, want only the same-origin one", n)
	}
}

func TestApp_StateCombinesCustomerFlowsAndEvents(t *testing.T) {
	a, _ := newTestApp(t)
	deliver(t, a, "msg_1", `{"type":"customer.pin_reset","timestamp":"2026-03-04T10:00:00Z","data":{"customerId":"`+testCust+`","flowId":"`+testFlowID+`","kind":"reset_pin","status":"completed","security":{"exportAvailableAt":"2026-03-05T10:00:00Z"}}}`, http.StatusNoContent)
	deliver(t, a, "msg_2", `{"type":"customer.pin_setup","timestamp":"2026-03-04T10:00:00Z","data":{"customerId":"someone-else","security":{}}}`, http.StatusNoContent)
	rec := page(t, a, http.MethodGet, "/demo/api/customers/"+testCust, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	var st struct {
		Customer struct{ ID string }
		Flows    []struct {
			Flow        struct{ ID string }
			TemporalURL string
		}
		Events              []Event
		CustomerWorkflowURL string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Customer.ID != testCust || len(st.Flows) != 1 {
		t.Fatalf("state: got %s", rec.Body)
	}
	if want := "http://127.0.0.1:8233/namespaces/default/workflows/" + testFlowID; st.Flows[0].TemporalURL != want {
		t.Errorf("flow's Temporal UI link: got %q, want %q", st.Flows[0].TemporalURL, want)
	}
	if want := "http://127.0.0.1:8233/namespaces/default/workflows/customer-" + testCust; st.CustomerWorkflowURL != want {
		t.Errorf("customer workflow link: got %q, want %q", st.CustomerWorkflowURL, want)
	}
	if len(st.Events) != 1 || st.Events[0].Type != "customer.pin_reset" || !strings.Contains(string(st.Events[0].Security), "exportAvailableAt") {
		t.Fatalf("events: got %+v, want this customer's one event", st.Events)
	}
	// An unknown customer is the API's 404.
	if rec := page(t, a, http.MethodGet, "/demo/api/customers/66aa0000000000000000ffff", ""); rec.Code != http.StatusNotFound {
		t.Errorf("unknown customer: got %d, want 404", rec.Code)
	}
}

func TestApp_EventsElsewhere(t *testing.T) {
	a, _ := newTestApp(t, func(o *Options) { o.NotifySecret = ""; o.EventsElsewhere = "https://app.example/hooks" })
	if a.Events() != nil {
		t.Fatal("a receiver exists without a secret")
	}
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080"+NotifyPath, strings.NewReader(`{}`))
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Errorf("notify without a receiver: got %d, want 404", rec.Code)
	}
	rec = page(t, a, http.MethodGet, "/demo/api/customers/"+testCust, "")
	if !strings.Contains(rec.Body.String(), `"eventsElsewhere":"https://app.example/hooks"`) {
		t.Errorf("state: got %s, want eventsElsewhere", rec.Body)
	}
}

// deliver posts an event signed with the dev notify secret.
func deliver(t *testing.T, h http.Handler, id, body string, want int) {
	t.Helper()
	secret, err := notify.ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080"+NotifyPath, strings.NewReader(body))
	now := time.Now()
	req.Header.Set(notify.HeaderID, id)
	req.Header.Set(notify.HeaderTimestamp, strconvUnix(now))
	req.Header.Set(notify.HeaderSignature, notify.Sign(secret, id, now, []byte(body)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != want {
		t.Fatalf("deliver %s: got %d %s, want %d", id, rec.Code, rec.Body, want)
	}
}

func TestReceiver_VerifiesKeepsLastNAndDeduplicates(t *testing.T) {
	rc, err := NewReceiver(testSecret, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(n int) string {
		return `{"type":"customer.pin_updated","timestamp":"2026-03-04T10:00:00Z","data":{"customerId":"c1","flowId":"f` + string(rune('0'+n)) + `","security":{}}}`
	}
	for i := 1; i <= 4; i++ {
		deliver(t, rc, "msg_"+string(rune('0'+i)), ev(i), http.StatusNoContent)
	}
	deliver(t, rc, "msg_4", ev(4), http.StatusNoContent) // at least once: a second delivery
	got := rc.ForCustomer("c1")
	if len(got) != 3 || got[0].FlowID != "f4" || got[2].FlowID != "f2" {
		t.Fatalf("kept: got %+v, want f4, f3, f2 (newest first, last 3)", got)
	}
	if got[0].Deliveries != 2 {
		t.Errorf("deliveries of msg_4: got %d, want 2", got[0].Deliveries)
	}

	// A forged or stale event is refused and not kept.
	req := httptest.NewRequest(http.MethodPost, NotifyPath, strings.NewReader(ev(5)))
	req.Header.Set(notify.HeaderID, "msg_5")
	req.Header.Set(notify.HeaderTimestamp, strconvUnix(time.Now()))
	req.Header.Set(notify.HeaderSignature, "v1,"+strings.Repeat("A", 44))
	rec := httptest.NewRecorder()
	rc.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("forged event: got %d, want 401", rec.Code)
	}
	secret, _ := notify.ParseSecret(testSecret)
	old := time.Now().Add(-time.Hour)
	req = httptest.NewRequest(http.MethodPost, NotifyPath, strings.NewReader(ev(6)))
	req.Header.Set(notify.HeaderID, "msg_6")
	req.Header.Set(notify.HeaderTimestamp, strconvUnix(old))
	req.Header.Set(notify.HeaderSignature, notify.Sign(secret, "msg_6", old, []byte(ev(6))))
	rec = httptest.NewRecorder()
	rc.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("stale event: got %d, want 401", rec.Code)
	}
	if rc.Len() != 3 {
		t.Errorf("kept after refusals: got %d, want 3", rc.Len())
	}
	deliver(t, rc, "msg_7", `not json`, http.StatusBadRequest)
}

func TestNew_RefusesBadOptions(t *testing.T) {
	for _, o := range []Options{
		{APIURL: "", APIKey: "k"},
		{APIURL: "ftp://x", APIKey: "k"},
		{APIURL: "http://127.0.0.1:8080", APIKey: ""},
		{APIURL: "http://127.0.0.1:8080", APIKey: "k", NotifySecret: "not-a-secret"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v): got nil error", o)
		}
	}
}

func TestMount_SendsOnlyDemoPathsToTheDemo(t *testing.T) {
	a, _ := newTestApp(t)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := Mount(next, a)
	for path, want := range map[string]int{"/demo": 200, "/demo/assets/app.css": 200, "/demox": 418, "/v1/customers": 418, "/": 418} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080"+path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: got %d, want %d", path, rec.Code, want)
		}
	}
}

func strconvUnix(t time.Time) string { return strconvFormat(t.Unix()) }

func strconvFormat(n int64) string { return strconv.FormatInt(n, 10) }

// The Gateway sends the person back to the address they opened the demo
// on when it is a loopback one, else to PublicURL.
func TestApp_RedirectFollowsTheLoopbackAddress(t *testing.T) {
	for host, want := range map[string]string{
		"localhost:8080": "http://localhost:8080/demo?customer=" + testCust,
		"127.0.0.1:9999": "http://127.0.0.1:9999/demo?customer=" + testCust,
		"10.0.0.7:8080":  "http://127.0.0.1:8080/demo?customer=" + testCust,
	} {
		a, api := newTestApp(t)
		req := httptest.NewRequest(http.MethodPost, "http://"+host+"/demo/api/customers/"+testCust+"/flows/update-pin", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			t.Fatalf("%s: got %d %s", host, rec.Code, rec.Body)
		}
		if got := api.requests()[0].Body["redirectUrl"]; got != want {
			t.Errorf("%s: redirectUrl got %v, want %s", host, got, want)
		}
	}
}
