package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/custodyflows/custodyflows/flow"
)

// The hostile redirect URLs an allow-list with a wildcard must refuse. Each
// would send a user somewhere else in some browser, or is a host no
// allow-list entry can mean.
func TestRedirect_HostileURLsRefused(t *testing.T) {
	p, err := newRedirectPolicy([]string{"app.example.com", "*.example.org", "*.wild.example.net"}, true)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, url string }{
		{"fullwidth solidus", "https://evil.com／.wild.example.net/"},
		{"fullwidth solidus exact", "https://evil.com／app.example.com/"},
		{"fullwidth reverse solidus", "https://evil.com＼.example.org/"},
		{"fullwidth question mark", "https://evil.com？.example.org/"},
		{"fullwidth number sign", "https://evil.com＃.example.org/"},
		{"fullwidth commercial at", "https://evil.com＠a.example.org/"},
		{"percent-encoded slash", "https://evil.com%2f.example.org/"},
		{"percent-encoded dot", "https://evil%2ecom.example.org/"},
		{"percent-encoded unicode", "https://b%C3%BCcher.example.org/"},
		{"backslash in host", `https://evil.com\.example.org/`},
		{"backslash in path", `https://app.example.com\@evil.com/`},
		{"backslash later", `https://app.example.com/a\b`},
		{"userinfo", "https://user@app.example.com/"},
		{"userinfo with password", "https://user:pw@app.example.com/"},
		{"empty userinfo", "https://@app.example.com/"},
		{"port zero", "https://app.example.com:0/"},
		{"port too big", "https://app.example.com:99999/"},
		{"port 65536", "https://app.example.com:65536/"},
		{"empty port", "https://app.example.com:/"},
		{"port zero padded", "https://app.example.com:000443/"},
		{"port zero on localhost", "http://localhost:0/"},
		{"port too big on localhost", "http://127.0.0.1:70000/"},
		{"trailing dot", "https://app.example.com./"},
		{"empty label", "https://app..example.com/"},
		{"leading dot", "https://.example.org/"},
		{"underscore", "https://a_b.example.org/"},
		{"space in host", "https://a b.example.org/"},
		{"tab", "https://app.example.com/\t"},
		{"newline", "https://app.example.com/\nx"},
		{"nul", "https://app.example.com/\x00"},
		{"bogus punycode", "https://xn--zz.example.org/"},
		{"ipv6 literal", "https://[::1]/"},
		{"ipv6 localhost in dev", "http://[::1]:3000/"},
		{"decimal ip", "https://2130706433/"},
		{"localhost lookalike", "http://localhost.evil.com/"},
		{"localhost fullwidth", "http://ｌｏｃａｌｈｏｓｔ.evil.com/"},
		{"suffix without dot", "https://evilexample.org/"},
		{"wildcard base itself", "https://example.org/"},
		{"scheme-relative", "//app.example.com/"},
		{"ftp", "ftp://app.example.com/"},
		{"javascript", "javascript://app.example.com/%0aalert(1)"},
		{"data", "data:text/html,<script>alert(1)</script>"},
		{"no host", "https:///app.example.com/"},
		{"triple slash path", "https:app.example.com/"},
		{"fragment", "https://app.example.com/#frag"},
		{"encoded fragment char in host", "https://evil.com%23.example.org/"},
		{"long label", "https://" + strings.Repeat("a", 64) + ".example.org/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			aerr := p.check(tc.url)
			if aerr == nil {
				t.Fatalf("%q: got allowed, want invalid_redirect_url", tc.url)
			}
			if aerr.code != flow.CodeInvalidRedirectURL {
				t.Fatalf("%q: got code %s, want invalid_redirect_url", tc.url, aerr.code)
			}
		})
	}
}

