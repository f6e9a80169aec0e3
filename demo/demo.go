// Package demo is the demo app that `custodyflows dev` serves at /demo: a
// small app backend and its page, so a person can click through every
// security flow on the dev stack without curl.
//
// It is built the way a real app backend would be: the page talks only to
// this package's own routes (/demo/api/…), and those call custodyflows'
// public HTTP API with the API key, which never reaches the browser. PINs,
// recovery answers and exported keys are typed and downloaded only on the
// Planbok Gateway: nothing secret passes through here. The events the app
// receives come in at /demo/notify, signed with Standard Webhooks, and the
// last few are kept in memory for the page.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary, with
// no external assets, so it works offline like the rest of dev.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

// Paths the demo serves.
const (
	// Path is the demo page.
	Path = "/demo"
	// NotifyPath receives the app's events (a notify URL).
	NotifyPath = "/demo/notify"
)

// DefaultMaxEvents is how many received events the demo keeps.
const DefaultMaxEvents = 200

// apiTimeout bounds one call to the API: a start waits for Planbok's
// challenge, which the API itself bounds at 30 s.
const apiTimeout = 35 * time.Second

// maxBody bounds request bodies from the page and responses from the API.
const maxBody = 1 << 20

//go:embed static
var static embed.FS

// Options configures the demo.
type Options struct {
	// APIURL is the base URL of custodyflows' API, called like any app
	// backend calls it.
	APIURL string
	// APIKey is the Bearer key for the API; it stays on the server.
	APIKey string
	// PublicURL is where a browser reaches the demo's server (scheme and
	// host), used for the flows' redirectUrl. Defaults to APIURL.
	PublicURL string
	// TemporalUIURL links each flow to its page in the Temporal UI; ""
	// means no UI.
	TemporalUIURL string
	// Namespace is the Temporal namespace of the links.
	Namespace string
	// NotifySecret verifies the events that come in at NotifyPath
	// ("whsec_…"); "" means the app's events go elsewhere
	// (EventsElsewhere) and NotifyPath answers 404.
	NotifySecret string
	// EventsElsewhere names where events go when NotifySecret is empty,
	// for the page to say so.
	EventsElsewhere string
	// MaxEvents is how many events are kept (DefaultMaxEvents when 0).
	MaxEvents int
	// Client calls the API (a client with apiTimeout when nil).
	Client *http.Client
	// Logger receives one line per failed API call (discarded when nil).
	Logger *slog.Logger
	// Now is the clock of the event receiver (time.Now when nil).
	Now func() time.Time
}

// App is the demo app: an http.Handler for Path and everything under it.
type App struct {
	opts   Options
	api    string // the API's base URL, without a trailing slash
	events *Receiver
	client *http.Client
	log    *slog.Logger
	mux    *http.ServeMux
}

// New returns the demo app.
func New(o Options) (*App, error) {
	api, err := url.Parse(o.APIURL)
	if err != nil || (api.Scheme != "http" && api.Scheme != "https") || api.Host == "" {
		return nil, errors.New("demo: APIURL must be an absolute http(s) URL")
	}
	if o.APIKey == "" {
		return nil, errors.New("demo: an API key is required")
	}
	if o.PublicURL == "" {
		o.PublicURL = o.APIURL
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	o.TemporalUIURL = strings.TrimRight(o.TemporalUIURL, "/")
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	a := &App{opts: o, api: strings.TrimRight(api.String(), "/"), client: o.Client, log: o.Logger}
	if a.client == nil {
		a.client = &http.Client{Timeout: apiTimeout}
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if o.NotifySecret != "" {
		if a.events, err = NewReceiver(o.NotifySecret, o.MaxEvents, o.Now); err != nil {
			return nil, err
		}
	}
	assets, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.HandleFunc("GET "+Path, a.page)
	m.HandleFunc("GET "+Path+"/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Path, http.StatusMovedPermanently)
	})
	m.Handle("GET "+Path+"/assets/", http.StripPrefix(Path+"/assets/", noStore(http.FileServerFS(assets))))
	m.HandleFunc("POST "+Path+"/api/customers", a.sameOrigin(a.createCustomer))
	m.HandleFunc("GET "+Path+"/api/customers/{customerId}", a.sameOrigin(a.customerState))
	m.HandleFunc("POST "+Path+"/api/customers/{customerId}/flows/{route}", a.sameOrigin(a.startFlow))
	m.HandleFunc("POST "+Path+"/api/flows/{flowId}/cancel", a.sameOrigin(a.cancelFlow))
	if a.events != nil {
		m.Handle("POST "+NotifyPath, a.events)
	}
	m.HandleFunc(Path+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "No demo route matches this path.")
	})
	a.mux = m
	return a, nil
}

