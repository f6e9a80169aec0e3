package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/custodyflows/custodyflows/sandbox"
	"github.com/custodyflows/custodyflows/sandbox/keys"
)

// sandboxConfig configures `custodyflows sandbox`.
type sandboxConfig struct {
	Addr          string
	BaseURL       string
	DataDir       string
	APIKey        secretFlag
	ChallengeTTL  time.Duration
	WebhookURL    string
	WebhookSecret secretFlag
	RateLimit     bool
	KDF           string
	Log           logConfig
}

func parseSandboxConfig(args []string, e env) (sandboxConfig, error) {
	c := sandboxConfig{APIKey: secretFlag{"dev-planbok-key"}, WebhookSecret: secretFlag{"dev-webhook-secret"}}
	fs := newFlagSet("sandbox", e.stderr)
	fs.StringVar(&c.Addr, "sandbox-addr", "127.0.0.1:8090", "address to serve the sandbox and its Gateway on")
	fs.StringVar(&c.BaseURL, "base-url", "", "public URL of the sandbox, used in Gateway links (default http://<sandbox-addr>)")
	fs.StringVar(&c.DataDir, "data-dir", "./.data", "holds sandbox.db, so a restart keeps customers, wallets and open challenges")
	fs.Var(&c.APIKey, "planbok-api-key", "the PLANBOK-X-API-KEY the sandbox accepts (default dev-planbok-key)")
	fs.DurationVar(&c.ChallengeTTL, "challenge-ttl", 15*time.Minute, "challenge lifetime")
	fs.StringVar(&c.WebhookURL, "webhook-url", "", "where the sandbox sends signed webhooks (none when empty)")
	fs.Var(&c.WebhookSecret, "webhook-secret", "secret signing the sandbox's webhooks (default dev-webhook-secret)")
	fs.BoolVar(&c.RateLimit, "rate-limit", true, "enforce Planbok's rate limits (10 POST/s, 20 GET/s per key)")
	fs.StringVar(&c.KDF, "kdf", "default", "Argon2id cost: default or light (fast, for tests)")
	c.Log.register(fs)
	if err := parseFlags(fs, args, e.lookup); err != nil {
		return c, err
	}
	var errs []error
	if err := hostPort("sandbox-addr", c.Addr); err != nil {
		errs = append(errs, err)
	}
	if c.BaseURL != "" {
		if err := absoluteURL("base-url", c.BaseURL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.WebhookURL != "" {
		if err := absoluteURL("webhook-url", c.WebhookURL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.APIKey.value == "" {
		errs = append(errs, errors.New("--planbok-api-key must not be empty"))
	}
	if err := durationAtLeast("challenge-ttl", c.ChallengeTTL, minTTL); err != nil {
		errs = append(errs, err)
	}
	if c.KDF != "default" && c.KDF != "light" {
		errs = append(errs, fmt.Errorf("--kdf must be default or light, got %q", c.KDF))
	}
	return c, errors.Join(errs...)
}

func runSandbox(ctx context.Context, args []string, e env) error {
	cfg, err := parseSandboxConfig(args, e)
	if err != nil {
		return err
	}
	logger, err := cfg.Log.newLogger(e.stderr)
	if err != nil {
		return err
	}
	if err := checkWritableDir(cfg.DataDir); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on --sandbox-addr: %w", err)
	}
	base := cfg.BaseURL
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	kdf := keys.DefaultParams
	if cfg.KDF == "light" {
		kdf = keys.LightParams
	}
	sb, err := sandbox.New(sandbox.Options{
		APIKey:        cfg.APIKey.value,
		BaseURL:       base,
		DBPath:        filepath.Join(cfg.DataDir, "sandbox.db"),
		ChallengeTTL:  cfg.ChallengeTTL,
		RateLimit:     cfg.RateLimit,
		KDF:           kdf,
		WebhookURL:    cfg.WebhookURL,
		WebhookSecret: []byte(cfg.WebhookSecret.value),
		Logger:        logger,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("start sandbox: %w", err)
	}
	defer sb.Close()
	fmt.Fprintf(e.stdout, "Planbok sandbox on %s (Planbok API under /v2, Gateway pages under /gateway, test helpers under /sandbox/v1)\n", base)
	srv := newHTTPService("sandbox", ln, sb, sandboxTimeouts, sandboxTimeouts.Write, logger)
	srv.Start()
	select {
	case err := <-srv.Done():
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	return srv.Shutdown()
}
