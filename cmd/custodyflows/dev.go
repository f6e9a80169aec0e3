package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/custodyflows/custodyflows/codec"
	"github.com/custodyflows/custodyflows/demo"
	"github.com/custodyflows/custodyflows/devstack"
	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/sandbox"
	"github.com/custodyflows/custodyflows/sandbox/keys"
	"github.com/custodyflows/custodyflows/store"
	"github.com/custodyflows/custodyflows/worker"
)

// devConfig configures `custodyflows dev`.
type devConfig struct {
	DataDir          string
	HTTPAddr         string
	SandboxAddr      string
	TemporalPort     int
	UIPort           int
	APIKey           string
	ChallengeTTL     time.Duration
	PlanbokAPIKey    string
	WebhookSecret    string
	Notify           notifyConfig
	Namespace        string
	TaskQueue        string
	TemporalLogLevel string
	SandboxKDF       string
	SandboxRateLimit bool
	Log              logConfig
	Profile          profileConfig
	ExportHold       time.Duration
	Reconcile        reconcileConfig
	PollRate         float64
	WorkflowCache    int
}

func parseDevConfig(args []string, e env) (devConfig, error) {
	var c devConfig
	fs := newFlagSet("dev", e.stderr)
	fs.StringVar(&c.DataDir, "data-dir", "./.data", "holds every database, so a restart resumes where it stopped")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address of the API, the webhook intake and the codec endpoint")
	fs.StringVar(&c.SandboxAddr, "sandbox-addr", "127.0.0.1:8090", "address of the Planbok sandbox and its Gateway pages")
	fs.IntVar(&c.TemporalPort, "temporal-port", 7233, "port of the embedded Temporal frontend (gRPC)")
	fs.IntVar(&c.UIPort, "ui-port", 8233, "port of the Temporal Web UI; 0 = no UI")
	fs.StringVar(&c.APIKey, "api-key", "dev-api-key", "the API key app backends send as a Bearer token")
	fs.DurationVar(&c.ChallengeTTL, "challenge-ttl", 15*time.Minute, "the sandbox's challenge lifetime")
	fs.StringVar(&c.PlanbokAPIKey, "planbok-api-key", "dev-planbok-key", "the key the sandbox accepts and the service sends")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", "dev-webhook-secret", "shared by the sandbox's webhook sender and the intake")
	c.Notify.register(fs)
	fs.StringVar(&c.Namespace, "namespace", "default", "Temporal namespace")
	fs.StringVar(&c.TaskQueue, "task-queue", flow.DefaultTaskQueue, "Temporal task queue")
	fs.StringVar(&c.TemporalLogLevel, "temporal-log-level", "warn", "log level of the embedded Temporal server (it is noisy below warn)")
	fs.StringVar(&c.SandboxKDF, "sandbox-kdf", "default", "Argon2id cost in the sandbox: default (64 MiB, like a real Gateway) or light (fast, for tests)")
	fs.BoolVar(&c.SandboxRateLimit, "sandbox-rate-limit", true, "enforce Planbok's rate limits in the sandbox (10 POST/s, 20 GET/s)")
	c.Log.register(fs)
	c.Profile.register(fs)
	fs.DurationVar(&c.ExportHold, "export-hold", 0, "how long after a PIN reset private-key exports are refused (export_on_hold); 0 = off")
	c.Reconcile.register(fs)
	registerPollRate(fs, &c.PollRate)
	registerWorkflowCache(fs, &c.WorkflowCache)
	if err := parseFlags(fs, args, e.lookup); err != nil {
		return c, err
	}
	if c.Notify.URL != "" && c.Notify.Secret.value == "" {
		// Like the other dev-* defaults: a known secret, printed in the
		// banner, so `--notify-url` alone works on a laptop.
		c.Notify.Secret.value = devNotifySecret
	}
	return c, c.validate()
}

