package planbok

// These tests pin the client's HTTP behaviour against httptest servers that
// play Planbok as documented (planbok-notes.md §2-§9, API.md §5). A later
// task adds contract tests that run the same calls against the sandbox
// (package sandbox), so that the client and the simulator cannot drift
// apart; they belong in a contract_test.go here, importing sandbox.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testKey = "pk_test_S3CRET-key-0123456789"

// seen is one request as the test server received it.
type seen struct {
	Method, Path, Query     string
	APIKey, UA, ContentType string
	Body                    string
}

// fakePlanbok starts a server that records each request and answers with
// status and body. It returns a client for it and the recorded requests.
func fakePlanbok(t *testing.T, status int, body string, opts ...Option) (*Client, *[]seen) {
	t.Helper()
	var reqs []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs = append(reqs, seen{
			Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			APIKey: r.Header.Get(HeaderAPIKey), UA: r.Header.Get("User-Agent"),
			ContentType: r.Header.Get("Content-Type"), Body: string(b),
		})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return New(srv.URL, testKey, opts...), &reqs
}

// ok wraps data in a success envelope.
func ok(status int, data string) string {
	return fmt.Sprintf(`{"success": true, "status": %d, "message": "OK", "data": %s}`, status, data)
}

const customerJSON = `{"id": "64f0c0ffee0000000000abcd", "name": "Ada", "refId": "user-1", "custodyType": "customer",
	"status": "active", "hasPin": true, "hasRecovery": false,
	"createdAt": "2026-03-01T10:00:00Z", "updatedAt": "2026-03-01T10:05:00.5Z"}`

