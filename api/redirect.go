package api

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	"github.com/custodyflows/custodyflows/flow"
)

// redirectPolicy decides which redirectUrl values are allowed.
//
// Hosts are compared only in their ASCII form: IDNA (UTS #46, the Lookup
// profile that browsers' URL parsers follow) first, then every label must be
// [a-z0-9-]. Comparing the Unicode text instead let
// "https://evil.com／.wild.example.net/" (U+FF0F FULLWIDTH SOLIDUS) match
// "*.wild.example.net", and browsers map U+FF0F to "/", so the user landed
// on evil.com. Anything a browser might read differently from Go's
// url.Parse (percent-encoding or a backslash in the authority, user
// information, odd ports) is refused rather than interpreted.
type redirectPolicy struct {
	exact         map[string]bool
	suffixes      []string // ".example.com" for "*.example.com"
	localhostHTTP bool
}

const (
	maxRedirectURL = 2048
	maxHostName    = 253
	maxLabel       = 63
)

// newRedirectPolicy checks every allow-list entry: a host name (Unicode is
// converted to its ASCII form) or "*." and a host name that is not a
// public suffix ("*.com" or "*.github.io" would allow anyone's site).
func newRedirectPolicy(hosts []string, localhostHTTP bool) (redirectPolicy, error) {
	p := redirectPolicy{exact: map[string]bool{}, localhostHTTP: localhostHTTP}
	for _, entry := range hosts {
		h := strings.TrimSpace(entry)
		if h == "" {
			continue
		}
		bad := func(why string) error {
			return fmt.Errorf("api: allowed redirect host %q %s", h, why)
		}
		if strings.ContainsAny(h, "/:@?#%\\ ") {
			return p, bad("must be a host name, not a URL (no scheme, port, path or user)")
		}
		rest, wildcard := strings.CutPrefix(h, "*.")
		if strings.Contains(rest, "*") {
			return p, bad(`may only use "*." at its start`)
		}
		name, err := asciiHost(rest)
		if err != nil {
			return p, bad("is not a valid host name: " + err.Error())
		}
		if !wildcard {
			p.exact[name] = true
			continue
		}
		if suffix, _ := publicsuffix.PublicSuffix(name); suffix == name {
			return p, bad("is a wildcard over a public suffix, which would allow anyone's site")
		}
		p.suffixes = append(p.suffixes, "."+name)
	}
	return p, nil
}

// asciiHost returns the ASCII form of a host name (IDNA Lookup profile),
// or an error unless every label is 1 to 63 of [a-z0-9-] and the whole name
// at most 253 bytes. A trailing dot, an IPv6 literal, "_" and anything IDNA
// maps to a URL delimiter ("／", "．", "＠") are refused.
func asciiHost(host string) (string, error) {
	if host == "" {
		return "", fmt.Errorf("empty host")
	}
	ascii, err := idna.Lookup.ToASCII(host)
	if err != nil {
		return "", fmt.Errorf("not a valid international domain name")
	}
	if ascii == "" || len(ascii) > maxHostName {
		return "", fmt.Errorf("host name is empty or longer than %d bytes", maxHostName)
	}
	for label := range strings.SplitSeq(ascii, ".") {
		if label == "" || len(label) > maxLabel {
			return "", fmt.Errorf("host name has an empty label or one longer than %d bytes", maxLabel)
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
				return "", fmt.Errorf("host name may only hold letters, digits, hyphens and dots")
			}
		}
	}
	return ascii, nil
}

// check returns nil when raw is an allowed redirect URL, else 400
// invalid_redirect_url saying why.
func (p redirectPolicy) check(raw string) *apiError {
	bad := func(why string) *apiError { return newError(flow.CodeInvalidRedirectURL, "redirectUrl "+why+".") }
	if len(raw) > maxRedirectURL {
		return bad(fmt.Sprintf("is longer than %d characters", maxRedirectURL))
	}
	for _, r := range raw {
		if r <= 0x20 || r == 0x7f || r == '\\' || (r >= 0x80 && r <= 0x9f) {
			return bad("must not hold spaces, control characters or backslashes")
		}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" {
		return bad("must be an absolute URL")
	}
	// The authority as written, before url.Parse decoded anything in it.
	authority := raw[strings.Index(raw, "//")+2:]
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	if u.User != nil || strings.Contains(authority, "@") {
		return bad("must not carry user information")
	}
	if strings.Contains(authority, "%") {
		return bad("must not percent-encode its host")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return bad("must not have a fragment")
	}
	if strings.HasSuffix(u.Host, ":") {
		return bad("must not end its host with an empty port")
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return bad("must have a port between 1 and 65535")
		}
	}
	host, err := asciiHost(u.Hostname())
	if err != nil {
		return bad("must have a plain host name (" + err.Error() + ")")
	}
	scheme := strings.ToLower(u.Scheme)
	if p.localhostHTTP && (host == "localhost" || host == "127.0.0.1") && (scheme == "http" || scheme == "https") {
		return nil
	}
	if scheme != "https" {
		return bad("must use https")
	}
	if p.exact[host] {
		return nil
	}
	for _, suf := range p.suffixes {
		if strings.HasSuffix(host, suf) && len(host) > len(suf) {
			return nil
		}
	}
	return bad("points at a host that is not allowed")
}
