package planbok

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// HeaderAPIKey carries the API key on every Planbok request.
const HeaderAPIKey = "PLANBOK-X-API-KEY"

// HeaderRequestID is the response header read into Error.RequestID.
const HeaderRequestID = "X-Request-Id"

// DefaultBaseURL is Planbok's production API.
const DefaultBaseURL = "https://api.planbok.io"

// DefaultTimeout bounds each request made with the default HTTP client.
// Planbok answers in well under a second; a request still open after this
// is better failed and retried by the calling activity.
const DefaultTimeout = 15 * time.Second

// DefaultUserAgent is sent unless WithUserAgent says otherwise.
const DefaultUserAgent = "custodyflows-planbok-client/1"

// AccountTypeEOA is the only wallet account type Planbok supports.
const AccountTypeEOA = "eoa"

// maxBodyBytes caps how much of a response is read: Planbok's answers
// are small, and a runaway body must not exhaust memory.
const maxBodyBytes = 1 << 20

// maxMessageBytes caps Error.Message, which ends up in logs and errors.
const maxMessageBytes = 512

// Client calls the Planbok v2 API. It is safe for concurrent use. It never
// retries: callers (Temporal activities) retry when (*Error).Retryable says
// so, and send idempotency keys on POSTs so that a retry is harmless.
type Client struct {
	baseURL   string
	apiKey    string
	userAgent string
	hc        *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send requests through hc (for its
// transport, timeout or test server) instead of a client with
// DefaultTimeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) {
		if ua != "" {
			c.userAgent = ua
		}
	}
}