const challengeJSON = `{"challengeId": "ch-1", "redirectUrl": "https://gateway.example/c/ch-1", "status": "pending",
	"task": "update-pin", "expiresAt": "2026-03-01T10:15:00Z"}`

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t *testing.T, got, want string) bool {
	t.Helper()
	if got == "" || want == "" {
		return got == want
	}
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("request body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want body %q is not JSON: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func TestClient_Requests(t *testing.T) {
	const redirect = "https://app.example/return"
	tests := []struct {
		name      string
		respond   string
		call      func(context.Context, *Client) error
		method    string
		path      string
		query     string
		body      string
		wantCType bool
	}{
		{
			name:    "create customer",
			respond: ok(201, customerJSON),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateCustomer(ctx, CreateCustomerParams{Name: "Ada", RefID: "user-1"})
				return err
			},
			method: "POST", path: "/v2/customers", body: `{"name": "Ada", "refId": "user-1"}`, wantCType: true,
		},
		{
			name:    "create customer with idempotency key",
			respond: ok(201, customerJSON),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateCustomer(ctx, CreateCustomerParams{Name: "Ada", RefID: "user-1", IdempotencyKey: "k1"})
				return err
			},
			method: "POST", path: "/v2/customers", body: `{"name": "Ada", "refId": "user-1", "idempotencyKey": "k1"}`, wantCType: true,
		},
		{
			name:    "get customer escapes the id",
			respond: ok(200, customerJSON),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetCustomer(ctx, "a/b c?")
				return err
			},
			method: "GET", path: "/v2/customers/a%2Fb%20c%3F",
		},
		{
			name:    "list customers",
			respond: ok(200, `{"customers": [], "page": 2, "limit": 5, "total": 0}`),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ListCustomers(ctx, ListCustomersParams{Page: 2, Limit: 5})
				return err
			},
			method: "GET", path: "/v2/customers", query: "limit=5&page=2",
		},
		{
			name:    "list customers with defaults",
			respond: ok(200, `[]`),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ListCustomers(ctx, ListCustomersParams{})
				return err
			},
			method: "GET", path: "/v2/customers",
		},
		{
			name:    "get challenge",
			respond: ok(200, challengeJSON),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetChallenge(ctx, "cust 1", "ch/1")
				return err
			},
			method: "GET", path: "/v2/customers/cust%201/challenges/ch%2F1",
		},
		{
			name:    "list wallets",
			respond: ok(200, `[]`),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ListWallets(ctx, ListWalletsParams{CustomerIDs: []string{"a", "b&c"}})
				return err
			},
			method: "GET", path: "/v2/wallets", query: "customerIds=a,b%26c",
		},
		{
			name:    "create wallets defaults the account type",
			respond: ok(201, challengeJSON),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateChallenge(ctx, "c1", TaskCreateWallets, ChallengeParams{RedirectURL: redirect, Blockchains: []string{"ETH-SEPOLIA", "SOL-DEVNET"}})
				return err
			},
			method: "POST", path: "/v2/customers/c1/wallet/create", wantCType: true,
			body: `{"blockchains": ["ETH-SEPOLIA", "SOL-DEVNET"], "accountType": "eoa", "redirectUrl": "` + redirect + `"}`,
		},
		{
			name:    "create wallets with key and account type",
			respond: ok(201, challengeJSON),
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateChallenge(ctx, "c1", TaskCreateWallets, ChallengeParams{RedirectURL: redirect, Blockchains: []string{"ETH"}, AccountType: "sca", IdempotencyKey: "k2"})
				return err
			},
			method: "POST", path: "/v2/customers/c1/wallet/create", wantCType: true,
			body: `{"blockchains": ["ETH"], "accountType": "sca", "redirectUrl": "` + redirect + `", "idempotencyKey": "k2"}`,
		},
	}
	for _, task := range []Task{TaskInitialize, TaskRecovery, TaskUpdatePIN, TaskResetPIN, TaskExportPrivateKeys} {
		tests = append(tests, struct {
			name      string
			respond   string
			call      func(context.Context, *Client) error
			method    string
			path      string
			query     string
			body      string
			wantCType bool
		}{
			name:    "create " + string(task) + " challenge",
			respond: ok(201, challengeJSON),
			call: func(ctx context.Context, c *Client) error {
				// Blockchains are for wallets only and must not be sent here.
				_, err := c.CreateChallenge(ctx, "c1", task, ChallengeParams{RedirectURL: redirect, Blockchains: []string{"ETH"}, IdempotencyKey: "k-" + string(task)})
				return err
			},
			method: "POST", path: "/v2/customers/c1/" + string(task), wantCType: true,
			body: `{"redirectUrl": "` + redirect + `", "idempotencyKey": "k-` + string(task) + `"}`,
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, reqs := fakePlanbok(t, 200, tt.respond)
			if err := tt.call(context.Background(), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			if len(*reqs) != 1 {
				t.Fatalf("requests: got %d, want 1", len(*reqs))
			}
			r := (*reqs)[0]
			if r.Method != tt.method || r.Path != tt.path || r.Query != tt.query {
				t.Errorf("request: got %s %s?%s, want %s %s?%s", r.Method, r.Path, r.Query, tt.method, tt.path, tt.query)
			}
			if r.APIKey != testKey {
				t.Errorf("%s header: got %q, want the key", HeaderAPIKey, r.APIKey)
			}
			if r.UA != DefaultUserAgent {
				t.Errorf("User-Agent: got %q, want %q", r.UA, DefaultUserAgent)
			}
			if got := r.ContentType == "application/json"; got != tt.wantCType {
				t.Errorf("Content-Type: got %q, want application/json only on bodies", r.ContentType)
			}
			if !jsonEqual(t, r.Body, tt.body) {
				t.Errorf("body: got %s, want %s", r.Body, tt.body)
			}
		})
	}
}

func TestNew_BaseURLAndOptions(t *testing.T) {
	var path, ua string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, ua = r.URL.Path, r.Header.Get("User-Agent")
		io.WriteString(w, ok(200, customerJSON))
	}))
	defer srv.Close()
	tests := []struct {
		base, wantPath string
	}{
		{srv.URL, "/v2/customers/c1"},
		{srv.URL + "/", "/v2/customers/c1"},
		{srv.URL + "/v2", "/v2/customers/c1"},
		{srv.URL + "/v2/", "/v2/customers/c1"},
		{srv.URL + "/proxy/planbok", "/proxy/planbok/v2/customers/c1"},
	}
	for _, tt := range tests {
		c := New(tt.base, testKey, WithUserAgent("custodyflows-test/9"), WithHTTPClient(srv.Client()))
		if _, err := c.GetCustomer(context.Background(), "c1"); err != nil {
			t.Fatalf("base %s: %v", tt.base, err)
		}
		if path != tt.wantPath {
			t.Errorf("base %s: got path %s, want %s", tt.base, path, tt.wantPath)
		}
		if ua != "custodyflows-test/9" {
			t.Errorf("User-Agent: got %q, want custodyflows-test/9", ua)
		}
	}
	if got := New("", "k").BaseURL(); got != DefaultBaseURL {
		t.Errorf("empty base URL: got %s, want %s", got, DefaultBaseURL)
	}
	if got := New("https://api.planbok.io", "k").hc.Timeout; got != DefaultTimeout {
		t.Errorf("default timeout: got %v, want %v", got, DefaultTimeout)
	}
}

