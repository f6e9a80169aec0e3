package sandbox

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Faults are injected failures (PUT /sandbox/v1/faults). Rates are
// probabilities from 0 to 1, drawn per request or per event. The zero
// value injects nothing. Faults live in memory: a restart clears them.
type Faults struct {
	// APIErrorRate answers Planbok routes with a random 500 or 503.
	APIErrorRate float64 `json:"apiErrorRate"`
	// APILatencyMs delays every Planbok route.
	APILatencyMs int `json:"apiLatencyMs"`
	// RateLimitRate answers Planbok routes with 429.
	RateLimitRate float64 `json:"rateLimitRate"`
	// WebhookDropRate drops events: a dropped event is never sent.
	WebhookDropRate float64 `json:"webhookDropRate"`
	// WebhookDuplicateRate sends events twice (same id and body).
	WebhookDuplicateRate float64 `json:"webhookDuplicateRate"`
	// WebhookDelayMs holds every new event back before its first attempt.
	WebhookDelayMs int `json:"webhookDelayMs"`
}

// maxFaultMs bounds the injected delays.
const maxFaultMs = 60_000

// Validate reports the first out-of-range field.
func (f Faults) Validate() error {
	rates := []struct {
		name string
		v    float64
	}{
		{"apiErrorRate", f.APIErrorRate}, {"rateLimitRate", f.RateLimitRate},
		{"webhookDropRate", f.WebhookDropRate}, {"webhookDuplicateRate", f.WebhookDuplicateRate},
	}
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) {
			return fmt.Errorf("%s must be between 0 and 1", r.name)
		}
	}
	if f.APILatencyMs < 0 || f.APILatencyMs > maxFaultMs {
		return fmt.Errorf("apiLatencyMs must be between 0 and %d", maxFaultMs)
	}
	if f.WebhookDelayMs < 0 || f.WebhookDelayMs > maxFaultMs {
		return fmt.Errorf("webhookDelayMs must be between 0 and %d", maxFaultMs)
	}
	return nil
}

func (s *Sandbox) currentFaults() Faults {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	return s.faults
}

func (s *Sandbox) setFaults(f Faults) {
	s.faultsMu.Lock()
	s.faults = f
	s.faultsMu.Unlock()
}

// Planbok's documented limits per organisation (here: per API key).
const (
	postPerSecond = 10
	getPerSecond  = 20
)

// limiters are the per-key token buckets, driven by the sandbox clock.
type limiters struct {
	mu   sync.Mutex
	post map[string]*rate.Limiter
	get  map[string]*rate.Limiter
}

func newLimiters() *limiters {
	return &limiters{post: map[string]*rate.Limiter{}, get: map[string]*rate.Limiter{}}
}

// allow takes a token for a request of method by key at now. Writes count
// against the POST limit, reads against the GET limit.
func (l *limiters) allow(key, method string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, r := l.post, postPerSecond
	if method == http.MethodGet || method == http.MethodHead {
		m, r = l.get, getPerSecond
	}
	lim := m[key]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(r), r)
		m[key] = lim
	}
	return lim.AllowN(now, 1)
}
