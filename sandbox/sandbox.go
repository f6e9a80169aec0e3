// Package sandbox is an offline Planbok: the v2 Customer Custody routes
// custodyflows uses, a Gateway that serves the PIN pages, a signed webhook
// sender and test helpers, all backed by real cryptography (package keys)
// and a SQLite file so a restart keeps every customer, wallet and open
// challenge. README.md says what is simulated, what is guessed and what is
// left out.
//
// *Sandbox is an http.Handler:
//
//	/v2/...          Planbok's API (PLANBOK-X-API-KEY, envelope, rate limits, faults)
//	/gateway/...     the Gateway pages a challenge's redirectUrl points at
//	/sandbox/v1/...  test helpers (same API key; no faults, no rate limits)
package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/custodyflows/custodyflows/sandbox/keys"
)

// HeaderAPIKey is the header Planbok reads the API key from.
const HeaderAPIKey = "PLANBOK-X-API-KEY"

// DefaultChallengeTTL is Planbok's documented challenge lifetime.
const DefaultChallengeTTL = 15 * time.Minute

// MaxPINAttempts is how many wrong PINs in a row lock a customer out.
const MaxPINAttempts = 5

// maxBody bounds every request body.
const maxBody = 1 << 20

// Options configures a Sandbox. Only APIKey is required.
type Options struct {
	// APIKey is the PLANBOK-X-API-KEY value the sandbox accepts.
	APIKey string
	// BaseURL is the sandbox's public base URL; Gateway URLs are built
	// under it. Empty: taken from each request's Host.
	BaseURL string
	// DBPath is the SQLite file holding all state; "" keeps it in memory.
	// It and the files SQLite makes beside it are 0600. The key that wraps
	// the secrets in it is kept apart, in DBPath + ".key" (0600, made on
	// first use), so the database file alone reveals no secret.
	DBPath string
	// ChallengeTTL is a challenge's lifetime (default 15m).
	ChallengeTTL time.Duration
	// Clock is the time source for expiry, timestamps, rate limits and
	// webhook scheduling (default time.Now).
	Clock func() time.Time
	// RateLimit turns on Planbok's limits: 10 POST/s and 20 GET/s per key.
	RateLimit bool
	// KDF is the Argon2id cost of sealing shares (default keys.DefaultParams).
	KDF keys.Params
	// WebhookURL receives the webhooks; "" sends none.
	WebhookURL string
	// WebhookSecret signs the webhooks.
	WebhookSecret []byte
	// WebhookClient sends the webhooks (default: 10 s timeout).
	WebhookClient *http.Client
	// Logger receives operational logs; never PINs, keys or codes.
	Logger *slog.Logger

	// Rand is the source of secrets, salts and ids (default crypto/rand).
	Rand io.Reader
	// FaultRand draws the numbers in [0,1) that decide injected faults
	// (default math/rand/v2).
	FaultRand func() float64
	// WebhookRetryPoll is how often the sender looks for due retries
	// (default 200ms, real time); new events wake it at once.
	WebhookRetryPoll time.Duration
}

// Sandbox is the offline Planbok. Create it with New; it is an
// http.Handler; Close stops the webhook sender and closes the database.
type Sandbox struct {
	opts   Options
	log    *slog.Logger
	db     *db
	mux    *http.ServeMux
	secret []byte        // CSRF tokens for the Gateway
	wrap   *keys.Wrapper // secrets at rest (atrest.go)

	idemMu sync.Mutex // serialises idempotent POSTs

	custMu    sync.Mutex
	custLocks map[string]*custLock

	faultsMu sync.Mutex
	faults   Faults

	limits *limiters

	stop     context.CancelFunc
	stopCtx  context.Context
	wake     chan struct{}
	senderWG sync.WaitGroup
	closeMu  sync.Once
}

