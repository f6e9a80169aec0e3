package codec

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const uiOrigin = "http://127.0.0.1:8233"

func newHandlerServer(t *testing.T, c *Codec) *httptest.Server {
	t.Helper()
	h := Handler(c, HandlerOptions{
		AllowedOrigins: []string{uiOrigin},
		Authorize:      func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer ops-token" },
	})
	mux := http.NewServeMux()
	mux.Handle("/codec/", h)
	// Mounted a second time under a stripped prefix, as a reverse proxy
	// or the lead's router might do.
	mux.Handle("/ops/", http.StripPrefix("/ops", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, url string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestHandler_RoundTrip(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	srv := newHandlerServer(t, c)
	auth := map[string]string{"Authorization": "Bearer ops-token", "X-Namespace": "default", "Origin": uiOrigin}
	in := &commonpb.Payloads{Payloads: []*commonpb.Payload{plainPayload(t, "decode me for the UI")}}
	body, err := protojson.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{srv.URL + "/codec/default", srv.URL + "/ops/codec/default"} {
		t.Run(strings.TrimPrefix(base, srv.URL), func(t *testing.T) {
			resp, encBody := post(t, base+"/encode", body, auth)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("encode: got %d %s, want 200", resp.StatusCode, encBody)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != uiOrigin {
				t.Errorf("got Access-Control-Allow-Origin %q, want %q", got, uiOrigin)
			}
			if bytes.Contains(encBody, []byte("decode me")) {
				t.Error("encode answer holds plaintext")
			}
			resp, decBody := post(t, base+"/decode", encBody, auth)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("decode: got %d %s, want 200", resp.StatusCode, decBody)
			}
			var out commonpb.Payloads
			if err := protojson.Unmarshal(decBody, &out); err != nil {
				t.Fatalf("decode answer: %v", err)
			}
			if len(out.Payloads) != 1 || !proto.Equal(out.Payloads[0], in.Payloads[0]) {
				t.Errorf("got %v, want %v", out.Payloads, in.Payloads)
			}
		})
	}
}

func TestHandler_Requests(t *testing.T) {
	srv := newHandlerServer(t, mustCodec(t, mustKey(t, "k1")))
	empty := []byte(`{"payloads":[]}`)
	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		body       []byte
		wantStatus int
		wantHeader map[string]string
	}{
		{
			name: "preflight from the UI", method: http.MethodOptions, path: "/codec/default/decode",
			header: map[string]string{
				"Origin": uiOrigin, "Access-Control-Request-Method": "POST",
				"Access-Control-Request-Headers": "content-type,x-namespace,authorization",
			},
			wantStatus: http.StatusNoContent,
			wantHeader: map[string]string{
				"Access-Control-Allow-Origin":      uiOrigin,
				"Access-Control-Allow-Methods":     "POST, OPTIONS",
				"Access-Control-Allow-Headers":     "Content-Type, X-Namespace, Authorization",
				"Access-Control-Allow-Credentials": "true",
			},
		},
		{
			name: "preflight from another origin", method: http.MethodOptions, path: "/codec/default/decode",
			header:     map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
			wantStatus: http.StatusForbidden,
			wantHeader: map[string]string{"Access-Control-Allow-Origin": ""},
		},
		{
			name: "no credentials", method: http.MethodPost, path: "/codec/default/decode",
			header: map[string]string{"Origin": uiOrigin}, body: empty,
			wantStatus: http.StatusUnauthorized,
			// CORS headers still go out so the UI can read the 401.
			wantHeader: map[string]string{"Access-Control-Allow-Origin": uiOrigin},
		},
		{
			name: "wrong credentials", method: http.MethodPost, path: "/codec/default/encode",
			header: map[string]string{"Authorization": "Bearer nope"}, body: empty,
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "authorised, no origin (CLI)", method: http.MethodPost, path: "/codec/default/decode",
			header: map[string]string{"Authorization": "Bearer ops-token"}, body: empty,
			wantStatus: http.StatusOK,
			wantHeader: map[string]string{"Access-Control-Allow-Origin": ""},
		},
		{
			name: "GET is not allowed", method: http.MethodGet, path: "/codec/default/decode",
			header:     map[string]string{"Authorization": "Bearer ops-token"},
			wantStatus: http.StatusMethodNotAllowed,
		},
		{
			name: "unknown action", method: http.MethodPost, path: "/codec/default/peek",
			header: map[string]string{"Authorization": "Bearer ops-token"}, body: empty,
			wantStatus: http.StatusNotFound,
		},
		{
			name: "bad body", method: http.MethodPost, path: "/codec/default/decode",
			header: map[string]string{"Authorization": "Bearer ops-token"}, body: []byte("{"),
			wantStatus: http.StatusBadRequest,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			for k, want := range tt.wantHeader {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("got %s %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestHandler_NilAuthorizeAllows(t *testing.T) {
	srv := httptest.NewServer(Handler(mustCodec(t, mustKey(t, "k1")), HandlerOptions{}))
	defer srv.Close()
	resp, body := post(t, srv.URL+"/codec/default/encode", []byte(`{"payloads":[]}`), nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("got %d %s, want 200", resp.StatusCode, body)
	}
}

func TestHandler_UnknownKeyErrorHidesNothingSecret(t *testing.T) {
	k1 := mustKey(t, "k1")
	other := mustCodec(t, mustKey(t, "k9"))
	enc, err := other.Encode([]*commonpb.Payload{plainPayload(t, "x")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: enc})
	srv := httptest.NewServer(Handler(mustCodec(t, k1), HandlerOptions{}))
	defer srv.Close()
	resp, got := post(t, srv.URL+"/decode", body, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("got %d, want 400", resp.StatusCode)
	}
	if !bytes.Contains(got, []byte(`unknown key id "k9"`)) {
		t.Errorf("got %q, want it to name the unknown key id", got)
	}
}

// The Temporal UI sends no header of its own, only cookies: an operator
// signs in once with the token, then the cookie opens the endpoint. A
// wrong token sets no cookie.
func TestHandler_LoginCookie(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	srv := newHandlerServer(t, c)
	body := []byte(`{"payloads":[]}`)
	if resp, _ := post(t, srv.URL+"/codec/default/decode", body, map[string]string{"Cookie": CookieName + "=ops-token-guess"}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("decode with a wrong cookie: got %d, want 401", resp.StatusCode)
	}
	for token, want := range map[string]int{"wrong": http.StatusUnauthorized, "ops-token": http.StatusOK} {
		resp, err := http.PostForm(srv.URL+"/codec/login", map[string][]string{"token": {token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var cookie *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == CookieName {
				cookie = ck
			}
		}
		if resp.StatusCode != want || (want == http.StatusOK) != (cookie != nil) {
			t.Fatalf("login with %q: got %d, cookie %v; want %d", token, resp.StatusCode, cookie, want)
		}
		if cookie == nil {
			continue
		}
		if !cookie.HttpOnly {
			t.Error("cookie readable by scripts")
		}
		resp, _ = post(t, srv.URL+"/codec/default/decode", body, map[string]string{"Cookie": cookie.Name + "=" + cookie.Value, "Origin": uiOrigin})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("decode with the cookie: got %d (credentials %q), want 200 with credentials allowed", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Credentials"))
		}
	}
}
