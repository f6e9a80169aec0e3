package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// planbokConfig says how to reach Planbok (or the sandbox).
type planbokConfig struct {
	URL    string
	APIKey secretFlag
}

func (p *planbokConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&p.URL, "planbok-url", "https://api.planbok.io", "Planbok API base URL (the sandbox's URL when testing)")
	fs.Var(&p.APIKey, "planbok-api-key", "Planbok API key (sent as PLANBOK-X-API-KEY); prefer the environment variable")
}

func (p planbokConfig) validate() error {
	var errs []error
	if err := absoluteURL("planbok-url", p.URL); err != nil {
		errs = append(errs, err)
	}
	if p.APIKey.value == "" {
		errs = append(errs, fmt.Errorf("--planbok-api-key is required (or %s)", envName("planbok-api-key")))
	}
	return errors.Join(errs...)
}

// absoluteURL checks that flag name holds an absolute http(s) URL.
func absoluteURL(name, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The value is not echoed: URLs may carry tokens.
		return fmt.Errorf("--%s must be an absolute http(s) URL", name)
	}
	return nil
}

// hostPort checks that flag name holds host:port.
func hostPort(name, s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("--%s must be host:port, got %q", name, s)
	}
	return nil
}

// notifyConfig says where events for the app go (API.md §4).
type notifyConfig struct {
	URL    string
	Secret secretFlag
}

func (n *notifyConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&n.URL, "notify-url", "", "URL that receives signed events for the app (none when empty)")
	fs.Var(&n.Secret, "notify-secret", "Standard Webhooks secret (whsec_<base64>) signing events for the app")
}

func (n notifyConfig) validate(required bool) error {
	if n.URL == "" {
		return nil
	}
	if err := absoluteURL("notify-url", n.URL); err != nil {
		return err
	}
	if required && !strings.HasPrefix(n.Secret.value, "whsec_") {
		return fmt.Errorf("--notify-secret (whsec_<base64>) is required with --notify-url")
	}
	return nil
}

// positive checks an integer flag.
func positive(name string, v int) error {
	if v <= 0 {
		return fmt.Errorf("--%s must be positive, got %d", name, v)
	}
	return nil
}

// minTTL is the shortest challenge lifetime the sandbox accepts: anything
// shorter leaves no time to finish a Gateway page.
const minTTL = time.Second