// Mount returns a handler that serves the demo at Path and below, and
// everything else with next (the API).
func Mount(next http.Handler, a *App) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Path || strings.HasPrefix(r.URL.Path, Path+"/") {
			a.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServeHTTP implements http.Handler.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// The page loads only its own assets and talks only to its own
	// backend; the Gateway is reached by navigation, not by fetch.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	a.mux.ServeHTTP(w, r)
}

// Events returns the event receiver, or nil when events go elsewhere.
func (a *App) Events() *Receiver { return a.events }

func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

func (a *App) page(w http.ResponseWriter, r *http.Request) {
	b, err := static.ReadFile("static/index.html")
	if err != nil {
		http.Error(w, "demo page missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// sameOrigin refuses the backend routes to other sites: the routes act
// with the API key, so a page elsewhere must not drive them from the
// person's browser. A cross-site fetch with a JSON body needs a CORS
// preflight, which is never granted; a browser's Origin (or
// Sec-Fetch-Site) names the caller; and a host name that is not an IP
// address or localhost is refused, which stops DNS rebinding.
func (a *App) sameOrigin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		if host != "localhost" && net.ParseIP(strings.Trim(host, "[]")) == nil {
			writeError(w, http.StatusForbidden, "forbidden", "The demo answers only on an IP address or localhost.")
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			writeError(w, http.StatusForbidden, "forbidden", "The demo's backend answers only its own page.")
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			u, err := url.Parse(origin)
			if err != nil || u.Host != r.Host {
				writeError(w, http.StatusForbidden, "forbidden", "The demo's backend answers only its own page.")
				return
			}
		}
		if r.Method == http.MethodPost && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			writeError(w, http.StatusUnsupportedMediaType, "invalid_request", "Send JSON.")
			return
		}
		next(w, r)
	}
}

// ids the API accepts; checked here too so a path never carries anything
// else to the API.
var (
	customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	flowIDPattern     = regexp.MustCompile(`^flow_[a-z2-7]{24}$`)
)

// routes maps the API's start routes to the flow kinds the page names.
var routes = map[string]bool{
	"initialize": true, "recovery": true, "update-pin": true, "reset-pin": true,
	"export-private-keys": true, "wallets": true,
}

type createBody struct {
	Name string `json:"name"`
}

func (a *App) createCustomer(w http.ResponseWriter, r *http.Request) {
	var b createBody
	if !decode(w, r, &b) {
		return
	}
	name := strings.TrimSpace(b.Name)
	if name == "" {
		name = "Demo customer"
	}
	// A fresh refId each time: the API derives Planbok's idempotency key
	// from name and refId, and the demo wants a new customer per click.
	ref := make([]byte, 6)
	rand.Read(ref)
	a.proxy(w, r, http.MethodPost, "/v1/customers", map[string]string{"name": name, "refId": "demo-" + hex.EncodeToString(ref)})
}

type startBody struct {
	Blockchains []string `json:"blockchains,omitempty"`
}

// startFlow starts a flow with the demo page as its redirectUrl; the page
// then sends the browser to the flow's gatewayUrl.
func (a *App) startFlow(w http.ResponseWriter, r *http.Request) {
	id, route := r.PathValue("customerId"), r.PathValue("route")
	if !customerIDPattern.MatchString(id) || !routes[route] {
		writeError(w, http.StatusNotFound, "not_found", "Unknown customer or flow.")
		return
	}
	var b startBody
	if !decode(w, r, &b) {
		return
	}
	body := map[string]any{"redirectUrl": a.publicURL(r) + Path + "?customer=" + url.QueryEscape(id)}
	if route == "wallets" {
		body["blockchains"] = b.Blockchains
		if b.Blockchains == nil {
			body["blockchains"] = []string{}
		}
	}
	a.proxy(w, r, http.MethodPost, "/v1/customers/"+id+"/"+route, body)
}

func (a *App) cancelFlow(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("flowId")
	if !flowIDPattern.MatchString(id) {
		writeError(w, http.StatusNotFound, "not_found", "Unknown flow.")
		return
	}
	a.proxy(w, r, http.MethodPost, "/v1/flows/"+id+"/cancel", map[string]any{})
}

