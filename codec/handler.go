package codec

import (
	"fmt"
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
		if opts.Authorize != nil && strings.HasSuffix(r.URL.Path, "/login") {
			login(w, r, opts.Authorize)
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
		if opts.Authorize != nil {
			if r.Header.Get("Authorization") == "" {
				if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
					r.Header.Set("Authorization", "Bearer "+c.Value)
				}
			}
			if !opts.Authorize(r) {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		inner.ServeHTTP(w, r)
	})
}

// CookieName is the cookie the login page sets. The Temporal UI cannot be
// told to send a header of its own to a codec endpoint: it sends either its
// OIDC access token or, with its codec setting includeCredentials, the
// browser's cookies. So an operator signs in once per browser at
// …/codec/login with the token, and the UI's calls carry it as this cookie.
const CookieName = "custodyflows_codec"

// cookieLifetime bounds a sign-in; rotating the token ends it sooner.
const cookieLifetime = 12 * 60 * 60

const loginPage = `<!doctype html><html><head><meta charset="utf-8"><title>Codec sign-in</title></head><body>
<h1>Decode payloads in the Temporal UI</h1>
<p>%s</p>
<form method="post"><label>Codec token <input type="password" name="token" autocomplete="off" required></label>
<button type="submit">Sign in</button></form></body></html>`

// login serves the sign-in page (GET) and checks a token posted from it,
// setting the cookie on success. The token is compared by authorize, as
// the Authorization header would be.
func login(w http.ResponseWriter, r *http.Request, authorize func(*http.Request) bool) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self'")
	w.Header().Set("X-Frame-Options", "DENY")
	switch r.Method {
	case http.MethodGet:
		fmt.Fprintf(w, loginPage, "Sign in with the codec token (--codec-auth). The Temporal UI must have its codec setting &#34;include credentials&#34; on.")
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	token := r.PostFormValue("token")
	probe := &http.Request{Header: http.Header{"Authorization": {"Bearer " + token}}}
	if token == "" || !authorize(probe) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, loginPage, "That token is not accepted.")
		return
	}
	secure := r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
	c := &http.Cookie{Name: CookieName, Value: token, Path: "/", MaxAge: cookieLifetime, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}
	if secure {
		// A UI on another site may then send it too (only over https).
		c.SameSite = http.SameSiteNoneMode
	}
	http.SetCookie(w, c)
	fmt.Fprintf(w, loginPage, "Signed in: the Temporal UI in this browser can now decode payloads.")
}

func originAllowed(allowed []string, origin string) bool {
	return slices.Contains(allowed, "*") || slices.Contains(allowed, origin)
}