// devNotifySecret signs events to --notify-url in dev unless
// --notify-secret is given ("dev-notify-secret-for-local-use").
const devNotifySecret = "whsec_ZGV2LW5vdGlmeS1zZWNyZXQtZm9yLWxvY2FsLXVzZQ=="

func (c devConfig) validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	for name, v := range map[string]string{"http-addr": c.HTTPAddr, "sandbox-addr": c.SandboxAddr} {
		if err := hostPort(name, v); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TemporalPort < 0 || c.TemporalPort > 65535 {
		errs = append(errs, fmt.Errorf("--temporal-port must be 0..65535, got %d", c.TemporalPort))
	}
	if c.UIPort < 0 || c.UIPort > 65535 {
		errs = append(errs, fmt.Errorf("--ui-port must be 0..65535 (0 = no UI), got %d", c.UIPort))
	}
	for name, v := range map[string]string{"api-key": c.APIKey, "planbok-api-key": c.PlanbokAPIKey, "webhook-secret": c.WebhookSecret} {
		if v == "" {
			errs = append(errs, fmt.Errorf("--%s must not be empty", name))
		}
	}
	if err := durationAtLeast("challenge-ttl", c.ChallengeTTL, minTTL); err != nil {
		errs = append(errs, err)
	}
	if c.SandboxKDF != "default" && c.SandboxKDF != "light" {
		errs = append(errs, fmt.Errorf("--sandbox-kdf must be default or light, got %q", c.SandboxKDF))
	}
	if err := c.Notify.validate(true); err != nil {
		errs = append(errs, err)
	}
	if c.ExportHold < 0 {
		errs = append(errs, fmt.Errorf("--export-hold must not be negative (0 = off), got %s", c.ExportHold))
	}
	errs = append(errs, c.Reconcile.validate(), validatePollRate(c.PollRate), validateWorkflowCache(c.WorkflowCache), c.Profile.validate(),
		flow.CheckReadBudget(c.PollRate, c.Reconcile.Rate))
	return errors.Join(errs...)
}