// Unicode host names are compared in their ASCII (IDNA) form, so an
// internationalised subdomain of an allowed domain still passes.
func TestRedirect_AllowedAfterIDNA(t *testing.T) {
	p, err := newRedirectPolicy([]string{"app.example.com", "*.example.org", "bücher.example.net"}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		"https://app.example.com/back",
		"https://APP.Example.COM/back",
		"https://app.example.com:443/back",
		"https://app.example.com:1/back",
		"https://app.example.com:65535/back",
		"https://shop.example.org/x?y=%2F",
		"https://bücher.example.org/",
		"https://xn--bcher-kva.example.org/",
		"https://xn--bcher-kva.example.net/",
		"https://BÜCHER.example.net/",
		"http://localhost:3000/back",
		"http://127.0.0.1/back",
		"https://localhost:8443/back",
	} {
		if aerr := p.check(u); aerr != nil {
			t.Errorf("%q: got %v, want allowed", u, aerr)
		}
	}
}

// Characters that IDNA maps to a dot, deletes or keeps inside a label do
// not move the host out of the allowed domain: the host compared is the one
// a browser visits, so these stay allowed under "*.example.org" and the
// ASCII form shows where the user lands.
func TestRedirect_ComparedAsTheBrowserSeesIt(t *testing.T) {
	for raw, want := range map[string]string{
		"evil．com.example.org":  "evil.com.example.org", // U+FF0E
		"evil。com.example.org":  "evil.com.example.org", // U+3002
		"evil.com∕.example.org": "evil.xn--com-",        // U+2215 stays in its label
		"evil.com⁄.example.org": "evil.xn--com-",        // U+2044
	} {
		got, err := asciiHost(raw)
		if err != nil {
			t.Errorf("%q: %v", raw, err)
			continue
		}
		if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, ".example.org") {
			t.Errorf("%q: got %q, want %q… inside .example.org", raw, got, want)
		}
	}
	got, err := asciiHost("evil.com\u200b.example.org")
	if err != nil || got != "evil.com.example.org" {
		t.Errorf("zero width space: got %q, %v, want evil.com.example.org", got, err)
	}
}

func TestRedirect_LocalhostOnlyInDev(t *testing.T) {
	p, err := newRedirectPolicy([]string{"app.example.com"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://localhost:3000/", "http://127.0.0.1/", "https://localhost/"} {
		if p.check(u) == nil {
			t.Errorf("%q allowed without the dev allowance", u)
		}
	}
}

// The allow-list itself is checked when the server is built: an entry that
// is not a plain host name, or a wildcard over a public suffix, is a
// configuration error, not a silent never-match (or always-match).
func TestRedirect_AllowListValidated(t *testing.T) {
	for _, h := range []string{
		"https://x.com/", "x.com/", "x.com:443", "user@x.com", "x.com?", "x.com#", "a b.com",
		"*", "*.", "*.*.x.com", "a.*.x.com", "x*.com", "*x.com",
		"*.com", "*.co.uk", "*.github.io",
		"evil.com／.x.com", "x%2e.com", `x\.com`, "x_y.com", "x..com", ".x.com", "x.com.", "[::1]",
		"xn--zz.com", strings.Repeat("a", 64) + ".com",
	} {
		if _, err := newRedirectPolicy([]string{h}, false); err == nil {
			t.Errorf("allow-list entry %q: got nil error", h)
		} else if !strings.Contains(err.Error(), "allowed redirect host") {
			t.Errorf("allow-list entry %q: error %q does not say which setting", h, err)
		}
	}
	for _, h := range []string{"x.com", " X.COM ", "*.x.com", "*.wild.example.net", "bücher.de", "127.0.0.1", ""} {
		if _, err := newRedirectPolicy([]string{h}, false); err != nil {
			t.Errorf("allow-list entry %q: got %v, want accepted", h, err)
		}
	}
}

// Through the route: the open redirect is a 400 now.
func TestStart_FullwidthSolidusRefused(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowedRedirectHosts = []string{"*.wild.example.net"} })
	for _, u := range []string{"https://evil.com／.wild.example.net/", "https://a.wild.example.net:0/", "https://a.wild.example.net:99999/"} {
		rec := e.api(http.MethodPost, "/v1/customers/"+customerA+"/update-pin", `{"redirectUrl":"`+u+`"}`)
		wantError(t, rec, 400, flow.CodeInvalidRedirectURL)
	}
	if len(e.tc.updateCalls()) != 0 {
		t.Error("a refused redirect reached Temporal")
	}
}