// state is what the page polls: the customer as the API shows it, its
// flows with their Temporal UI links, and the events the app received.
type state struct {
	Customer        json.RawMessage `json:"customer"`
	Flows           []flowView      `json:"flows"`
	Events          []Event         `json:"events"`
	EventsElsewhere string          `json:"eventsElsewhere,omitempty"`
	CustomerURL     string          `json:"customerWorkflowUrl,omitempty"`
	ServerTime      time.Time       `json:"serverTime"`
}

// flowView is a flow of the API with its Temporal UI link. The flow
// itself is kept as the API sent it.
type flowView struct {
	Flow        json.RawMessage `json:"flow"`
	TemporalURL string          `json:"temporalUrl,omitempty"`
}

func (a *App) customerState(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("customerId")
	if !customerIDPattern.MatchString(id) {
		writeError(w, http.StatusNotFound, "customer_not_found", "No customer has this id.")
		return
	}
	status, cust, err := a.call(r.Context(), http.MethodGet, "/v1/customers/"+id, nil)
	if err != nil {
		a.unavailable(w, err)
		return
	}
	if status != http.StatusOK {
		writeRaw(w, status, cust)
		return
	}
	status, list, err := a.call(r.Context(), http.MethodGet, "/v1/customers/"+id+"/flows?limit=20", nil)
	if err != nil {
		a.unavailable(w, err)
		return
	}
	if status != http.StatusOK {
		writeRaw(w, status, list)
		return
	}
	var flows struct {
		Flows []json.RawMessage `json:"flows"`
	}
	if err := json.Unmarshal(list, &flows); err != nil {
		a.unavailable(w, fmt.Errorf("decode flows: %w", err))
		return
	}
	st := state{Customer: cust, Flows: []flowView{}, Events: []Event{}, ServerTime: time.Now().UTC()}
	for _, f := range flows.Flows {
		var head struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(f, &head)
		st.Flows = append(st.Flows, flowView{Flow: f, TemporalURL: a.workflowURL(head.ID)})
	}
	if len(st.Flows) > 0 {
		// The customer workflow starts with the first flow.
		st.CustomerURL = a.workflowURL(flow.CustomerWorkflowID(id))
	}
	if a.events != nil {
		st.Events = a.events.ForCustomer(id)
	} else {
		st.EventsElsewhere = a.opts.EventsElsewhere
		if st.EventsElsewhere == "" {
			st.EventsElsewhere = "no notify URL"
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// publicURL is where the Gateway sends the browser back to: the address
// the person opened the demo on when it is a loopback one (dev's redirect
// allow-list takes only localhost and 127.0.0.1), else PublicURL.
func (a *App) publicURL(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	if host == "localhost" || host == "127.0.0.1" {
		return "http://" + r.Host
	}
	return a.opts.PublicURL
}

// workflowURL is a workflow's page in the Temporal UI (its latest run).
func (a *App) workflowURL(workflowID string) string {
	if a.opts.TemporalUIURL == "" || workflowID == "" {
		return ""
	}
	return a.opts.TemporalUIURL + "/namespaces/" + url.PathEscape(a.opts.Namespace) + "/workflows/" + url.PathEscape(workflowID)
}

// proxy calls the API and answers with its status and body: the API's
// answers hold nothing secret, and its error codes are what the page
// explains.
func (a *App) proxy(w http.ResponseWriter, r *http.Request, method, path string, body any) {
	status, raw, err := a.call(r.Context(), method, path, body)
	if err != nil {
		a.unavailable(w, err)
		return
	}
	writeRaw(w, status, raw)
}

// call sends one request to the API with the key.
func (a *App) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.api+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.opts.APIKey)
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, raw, nil
}

func (a *App) unavailable(w http.ResponseWriter, err error) {
	// The error may name the API's address; it goes to the log only.
	a.log.Warn("demo: API call failed", "err", err.Error())
	writeError(w, http.StatusBadGateway, "api_unavailable", "The custodyflows API did not answer; is dev still running?")
}

// decode reads a small JSON body; an empty body is an empty object.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "The body could not be read.")
		return false
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return true
	}
	if err := json.Unmarshal(raw, v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "The body is not the JSON the demo expects.")
		return false
	}
	return true
}

func writeRaw(w http.ResponseWriter, status int, raw []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(raw)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "The answer could not be encoded.")
		return
	}
	writeRaw(w, status, raw)
}

// writeError answers in the API's error shape, so the page reads one
// shape.
func writeError(w http.ResponseWriter, status int, code, message string) {
	raw, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}})
	writeRaw(w, status, raw)
}
