package codec

import (
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// HandlerOptions configures Handler.
type HandlerOptions struct {
	// AllowedOrigins lists the origins (scheme://host:port, e.g. the
	// Temporal UI's "http://127.0.0.1:8233") whose browser pages may call
	// the endpoint. "*" allows any origin; empty allows none, which still
	// serves same-origin and non-browser callers such as the temporal CLI.
	AllowedOrigins []string
	// Authorize decides whether a request may encode or decode. A nil
	// Authorize allows every request: only for dev, where the endpoint
	// listens on loopback. It is not consulted for CORS preflights, which
	// browsers send without credentials.
	Authorize func(*http.Request) bool
}

// maxBody bounds a request: the UI sends one history page of payloads at a
// time, and Temporal caps a payload at 2 MiB.
const maxBody = 16 << 20

// corsAllowHeaders are the request headers the Temporal UI sends to a
// codec endpoint.
const corsAllowHeaders = "Content-Type, X-Namespace, Authorization"

// Handler serves the remote codec protocol of the Temporal UI and CLI:
// POST …/encode and POST …/decode with a JSON Payloads body. The UI is
// configured with an endpoint such as http://host/codec/{namespace} and
// appends /decode; because only the path's suffix is matched, the handler
// works whether it is mounted with or without a prefix (for example with
// http.StripPrefix). OPTIONS answers CORS preflights for AllowedOrigins.
// A request Authorize refuses gets 401. The namespace in the path (or the
// X-Namespace header) is not consulted: one key ring serves every
// namespace, as one is configured per deployment.
func Handler(c *Codec, opts HandlerOptions) http.Handler {
	inner := converter.NewPayloadCodecHTTPHandler(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && originAllowed(opts.AllowedOrigins, origin)
		// The answer depends on Origin, so shared caches must key on it.
		w.Header().Add("Vary", "Origin")
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method == http.MethodOptions {
			if !allowed {
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if !strings.HasSuffix(r.URL.Path, "/encode") && !strings.HasSuffix(r.URL.Path, "/decode") {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if opts.Authorize != nil && !opts.Authorize(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		inner.ServeHTTP(w, r)
	})
}

func originAllowed(allowed []string, origin string) bool {
	return slices.Contains(allowed, "*") || slices.Contains(allowed, origin)
}