func runDev(ctx context.Context, args []string, e env) error {
	cfg, err := parseDevConfig(args, e)
	if err != nil {
		return err
	}
	logger, err := cfg.Log.newLogger(e.stderr)
	if err != nil {
		return err
	}
	stopProfiles, err := cfg.Profile.start(logger)
	if err != nil {
		return err
	}
	defer stopProfiles()
	m := NewMain(cfg, logger, e.stdout)
	defer m.Close()
	if err := m.Run(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down")
	return m.Close()
}

// Main is `custodyflows dev`: every part of the product in one process,
// wired to each other. The api and worker services are the very ones the
// `api` and `worker` commands build (newAPIService, newWorkerService), on
// the embedded Temporal server and the sandbox. Tests start it on free
// ports.
type Main struct {
	cfg    devConfig
	log    *slog.Logger
	stdout io.Writer

	// URLs, set by Run.
	APIURL      string
	SandboxURL  string
	UIURL       string
	TemporalURL string

	// Parts, kept for Close and for tests.
	Store    *store.Store
	Sandbox  *sandbox.Sandbox
	Temporal *devstack.Server
	Client   client.Client

	deps       *deps
	worker     *workerService
	api        *apiService
	sandboxSrv *httpService
	listeners  []net.Listener
	closed     bool
}

// NewMain returns a Main for cfg; Run starts it.
func NewMain(cfg devConfig, logger *slog.Logger, stdout io.Writer) *Main {
	return &Main{cfg: cfg, log: logger, stdout: stdout}
}

// defaultsOf returns a config with the defaults its flags declare: dev
// starts from the same values as the `api` and `worker` commands and sets
// only what it wires differently, so a new option is wired once.
func defaultsOf[T any, P interface {
	*T
	register(*flag.FlagSet)
}]() T {
	var c T
	P(&c).register(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return c
}

// Run starts everything and returns once the API answers /readyz with 200.
// Close stops what Run started, also after a failed Run.
func (m *Main) Run(ctx context.Context) (err error) {
	cfg := m.cfg
	if err := checkWritableDir(cfg.DataDir); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}

	// Listen first: the sandbox needs the intake's URL, the UI the codec's.
	apiLn, err := m.listen("http-addr", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	sandboxLn, err := m.listen("sandbox-addr", cfg.SandboxAddr)
	if err != nil {
		return err
	}
	m.APIURL = "http://" + apiLn.Addr().String()
	m.SandboxURL = "http://" + sandboxLn.Addr().String()

	payloadKeys, err := codec.LoadOrCreateKeyFile(filepath.Join(cfg.DataDir, "payload-keys"))
	if err != nil {
		return fmt.Errorf("payload keys: %w", err)
	}

	// Before the embedded server: its system workers create the process's
	// one workflow cache, and the SDK sizes it only then.
	worker.SetWorkflowCacheSize(cfg.WorkflowCache)
	m.Temporal, err = devstack.Start(ctx, devstack.Config{
		DataDir:       cfg.DataDir,
		FrontendPort:  cfg.TemporalPort,
		UIPort:        cfg.UIPort,
		Namespace:     cfg.Namespace,
		CodecEndpoint: m.APIURL + "/codec",
		Logger:        m.log,
		LogLevel:      cfg.TemporalLogLevel,
	})
	if err != nil {
		return fmt.Errorf("start embedded Temporal: %w", err)
	}
	m.TemporalURL = m.Temporal.FrontendAddress()
	m.UIURL = m.Temporal.UIURL()

	kdf := keys.DefaultParams
	if cfg.SandboxKDF == "light" {
		kdf = keys.LightParams
	}
	m.Sandbox, err = sandbox.New(sandbox.Options{
		APIKey:        cfg.PlanbokAPIKey,
		BaseURL:       m.SandboxURL,
		DBPath:        filepath.Join(cfg.DataDir, "sandbox.db"),
		ChallengeTTL:  cfg.ChallengeTTL,
		RateLimit:     cfg.SandboxRateLimit,
		KDF:           kdf,
		WebhookURL:    m.APIURL + "/v1/webhooks/planbok",
		WebhookSecret: []byte(cfg.WebhookSecret),
		Logger:        m.log.With("component", "sandbox"),
	})
	if err != nil {
		return fmt.Errorf("start sandbox: %w", err)
	}
	m.sandboxSrv = newHTTPService("sandbox", sandboxLn, m.Sandbox, sandboxTimeouts, sandboxTimeouts.Write, m.log)
	m.sandboxSrv.Start()

	// What `api` and `worker` read from flags, dev knows.
	svc := defaultsOf[serviceConfig]()
	svc.Temporal.Address = m.TemporalURL
	svc.Temporal.Namespace = cfg.Namespace
	svc.Temporal.TaskQueue = cfg.TaskQueue
	svc.Planbok.URL = m.SandboxURL
	svc.Planbok.APIKey.value = cfg.PlanbokAPIKey
	svc.DB = filepath.Join(cfg.DataDir, "custodyflows.db")
	svc.keys = payloadKeys
	svc.Log = cfg.Log
	svc.ExportHold = cfg.ExportHold
	if m.deps, err = openDeps(ctx, svc, m.log); err != nil {
		return err
	}
	m.Store, m.Client = m.deps.store, m.deps.client

	// Without a notify URL, the app's events go to the demo's receiver so
	// the demo page shows them.
	events := cfg.Notify
	if events.URL == "" {
		events = notifyConfig{URL: m.APIURL + demo.NotifyPath, Secret: secretFlag{devNotifySecret}}
	}
	wcfg := defaultsOf[workerConfig]()
	wcfg.serviceConfig = svc
	wcfg.Notify = events
	wcfg.MetricsAddr = "" // dev serves /metrics on the API's address
	wcfg.Reconcile = cfg.Reconcile
	wcfg.PollRate = cfg.PollRate
	wcfg.WorkflowCache = cfg.WorkflowCache
	if m.worker, err = newWorkerService(wcfg, m.deps); err != nil {
		return err
	}
	if err := m.worker.Start(ctx); err != nil {
		return err
	}

	acfg := defaultsOf[apiConfig]()
	acfg.serviceConfig = svc
	acfg.APIKeys.values = []string{cfg.APIKey}
	acfg.WebhookSecrets.values = []string{cfg.WebhookSecret}
	acfg.AllowLocalhost = true
	if m.UIURL != "" {
		acfg.CodecOrigins = listFlag{m.UIURL}
	}
	// dev: the codec endpoint is open to the local UI, like the UI itself;
	// both listen on loopback only.
	acfg.codecOpen = true
	acfg.listener = apiLn
	acfg.ready = m.worker.Ready
	demoOpts := demo.Options{APIURL: m.APIURL, APIKey: cfg.APIKey, TemporalUIURL: m.UIURL, Namespace: cfg.Namespace, Logger: m.log}
	if cfg.Notify.URL == "" {
		demoOpts.NotifySecret = events.Secret.value
	} else {
		demoOpts.EventsElsewhere = cfg.Notify.URL
	}
	demoApp, err := demo.New(demoOpts)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	acfg.mount = func(h http.Handler) http.Handler { return demo.Mount(h, demoApp) }
	if m.api, err = newAPIService(acfg, m.deps); err != nil {
		return fmt.Errorf("api: %w", err)
	}
	m.api.Start()

	if err := waitReady(ctx, m.APIURL+"/readyz", 30*time.Second); err != nil {
		return err
	}
	m.printBanner()
	return nil
}

// listen opens a listener that Close closes, served or not.
func (m *Main) listen(flagName, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --%s: %w", flagName, err)
	}
	m.listeners = append(m.listeners, ln)
	return ln, nil
}

func (m *Main) printBanner() {
	ui := m.UIURL
	if ui == "" {
		ui = "(disabled: --ui-port 0)"
	}
	fmt.Fprintf(m.stdout, `custodyflows dev is ready

  Demo app      %s/demo   (click through every flow)
  API           %s   (Authorization: Bearer %s)
  Gateway       %s   (the Planbok sandbox)
  Temporal UI   %s
  Temporal      %s   (namespace %s)
  Data          %s

Try: curl -s -H 'Authorization: Bearer %s' -d '{"name":"Ada","refId":"user-1"}' %s/v1/customers
`, m.APIURL, m.APIURL, m.cfg.APIKey, m.SandboxURL, ui, m.TemporalURL, m.cfg.Namespace, m.cfg.DataDir, m.cfg.APIKey, m.APIURL)
	if m.cfg.Notify.URL != "" && m.cfg.Notify.Secret.value == devNotifySecret {
		fmt.Fprintf(m.stdout, "\nEvents for the app go to %s, signed with %s\n", m.cfg.Notify.URL, devNotifySecret)
	}
}

// Close stops everything Run started, in reverse order: the API finishes
// its requests, the worker drains its tasks, then Temporal and the
// databases stop.
func (m *Main) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	if m.api != nil {
		errs = append(errs, m.api.Shutdown())
	}
	if m.sandboxSrv != nil {
		errs = append(errs, m.sandboxSrv.Shutdown())
	}
	for _, ln := range m.listeners {
		ln.Close() // already closed when served; an unserved one still needs it
	}
	if m.worker != nil {
		m.worker.Stop()
	}
	if m.deps != nil {
		errs = append(errs, m.deps.close())
	}
	if m.Sandbox != nil {
		errs = append(errs, m.Sandbox.Close())
	}
	if m.Temporal != nil {
		errs = append(errs, m.Temporal.Stop())
	}
	return errors.Join(errs...)
}

// waitReady polls url until it answers 200.
func waitReady(ctx context.Context, url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = "status " + strconv.Itoa(resp.StatusCode)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s (%s)", limit, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