// New opens (or creates) the sandbox's database and starts its webhook
// sender.
func New(opts Options) (*Sandbox, error) {
	if opts.APIKey == "" {
		return nil, errors.New("sandbox: an API key is required")
	}
	if opts.ChallengeTTL <= 0 {
		opts.ChallengeTTL = DefaultChallengeTTL
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.KDF == (keys.Params{}) {
		opts.KDF = keys.DefaultParams
	}
	if opts.WebhookClient == nil {
		opts.WebhookClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.FaultRand == nil {
		opts.FaultRand = mrand.Float64
	}
	if opts.WebhookRetryPoll <= 0 {
		opts.WebhookRetryPoll = 200 * time.Millisecond
	}
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")

	d, err := openDB(opts.DBPath)
	if err != nil {
		return nil, err
	}
	s := &Sandbox{
		opts:      opts,
		log:       opts.Logger,
		db:        d,
		custLocks: map[string]*custLock{},
		limits:    newLimiters(),
		wake:      make(chan struct{}, 1),
	}
	s.secret, err = d.secret(opts.Rand)
	if err != nil {
		d.close()
		return nil, err
	}
	key, err := storageKey(d, opts.DBPath, opts.Rand)
	if err == nil {
		s.wrap, err = keys.NewWrapper(key, opts.Rand)
		clear(key)
	}
	if err == nil {
		err = d.useStorageKey(s.wrap)
	}
	if err != nil {
		d.close()
		return nil, err
	}
	s.routes()
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	if opts.WebhookURL != "" {
		s.senderWG.Add(1)
		go s.runSender()
	}
	return s, nil
}

// Close stops the webhook sender and closes the database. Undelivered
// webhooks stay in the outbox and are sent after the next New. Shut the
// HTTP server down first: requests after Close fail.
func (s *Sandbox) Close() error {
	var err error
	s.closeMu.Do(func() {
		s.stop()
		s.senderWG.Wait()
		err = s.db.close()
	})
	return err
}

// ServeHTTP serves the Planbok API, the Gateway and the test helpers.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	s.mux.ServeHTTP(w, r)
}

func (s *Sandbox) routes() {
	m := http.NewServeMux()
	api := func(pattern string, h http.HandlerFunc) { m.Handle(pattern, s.planbokRoute(h)) }
	api("POST /v2/customers", s.idempotent(s.createCustomer))
	api("GET /v2/customers", s.listCustomers)
	api("GET /v2/customers/{id}", s.getCustomer)
	for _, t := range challengeRoutes {
		api("POST /v2/customers/{id}/"+string(t.task), s.idempotent(s.createChallenge(t)))
	}
	api("GET /v2/customers/{id}/challenges/{challengeId}", s.getChallenge)
	api("GET /v2/wallets", s.listWallets)
	api("/v2/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Route not found: "+r.Method+" "+r.URL.Path)
	})

	helper := func(pattern string, h http.HandlerFunc) { m.Handle(pattern, s.authed(h)) }
	helper("POST /sandbox/v1/challenges/{challengeId}/complete", s.helperComplete)
	helper("GET /sandbox/v1/customers/{id}/email-code", s.helperEmailCode)
	helper("POST /sandbox/v1/customers/{id}/external-flow", s.helperExternalFlow)
	helper("PUT /sandbox/v1/faults", s.helperSetFaults)
	helper("GET /sandbox/v1/faults", s.helperGetFaults)
	helper("/sandbox/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Route not found: "+r.Method+" "+r.URL.Path)
	})

	m.HandleFunc("GET /gateway/challenges/{challengeId}", s.gatewayPage)
	m.HandleFunc("POST /gateway/challenges/{challengeId}", s.gatewaySubmit)
	m.HandleFunc("GET /gateway/challenges/{challengeId}/return", s.gatewayReturn)
	m.HandleFunc("GET /gateway/{$}", s.gatewayIndex)
	m.HandleFunc("GET /{$}", s.gatewayIndex)
	s.mux = m
}

// authed checks the API key (401 otherwise).
func (s *Sandbox) authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(HeaderAPIKey)
		if key == "" || subtle.ConstantTimeCompare([]byte(key), []byte(s.opts.APIKey)) != 1 {
			writeError(w, http.StatusUnauthorized, "Invalid or missing API key")
			return
		}
		next(w, r)
	}
}

// planbokRoute wraps a Planbok route: auth, then rate limits, then the
// injected faults.
func (s *Sandbox) planbokRoute(next http.HandlerFunc) http.Handler {
	return s.authed(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.RateLimit && !s.limits.allow(r.Header.Get(HeaderAPIKey), r.Method, s.now()) {
			writeError(w, http.StatusTooManyRequests, "Too many requests, please slow down")
			return
		}
		f := s.currentFaults()
		if f.APILatencyMs > 0 {
			t := time.NewTimer(time.Duration(f.APILatencyMs) * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.RateLimitRate > 0 && s.opts.FaultRand() < f.RateLimitRate {
			writeError(w, http.StatusTooManyRequests, "Too many requests, please slow down")
			return
		}
		if f.APIErrorRate > 0 && s.opts.FaultRand() < f.APIErrorRate {
			if s.opts.FaultRand() < 0.5 {
				writeError(w, http.StatusInternalServerError, "Internal server error")
			} else {
				writeError(w, http.StatusServiceUnavailable, "Service temporarily unavailable")
			}
			return
		}
		next(w, r)
	})
}

// now is the injected clock, in UTC and millisecond precision like
// Planbok's JSON timestamps.
func (s *Sandbox) now() time.Time { return s.opts.Clock().UTC().Truncate(time.Millisecond) }

// custLock serialises the state changes of one customer (challenge
// creation and completion), so the slow key derivation of one customer
// never blocks another.
type custLock struct {
	mu   sync.Mutex
	refs int
}

func (s *Sandbox) lockCustomer(id string) func() {
	s.custMu.Lock()
	l := s.custLocks[id]
	if l == nil {
		l = &custLock{}
		s.custLocks[id] = l
	}
	l.refs++
	s.custMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.custMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.custLocks, id)
		}
		s.custMu.Unlock()
	}
}

// gatewayURL is the Gateway page of a challenge.
func (s *Sandbox) gatewayURL(r *http.Request, challengeID string) string {
	base := s.opts.BaseURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return fmt.Sprintf("%s/gateway/challenges/%s", base, challengeID)
}