func TestClient_DecodesEnvelopes(t *testing.T) {
	ctx := context.Background()
	t.Run("customer", func(t *testing.T) {
		c, _ := fakePlanbok(t, 200, ok(200, customerJSON))
		got, err := c.GetCustomer(ctx, "64f0c0ffee0000000000abcd")
		if err != nil {
			t.Fatal(err)
		}
		want := &Customer{
			ID: "64f0c0ffee0000000000abcd", Name: "Ada", RefID: "user-1", CustodyType: "customer",
			Status: CustomerActive, HasPIN: true,
			CreatedAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC),
			UpdatedAt: time.Date(2026, 3, 1, 10, 5, 0, 500_000_000, time.UTC),
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("challenge", func(t *testing.T) {
		c, _ := fakePlanbok(t, 201, ok(201, `{"challengeId": "ch-1", "redirectUrl": "https://gw/ch-1", "status": "pending",
			"task": "update-pin", "expiresAt": "2026-03-01T10:15:00Z", "result": {"ok": true}}`))
		got, err := c.CreateChallenge(ctx, "c1", TaskUpdatePIN, ChallengeParams{RedirectURL: "https://app/r"})
		if err != nil {
			t.Fatal(err)
		}
		if got.ChallengeID != "ch-1" || got.RedirectURL != "https://gw/ch-1" || got.Status != ChallengePending ||
			got.Task != TaskUpdatePIN || !got.ExpiresAt.Equal(time.Date(2026, 3, 1, 10, 15, 0, 0, time.UTC)) ||
			string(got.Result) != `{"ok": true}` {
			t.Errorf("got %+v, want the challenge of the response", got)
		}
	})
	t.Run("challenge id as id", func(t *testing.T) {
		c, _ := fakePlanbok(t, 200, ok(200, `{"id": "ch-2", "status": "verified"}`))
		got, err := c.GetChallenge(ctx, "c1", "ch-2")
		if err != nil {
			t.Fatal(err)
		}
		if got.ChallengeID != "ch-2" || got.Status != ChallengeVerified {
			t.Errorf("got %+v, want challengeId ch-2, status verified", got)
		}
	})
	lists := []struct {
		name, data string
		want       int
	}{
		{"customers as object", `{"customers": [` + customerJSON + `], "page": 1, "limit": 10, "total": 1}`, 1},
		{"customers as array", `[` + customerJSON + `,` + customerJSON + `]`, 2},
		{"customers null", `null`, 0},
	}
	for _, tt := range lists {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := fakePlanbok(t, 200, ok(200, tt.data))
			got, err := c.ListCustomers(ctx, ListCustomersParams{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Customers) != tt.want || got.Customers == nil {
				t.Errorf("customers: got %d (nil=%v), want %d", len(got.Customers), got.Customers == nil, tt.want)
			}
		})
	}
	const wallet = `{"id": "w1", "customerId": "c1", "blockchain": "ETH-SEPOLIA", "address": "0xAbC", "derivationPath": "m/44'/60'/0'/0/0", "keyType": "secp256k1"}`
	wallets := []struct {
		name, data string
		want       int
	}{
		{"wallets as array", `[` + wallet + `]`, 1},
		{"wallets as object", `{"wallets": [` + wallet + `,` + wallet + `]}`, 2},
		{"wallets empty", `[]`, 0},
		{"wallets null", `null`, 0},
	}
	for _, tt := range wallets {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := fakePlanbok(t, 200, ok(200, tt.data))
			got, err := c.ListWallets(ctx, ListWalletsParams{CustomerIDs: []string{"c1"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want || got == nil {
				t.Fatalf("wallets: got %d (nil=%v), want %d", len(got), got == nil, tt.want)
			}
			if tt.want > 0 && (got[0].Address != "0xAbC" || got[0].KeyType != "secp256k1" || got[0].DerivationPath != "m/44'/60'/0'/0/0") {
				t.Errorf("wallet: got %+v, want the response's", got[0])
			}
		})
	}
}

func TestClient_ErrorResponses(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		wantStatus  int
		wantMessage string
		wantErr     bool // Err set
		retryable   bool
	}{
		{"400", 400, `{"success": false, "status": 400, "message": "PIN is not set"}`, 400, "PIN is not set", false, false},
		{"401", 401, `{"success": false, "status": 401, "message": "Invalid API key"}`, 401, "Invalid API key", false, false},
		{"403", 403, `{"success": false, "status": 403, "message": "Customer is locked"}`, 403, "Customer is locked", false, false},
		{"404", 404, `{"success": false, "status": 404, "message": "Customer not found"}`, 404, "Customer not found", false, false},
		{"409", 409, `{"success": false, "status": 409, "message": "Idempotency key reused"}`, 409, "Idempotency key reused", false, false},
		{"422", 422, `{"success": false, "status": 422, "message": "Wrong PIN", "data": {"attemptsRemaining": 3}}`, 422, "Wrong PIN", false, false},
		{"429", 429, `{"success": false, "status": 429, "message": "Too many requests"}`, 429, "Too many requests", false, true},
		{"500", 500, `{"success": false, "status": 500, "message": "Internal error", "stack": "at x"}`, 500, "Internal error", false, true},
		{"503", 503, `{"success": false, "status": 503, "message": "Maintenance"}`, 503, "Maintenance", false, true},
		{"408", 408, ``, 408, "Request Timeout", false, true},
		{"empty 401 body", 401, ``, 401, "Unauthorized", false, false},
		{"envelope without message", 404, `{"success": false, "status": 404}`, 404, "Not Found", false, false},
		{"errors.message shape", 400, `{"errors": {"message": "refId is required"}}`, 400, "refId is required", false, false},
		{"error string shape", 400, `{"error": "bad blockchain"}`, 400, "bad blockchain", false, false},
		{"HTML 502 from a proxy", 502, `<html><body>Bad gateway</body></html>`, 502, "Bad Gateway", true, true},
		{"plain-text 404", 404, `404 page not found`, 404, "Not Found", true, false},
		{"truncated 500", 500, `{"success": false, "mess`, 500, "Internal Server Error", true, true},
		{"success=false on 200", 200, `{"success": false, "status": 409, "message": "Challenge already active"}`, 409, "Challenge already active", false, false},
		{"success=false on 200 with 5xx status", 200, `{"success": false, "status": 503, "message": "Busy"}`, 503, "Busy", false, true},
		{"HTML on 200", 200, `<html>login</html>`, 200, "OK", true, true},
		{"truncated 200", 200, `{"success": true, "status": 200, "data": {"id": "c`, 200, "OK", true, true},
		{"200 without data", 200, `{"success": true, "status": 200, "message": "OK"}`, 200, "OK", true, false},
		{"200 of the wrong shape", 200, ok(200, `{"id": 42}`), 200, "OK", true, false},
		{"200 without customer id", 200, ok(200, `{"name": "Ada"}`), 200, "OK", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(HeaderRequestID, "req-123")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			_, err := New(srv.URL, testKey).GetCustomer(context.Background(), "c1")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %T %v, want *Error", err, err)
			}
			if e.Op != "get customer" || e.StatusCode != tt.wantStatus || e.Message != tt.wantMessage || e.RequestID != "req-123" {
				t.Errorf("got Op=%q StatusCode=%d Message=%q RequestID=%q, want %q %d %q %q",
					e.Op, e.StatusCode, e.Message, e.RequestID, "get customer", tt.wantStatus, tt.wantMessage, "req-123")
			}
			if (e.Err != nil) != tt.wantErr {
				t.Errorf("Err: got %v, want set=%v", e.Err, tt.wantErr)
			}
			if e.Retryable() != tt.retryable {
				t.Errorf("Retryable: got %v, want %v (%v)", e.Retryable(), tt.retryable, e)
			}
			if StatusCode(err) != tt.wantStatus {
				t.Errorf("StatusCode: got %d, want %d", StatusCode(err), tt.wantStatus)
			}
			if IsNotFound(err) != (tt.wantStatus == 404) {
				t.Errorf("IsNotFound: got %v, want %v", IsNotFound(err), tt.wantStatus == 404)
			}
			wantPrefix := fmt.Sprintf("planbok: get customer: %d %s", tt.wantStatus, tt.wantMessage)
			if !strings.HasPrefix(e.Error(), wantPrefix) || !strings.HasSuffix(e.Error(), " (request id req-123)") {
				t.Errorf("Error(): got %q, want %q… (request id req-123)", e.Error(), wantPrefix)
			}
			if strings.Contains(e.Error(), "<html") || strings.Contains(e.Error(), "page not found") {
				t.Errorf("Error(): got %q, want no response body echoed", e.Error())
			}
		})
	}
}