// New returns a Client for the Planbok API at baseURL (DefaultBaseURL when
// empty; the client appends /v2/…, and a trailing "/v2" on baseURL is
// tolerated) that authenticates with apiKey.
func New(baseURL, apiKey string, opts ...Option) *Client {
	base := strings.TrimRight(baseURL, "/")
	base = strings.TrimRight(strings.TrimSuffix(base, "/v2"), "/")
	if base == "" {
		base = DefaultBaseURL
	}
	c := &Client{
		baseURL:   base,
		apiKey:    apiKey,
		userAgent: DefaultUserAgent,
		hc:        &http.Client{Timeout: DefaultTimeout},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the API's base URL, without /v2.
func (c *Client) BaseURL() string { return c.baseURL }

// String describes the client without its API key, so it can be logged.
// It has a value receiver so that printing a Client value, not only a
// pointer, hides the key too.
func (c Client) String() string { return "planbok.Client(" + c.baseURL + ")" }

// GoString is String, so that %#v does not print the API key either.
func (c Client) GoString() string { return c.String() }

// CreateCustomerParams is the body of POST /v2/customers.
type CreateCustomerParams struct {
	Name  string
	RefID string
	// IdempotencyKey, when set, makes a repeated call return the first
	// call's customer.
	IdempotencyKey string
}

// CreateCustomer creates a customer (POST /v2/customers).
func (c *Client) CreateCustomer(ctx context.Context, p CreateCustomerParams) (*Customer, error) {
	const op = "create customer"
	body := struct {
		Name           string `json:"name"`
		RefID          string `json:"refId"`
		IdempotencyKey string `json:"idempotencyKey,omitempty"`
	}{p.Name, p.RefID, p.IdempotencyKey}
	var cu Customer
	resp, err := c.do(ctx, request{op: op, method: http.MethodPost, path: "/v2/customers", body: body}, &cu)
	if err != nil {
		return nil, err
	}
	if cu.ID == "" {
		return nil, resp.shapeError(op, errors.New("response has no customer id"))
	}
	return &cu, nil
}

// GetCustomer reads a customer (GET /v2/customers/{id}). An unknown
// customer is an *Error for which IsNotFound is true.
func (c *Client) GetCustomer(ctx context.Context, id string) (*Customer, error) {
	const op = "get customer"
	if id == "" {
		return nil, invalid(op, "empty customer id")
	}
	var cu Customer
	resp, err := c.do(ctx, request{op: op, method: http.MethodGet, path: "/v2/customers/" + url.PathEscape(id)}, &cu)
	if err != nil {
		return nil, err
	}
	if cu.ID == "" {
		return nil, resp.shapeError(op, errors.New("response has no customer id"))
	}
	return &cu, nil
}

// ListCustomersParams pages GET /v2/customers. Zero values are left to
// Planbok's defaults.
type ListCustomersParams struct {
	Page  int
	Limit int
}

// ListCustomers lists customers (GET /v2/customers?page=&limit=).
func (c *Client) ListCustomers(ctx context.Context, p ListCustomersParams) (*CustomerList, error) {
	const op = "list customers"
	q := url.Values{}
	if p.Page > 0 {
		q.Set("page", strconv.Itoa(p.Page))
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	var raw json.RawMessage
	resp, err := c.do(ctx, request{op: op, method: http.MethodGet, path: "/v2/customers", query: q.Encode(), dataOptional: true}, &raw)
	if err != nil {
		return nil, err
	}
	// Planbok documents only "List of customers"; accept a bare array as
	// well as the paged object.
	list := CustomerList{Customers: []Customer{}}
	if err := decodeListOrObject(raw, &list.Customers, &list); err != nil {
		return nil, resp.shapeError(op, fmt.Errorf("decode response data: %w", err))
	}
	if list.Customers == nil {
		list.Customers = []Customer{}
	}
	return &list, nil
}

// ChallengeParams is the body of a challenge route.
type ChallengeParams struct {
	// RedirectURL is where the Gateway sends the user back to (required).
	RedirectURL string
	// Blockchains and AccountType apply to TaskCreateWallets only;
	// AccountType defaults to AccountTypeEOA.
	Blockchains []string
	AccountType string
	// IdempotencyKey, when set, makes a repeated call return the first
	// call's challenge: set it on every call a retry may repeat.
	IdempotencyKey string
}

// CreateChallenge starts a challenge of task for a customer:
// POST /v2/customers/{id}/{task}, with body {redirectUrl} or, for
// TaskCreateWallets (path …/wallet/create), {blockchains, accountType,
// redirectUrl}. The returned Challenge's RedirectURL is the Gateway URL to
// send the user to.
func (c *Client) CreateChallenge(ctx context.Context, customerID string, task Task, p ChallengeParams) (*Challenge, error) {
	op := "create " + string(task) + " challenge"
	if task == TaskCreateWallets {
		op = "create wallet challenge"
	}
	switch {
	case customerID == "":
		return nil, invalid(op, "empty customer id")
	case !knownTask(task):
		return nil, invalid(op, fmt.Sprintf("unknown task %q", task))
	case p.RedirectURL == "":
		return nil, invalid(op, "empty redirect url")
	}
	body := challengeBody{RedirectURL: p.RedirectURL, IdempotencyKey: p.IdempotencyKey}
	if task == TaskCreateWallets {
		if len(p.Blockchains) == 0 {
			return nil, invalid(op, "no blockchains")
		}
		body.Blockchains = p.Blockchains
		body.AccountType = p.AccountType
		if body.AccountType == "" {
			body.AccountType = AccountTypeEOA
		}
	}
	// The task is one of our constants and may hold a '/', so it is not
	// escaped; the customer id is.
	path := "/v2/customers/" + url.PathEscape(customerID) + "/" + string(task)
	return c.challenge(ctx, request{op: op, method: http.MethodPost, path: path, body: body})
}

// challengeBody is the JSON body of the challenge routes.
type challengeBody struct {
	Blockchains    []string `json:"blockchains,omitempty"`
	AccountType    string   `json:"accountType,omitempty"`
	RedirectURL    string   `json:"redirectUrl"`
	IdempotencyKey string   `json:"idempotencyKey,omitempty"`
}

// GetChallenge reads a challenge
// (GET /v2/customers/{id}/challenges/{challengeId}). Planbok prunes
// challenges after their lifetime, after which this is an *Error for which
// IsNotFound is true.
func (c *Client) GetChallenge(ctx context.Context, customerID, challengeID string) (*Challenge, error) {
	const op = "get challenge"
	switch {
	case customerID == "":
		return nil, invalid(op, "empty customer id")
	case challengeID == "":
		return nil, invalid(op, "empty challenge id")
	}
	path := "/v2/customers/" + url.PathEscape(customerID) + "/challenges/" + url.PathEscape(challengeID)
	return c.challenge(ctx, request{op: op, method: http.MethodGet, path: path})
}

func (c *Client) challenge(ctx context.Context, r request) (*Challenge, error) {
	// Planbok's beta docs show the id both as challengeId and as id; read
	// either.
	var ch struct {
		Challenge
		ID string `json:"id"`
	}
	resp, err := c.do(ctx, r, &ch)
	if err != nil {
		return nil, err
	}
	if ch.ChallengeID == "" {
		ch.ChallengeID = ch.ID
	}
	if ch.ChallengeID == "" {
		return nil, resp.shapeError(r.op, errors.New("response has no challengeId"))
	}
	return &ch.Challenge, nil
}

// ListWalletsParams filters GET /v2/wallets.
type ListWalletsParams struct {
	CustomerIDs []string
}

// ListWallets lists the wallets of the given customers
// (GET /v2/wallets?customerIds=a,b).
func (c *Client) ListWallets(ctx context.Context, p ListWalletsParams) ([]Wallet, error) {
	const op = "list wallets"
	var query string
	if len(p.CustomerIDs) > 0 {
		// Built by hand so the separator stays a literal comma, as
		// Planbok's clients send it.
		ids := make([]string, len(p.CustomerIDs))
		for i, id := range p.CustomerIDs {
			ids[i] = url.QueryEscape(id)
		}
		query = "customerIds=" + strings.Join(ids, ",")
	}
	var raw json.RawMessage
	resp, err := c.do(ctx, request{op: op, method: http.MethodGet, path: "/v2/wallets", query: query, dataOptional: true}, &raw)
	if err != nil {
		return nil, err
	}
	var wrapped struct {
		Wallets []Wallet `json:"wallets"`
	}
	wallets := []Wallet{}
	if err := decodeListOrObject(raw, &wallets, &wrapped); err != nil {
		return nil, resp.shapeError(op, fmt.Errorf("decode response data: %w", err))
	}
	if wrapped.Wallets != nil {
		wallets = wrapped.Wallets
	}
	return wallets, nil
}

// decodeListOrObject decodes a JSON array into list, or an object into obj.
func decodeListOrObject(raw json.RawMessage, list, obj any) error {
	t := bytes.TrimSpace(raw)
	switch {
	case len(t) == 0:
		return nil // no data: an empty list
	case t[0] == '[':
		return json.Unmarshal(t, list)
	}
	return json.Unmarshal(t, obj)
}

func knownTask(t Task) bool {
	switch t {
	case TaskInitialize, TaskRecovery, TaskUpdatePIN, TaskResetPIN, TaskExportPrivateKeys, TaskCreateWallets:
		return true
	}
	return false
}

func invalid(op, msg string) *Error {
	return &Error{Op: op, Err: fmt.Errorf("%w: %s", errInvalidArgument, msg)}
}

// request is one call for do.
type request struct {
	op     string // names the call in errors
	method string
	path   string // from /v2
	query  string // encoded, without '?'
	body   any    // JSON-encoded when not nil
	// list calls accept a missing or null data as an empty list.
	dataOptional bool
}

// response is what a successful do saw, for checks on the decoded data.
type response struct {
	status    int
	requestID string
}

// shapeError reports a 2xx whose data lacks what the call needs: not
// retryable, since asking again gives the same answer.
func (r response) shapeError(op string, err error) *Error {
	return &Error{Op: op, StatusCode: r.status, Message: http.StatusText(r.status), RequestID: r.requestID, Err: err}
}

// do sends one request and decodes the envelope's data into out. Every
// failure is an *Error.
func (c *Client) do(ctx context.Context, r request, out any) (response, error) {
	op := r.op
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return response{}, &Error{Op: op, Err: fmt.Errorf("%w: encode request: %v", errInvalidArgument, err)}
		}
		body = bytes.NewReader(b)
	}
	u := c.baseURL + r.path
	if r.query != "" {
		u += "?" + r.query
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return response{}, &Error{Op: op, Err: fmt.Errorf("%w: %v", errInvalidArgument, err)}
	}
	req.Header.Set(HeaderAPIKey, c.apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return response{}, &Error{Op: op, Err: err}
	}
	defer resp.Body.Close()

	e := &Error{Op: op, StatusCode: resp.StatusCode, RequestID: resp.Header.Get(HeaderRequestID)}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		e.Err = fmt.Errorf("%w: %w", errBodyRead, err)
	} else if len(raw) > maxBodyBytes {
		e.Err = fmt.Errorf("response body exceeds %d bytes", maxBodyBytes)
		raw = nil
	}
	var env Envelope
	var decodeErr error
	if e.Err == nil {
		decodeErr = json.Unmarshal(raw, &env)
	}
	switch {
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		if decodeErr == nil {
			e.Message = errorMessage(env.Message, raw)
		} else if e.Err == nil && len(bytes.TrimSpace(raw)) > 0 {
			// A proxy's HTML page or a truncated body: say so, but
			// never echo the body itself.
			e.Err = fmt.Errorf("decode error response: %w", decodeErr)
		}
	case e.Err != nil:
		// 2xx whose body could not be read in full.
	case decodeErr != nil:
		e.Err = fmt.Errorf("decode response: %w", decodeErr)
	case !env.Success:
		// 2xx with success=false: trust the envelope's error status
		// when it has one.
		if env.Status >= 400 {
			e.StatusCode = env.Status
		}
		e.Message = env.Message
		if e.Message == "" {
			e.Message = "request was not successful"
		}
	default:
		ok := response{status: resp.StatusCode, requestID: e.RequestID}
		d := bytes.TrimSpace(env.Data)
		switch {
		case out == nil:
			return ok, nil
		case len(d) == 0 || bytes.Equal(d, []byte("null")):
			if r.dataOptional {
				return ok, nil
			}
			e.Err = errors.New("response has no data")
		default:
			if err := json.Unmarshal(d, out); err != nil {
				e.Err = fmt.Errorf("decode response data: %w", err)
			} else {
				return ok, nil
			}
		}
	}
	e.Message = c.cleanMessage(e.Message, e.StatusCode)
	return response{}, e
}

// errorMessage returns the envelope's message or, failing that, the
// other places Planbok's clients have been seen to read one from:
// errors.message and a string error.
func errorMessage(envMessage string, raw []byte) string {
	if envMessage != "" {
		return envMessage
	}
	var alt struct {
		Errors struct {
			Message string `json:"message"`
		} `json:"errors"`
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(raw, &alt) != nil {
		return ""
	}
	if alt.Errors.Message != "" {
		return alt.Errors.Message
	}
	var s string
	if json.Unmarshal(alt.Error, &s) == nil {
		return s
	}
	return ""
}

// cleanMessage bounds Planbok's message, falls back to the status text, and
// removes the API key should a server ever echo it.
func (c *Client) cleanMessage(msg string, status int) string {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		msg = http.StatusText(status)
	}
	if c.apiKey != "" {
		msg = strings.ReplaceAll(msg, c.apiKey, "[redacted]")
	}
	if len(msg) > maxMessageBytes {
		msg = strings.ToValidUTF8(msg[:maxMessageBytes], "") + "…"
	}
	return msg
}