func TestError_Format(t *testing.T) {
	tests := []struct {
		e    *Error
		want string
	}{
		{&Error{Op: "get customer", StatusCode: 404, Message: "customer not found"}, "planbok: get customer: 404 customer not found"},
		{&Error{Op: "get challenge", StatusCode: 503, Message: "Service Unavailable", RequestID: "r1"}, "planbok: get challenge: 503 Service Unavailable (request id r1)"},
		{&Error{Op: "list wallets", Err: errors.New("dial tcp: connection refused")}, "planbok: list wallets: dial tcp: connection refused"},
		{&Error{Op: "get customer", StatusCode: 200, Message: "OK", Err: errors.New("response has no data")}, "planbok: get customer: 200 OK: response has no data"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestError_Retryable(t *testing.T) {
	syntaxErr := json.Unmarshal([]byte(`{`), new(any))
	typeErr := json.Unmarshal([]byte(`1`), new(string))
	tests := []struct {
		name string
		e    *Error
		want bool
	}{
		{"400", &Error{StatusCode: 400}, false},
		{"401", &Error{StatusCode: 401}, false},
		{"403", &Error{StatusCode: 403}, false},
		{"404", &Error{StatusCode: 404}, false},
		{"408", &Error{StatusCode: 408}, true},
		{"409", &Error{StatusCode: 409}, false},
		{"422", &Error{StatusCode: 422}, false},
		{"429", &Error{StatusCode: 429}, true},
		{"500", &Error{StatusCode: 500}, true},
		{"502", &Error{StatusCode: 502}, true},
		{"503", &Error{StatusCode: 503}, true},
		{"504", &Error{StatusCode: 504}, true},
		{"500 undecodable", &Error{StatusCode: 500, Err: syntaxErr}, true},
		{"400 undecodable", &Error{StatusCode: 400, Err: syntaxErr}, false},
		{"200 truncated", &Error{StatusCode: 200, Err: fmt.Errorf("decode response: %w", syntaxErr)}, true},
		{"200 body read failed", &Error{StatusCode: 200, Err: fmt.Errorf("%w: %w", errBodyRead, io.ErrUnexpectedEOF)}, true},
		{"200 wrong shape", &Error{StatusCode: 200, Err: fmt.Errorf("decode response data: %w", typeErr)}, false},
		{"200 no data", &Error{StatusCode: 200, Err: errors.New("response has no data")}, false},
		{"200 success=false", &Error{StatusCode: 200, Message: "no"}, false},
		{"connection refused", &Error{Err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")}, true},
		{"deadline", &Error{Err: fmt.Errorf("Get x: %w", context.DeadlineExceeded)}, true},
		{"caller cancelled", &Error{Err: fmt.Errorf("Get x: %w", context.Canceled)}, false},
		{"invalid argument", invalid("get customer", "empty customer id"), false},
		{"nothing", &Error{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.Retryable(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClient_NeverShowsKey(t *testing.T) {
	// A server that echoes the key in its message must not get it into an
	// error either.
	c, _ := fakePlanbok(t, 401, `{"success": false, "status": 401, "message": "API key `+testKey+` is revoked"}`)
	_, err := c.GetCustomer(context.Background(), "c1")
	if err == nil {
		t.Fatal("got nil error, want 401")
	}
	var e *Error
	errors.As(err, &e)
	for name, s := range map[string]string{
		"Error()":     err.Error(),
		"Message":     e.Message,
		"%v error":    fmt.Sprintf("%v", err),
		"%+v error":   fmt.Sprintf("%+v", err),
		"String()":    c.String(),
		"%v client":   fmt.Sprintf("%v", c),
		"%+v client":  fmt.Sprintf("%+v", c),
		"%#v client":  fmt.Sprintf("%#v", c),
		"%s client":   fmt.Sprintf("%s", c),
		"%v struct":   fmt.Sprintf("%v", *c),
		"%+v struct":  fmt.Sprintf("%+v", *c),
		"GoString()":  c.GoString(),
		"invalid arg": invalid("get customer", "x").Error(),
		"network":     networkError(t).Error(),
	} {
		if strings.Contains(s, testKey) || strings.Contains(s, "S3CRET") {
			t.Errorf("%s: got %q, want no API key", name, s)
		}
	}
	if !strings.Contains(c.String(), c.BaseURL()) {
		t.Errorf("String(): got %q, want the base URL in it", c.String())
	}
}

// networkError returns the error of a call to a server that has closed.
func networkError(t *testing.T) error {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := New(url, testKey).GetCustomer(context.Background(), "c1")
	return err
}

func TestClient_NetworkErrorIsRetryable(t *testing.T) {
	err := networkError(t)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T %v, want *Error", err, err)
	}
	if e.StatusCode != 0 || e.Err == nil || !e.Retryable() {
		t.Errorf("got StatusCode=%d Err=%v Retryable=%v, want 0, set, true", e.StatusCode, e.Err, e.Retryable())
	}
	if StatusCode(err) != 0 || IsNotFound(err) {
		t.Errorf("StatusCode/IsNotFound: got %d/%v, want 0/false", StatusCode(err), IsNotFound(err))
	}
}

// slowServer answers only when the request's context ends.
func slowServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

func TestClient_Timeouts(t *testing.T) {
	srv := slowServer(t)
	t.Run("context deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := New(srv.URL, testKey).GetCustomer(ctx, "c1")
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want an *Error wrapping context.DeadlineExceeded", err)
		}
		if !e.Retryable() {
			t.Errorf("Retryable: got false, want true (%v)", e)
		}
	})
	t.Run("http client timeout", func(t *testing.T) {
		c := New(srv.URL, testKey, WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}))
		_, err := c.GetChallenge(context.Background(), "c1", "ch1")
		var e *Error
		if !errors.As(err, &e) || !e.Retryable() {
			t.Fatalf("got %v, want a retryable *Error", err)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := New(srv.URL, testKey).ListWallets(ctx, ListWalletsParams{})
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want an *Error wrapping context.Canceled", err)
		}
		if e.Retryable() {
			t.Errorf("Retryable: got true, want false for the caller's own cancellation")
		}
	})
}

func TestClient_InvalidArgumentsSendNothing(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	c := New(srv.URL, testKey)
	ctx := context.Background()
	redirect := ChallengeParams{RedirectURL: "https://app/r"}
	tests := []struct {
		name string
		call func() error
	}{
		{"get customer without id", func() error { _, err := c.GetCustomer(ctx, ""); return err }},
		{"challenge without customer", func() error { _, err := c.CreateChallenge(ctx, "", TaskRecovery, redirect); return err }},
		{"challenge of unknown task", func() error { _, err := c.CreateChallenge(ctx, "c1", "sign/message", redirect); return err }},
		{"challenge without redirect", func() error { _, err := c.CreateChallenge(ctx, "c1", TaskRecovery, ChallengeParams{}); return err }},
		{"wallets without blockchains", func() error { _, err := c.CreateChallenge(ctx, "c1", TaskCreateWallets, redirect); return err }},
		{"get challenge without id", func() error { _, err := c.GetChallenge(ctx, "c1", ""); return err }},
		{"get challenge without customer", func() error { _, err := c.GetChallenge(ctx, "", "ch1"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *Error", err)
			}
			if e.Retryable() {
				t.Errorf("Retryable: got true, want false (%v)", e)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("requests sent: got %d, want 0", n)
	}
}

func TestClient_BoundsResponses(t *testing.T) {
	t.Run("body over 1 MiB", func(t *testing.T) {
		big := ok(200, `{"id": "c1", "name": "`+strings.Repeat("x", maxBodyBytes)+`"}`)
		c, _ := fakePlanbok(t, 200, big)
		_, err := c.GetCustomer(context.Background(), "c1")
		if err == nil || !strings.Contains(err.Error(), "exceeds") {
			t.Fatalf("got %v, want a body-too-large error", err)
		}
	})
	t.Run("long message", func(t *testing.T) {
		c, _ := fakePlanbok(t, 400, `{"success": false, "message": "`+strings.Repeat("é", 2000)+`"}`)
		_, err := c.GetCustomer(context.Background(), "c1")
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("got %v, want *Error", err)
		}
		if len(e.Message) > maxMessageBytes+len("…") {
			t.Errorf("message length: got %d, want at most %d", len(e.Message), maxMessageBytes+len("…"))
		}
		if !strings.HasSuffix(e.Message, "…") {
			t.Errorf("message: got …%q, want it to end with an ellipsis", e.Message[len(e.Message)-10:])
		}
	})
}
