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
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"golang.org/x/time/rate"

	"github.com/custodyflows/custodyflows/activities"
	"github.com/custodyflows/custodyflows/api"
	"github.com/custodyflows/custodyflows/codec"
	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/notify"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
	"github.com/custodyflows/custodyflows/worker"
)

// serviceConfig is what `api` and `worker` share: where Temporal, the app
// database and Planbok are, and the payload keys.
type serviceConfig struct {
	Temporal    temporalConfig
	Planbok     planbokConfig
	DB          string
	PayloadKeys secretFlag
	Log         logConfig
	Profile     profileConfig
	ExportHold  time.Duration

	// keys, when set, are the payload keys instead of PayloadKeys (dev
	// keeps its keys in a file in the data dir).
	keys []codec.Key
}

func (s *serviceConfig) register(fs *flag.FlagSet) {
	s.Temporal.register(fs)
	s.Planbok.register(fs)
	fs.StringVar(&s.DB, "db", "./.data/custodyflows.db", "the app database (security status, flow index, webhook inbox, audit log): a SQLite file path or a postgres:// URL")
	fs.Var(&s.PayloadKeys, "payload-keys", "payload encryption keys, id:<base64 32 bytes>[,id:…]; the first encrypts, all decrypt (rotation)")
	s.Log.register(fs)
	s.Profile.register(fs)
	fs.DurationVar(&s.ExportHold, "export-hold", flow.DefaultExportHold, "how long after a PIN reset private-key exports are refused (export_on_hold); 0 = off. Give api and worker the same value")
}

// parse finishes parsing: the Temporal SDK's variables fill what the flags
// left unset.
func (s *serviceConfig) parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if err := parseFlags(fs, args, lookup); err != nil {
		return err
	}
	return s.Temporal.applySDKEnv(fs, lookup)
}

func (s serviceConfig) validate() error {
	errs := []error{s.Temporal.validate(), s.Planbok.validate(), s.Profile.validate()}
	if s.ExportHold < 0 {
		errs = append(errs, fmt.Errorf("--export-hold must not be negative (0 = off), got %s", s.ExportHold))
	}
	if s.DB == "" {
		errs = append(errs, errors.New("--db must not be empty"))
	}
	if s.PayloadKeys.value == "" {
		errs = append(errs, fmt.Errorf("--payload-keys is required (or %s): workflow histories are encrypted", envName("payload-keys")))
	} else if _, err := codec.ParseKeys(s.PayloadKeys.value); err != nil {
		errs = append(errs, fmt.Errorf("--payload-keys: %w", err))
	}
	return errors.Join(errs...)
}

// The API's /readyz proves writes through the store's health probe.
var _ api.WriteProber = (*store.Store)(nil)

// deps are what the api and worker services of one process share: dev
// opens them once for both.
type deps struct {
	log      *slog.Logger
	store    *store.Store
	codec    *codec.Codec
	registry *prometheus.Registry
	client   client.Client
	planbok  *planbok.Client
	closers  []func() error
}

// openDeps opens the app database, the payload codec, the metrics registry
// and the Temporal client (waiting for Temporal and the namespace, see
// dialTemporal). close releases them.
func openDeps(ctx context.Context, s serviceConfig, logger *slog.Logger) (_ *deps, err error) {
	d := &deps{log: logger}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	keys := s.keys
	if keys == nil {
		if keys, err = codec.ParseKeys(s.PayloadKeys.value); err != nil {
			return nil, fmt.Errorf("--payload-keys: %w", err)
		}
	}
	if d.codec, err = codec.New(keys); err != nil {
		return nil, fmt.Errorf("--payload-keys: %w", err)
	}
	conn, err := s.Temporal.clientOptions()
	if err != nil {
		return nil, err
	}
	if err := checkDatabaseDir(s.DB); err != nil {
		return nil, err
	}
	if d.store, err = store.Open(ctx, s.DB); err != nil {
		return nil, fmt.Errorf("open app database: %w", err)
	}
	d.closers = append(d.closers, d.store.Close)
	d.registry = prometheus.NewRegistry()
	d.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sdkMetrics, metricsCloser, err := worker.NewMetricsHandler(d.registry)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	d.closers = append(d.closers, metricsCloser.Close)
	opts := worker.ClientOptions(worker.ClientConfig{
		HostPort:  s.Temporal.Address,
		Namespace: s.Temporal.Namespace,
		Codec:     d.codec,
		Logger:    logger,
		Metrics:   sdkMetrics,
	})
	// What the SDK's environment configuration adds: TLS, API key, gRPC
	// metadata, authority.
	opts.ConnectionOptions.TLS = conn.ConnectionOptions.TLS
	opts.ConnectionOptions.TLSDisabled = conn.ConnectionOptions.TLSDisabled
	opts.ConnectionOptions.Authority = conn.ConnectionOptions.Authority
	opts.Credentials = conn.Credentials
	opts.HeadersProvider = conn.HeadersProvider
	d.client, err = dialTemporal(ctx, s.Temporal, opts, logger)
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() error { d.client.Close(); return nil })
	d.planbok = planbok.New(s.Planbok.URL, s.Planbok.APIKey.value)
	return d, nil
}

// close releases the dependencies, the database last.
func (d *deps) close() error {
	var errs []error
	for i := len(d.closers) - 1; i >= 0; i-- {
		errs = append(errs, d.closers[i]())
	}
	d.closers = nil
	return errors.Join(errs...)
}

// checkDatabaseDir makes sure the directory of a SQLite database can be
// written, so a read-only or misplaced data dir is reported as what it is
// ("read-only file system", "permission denied", "not a directory") rather
// than as SQLite's "unable to open database file". URLs (postgres://) pass.
func checkDatabaseDir(db string) error {
	if db == ":memory:" || strings.Contains(db, "://") {
		return nil
	}
	if err := checkWritableDir(filepath.Dir(db)); err != nil {
		return fmt.Errorf("--db %s: %w", db, err)
	}
	return nil
}

// checkWritableDir creates dir if needed and proves a file can be created
// in it. The error names the real cause.
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create directory %s: %w", dir, causeOf(err))
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, causeOf(err))
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}

// causeOf drops the path from a *PathError, which the caller names already.
func causeOf(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// apiConfig configures `custodyflows api`; dev fills one too.
type apiConfig struct {
	serviceConfig
	HTTPAddr             string
	APIKeys              secretListFlag
	WebhookSecrets       secretListFlag
	AllowedRedirectHosts listFlag
	AllowLocalhost       bool
	CodecOrigins         listFlag
	CodecAuth            secretListFlag
	StartQuota           int
	WebhookConcurrency   int

	// Set by dev only.
	//
	// codecOpen serves the codec endpoint without a token: dev listens on
	// loopback and its embedded Temporal UI sends none.
	codecOpen bool
	// listener is the API's, opened before the service (dev hands its
	// address to the sandbox and the UI first); nil listens on HTTPAddr.
	listener net.Listener
	// ready adds a readiness check (dev: its worker runs).
	ready func(context.Context) error
	// mount adds routes of dev only (the demo app) around the API handler.
	mount func(http.Handler) http.Handler
}

// register adds the api flags, and sets their defaults, on fs.
func (c *apiConfig) register(fs *flag.FlagSet) {
	c.serviceConfig.register(fs)
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address of the API, the webhook intake and the codec endpoint")
	fs.Var(&c.APIKeys, "api-keys", "comma-separated API keys app backends send as Bearer tokens; several may be valid at once (rotation)")
	fs.Var(&c.WebhookSecrets, "webhook-secrets", "comma-separated Planbok webhook secrets; any may sign (rotation)")
	fs.Var(&c.AllowedRedirectHosts, "allowed-redirect-hosts", "comma-separated hosts a redirectUrl may point to (https only); *.example.com allows subdomains")
	fs.BoolVar(&c.AllowLocalhost, "allow-localhost-redirects", false, "also allow http://localhost and http://127.0.0.1 redirect URLs (development only)")
	fs.Var(&c.CodecOrigins, "codec-cors-origins", "comma-separated origins (the Temporal UI) allowed to call the codec endpoint")
	fs.Var(&c.CodecAuth, "codec-auth", "comma-separated tokens the codec endpoint (/codec, which decrypts histories) accepts as 'Authorization: Bearer <token>', e.g. from the temporal CLI's --codec-auth; app API keys are refused there. Without it the endpoint is off")
	fs.IntVar(&c.StartQuota, "start-quota", 20, "flow starts allowed per customer per hour")
	fs.IntVar(&c.WebhookConcurrency, "webhook-concurrency", api.DefaultWebhookConcurrency,
		"webhook intake requests in flight at most (the intake is unauthenticated until verified); past it the intake answers 503 overloaded with Retry-After")
}

func parseAPIConfig(args []string, e env) (apiConfig, error) {
	var c apiConfig
	fs := newFlagSet("api", e.stderr)
	c.register(fs)
	if err := c.parse(fs, args, e.lookup); err != nil {
		return c, err
	}
	errs := []error{c.serviceConfig.validate(), hostPort("http-addr", c.HTTPAddr), positive("start-quota", c.StartQuota),
		positive("webhook-concurrency", c.WebhookConcurrency)}
	if len(c.APIKeys.values) == 0 {
		errs = append(errs, fmt.Errorf("--api-keys is required (or %s): the API refuses to run without authentication", envName("api-keys")))
	}
	if len(c.WebhookSecrets.values) == 0 {
		errs = append(errs, fmt.Errorf("--webhook-secrets is required (or %s): unsigned webhooks are refused", envName("webhook-secrets")))
	}
	if len(c.AllowedRedirectHosts) == 0 && !c.AllowLocalhost {
		errs = append(errs, errors.New("--allowed-redirect-hosts is required: redirect URLs are checked against it so a start cannot become an open redirect"))
	}
	for _, t := range c.CodecAuth.values {
		for _, k := range c.APIKeys.values {
			if t == k {
				errs = append(errs, errors.New("--codec-auth must differ from every --api-keys value: an app's key must not open every history"))
			}
		}
	}
	return c, errors.Join(errs...)
}

func runAPI(ctx context.Context, args []string, e env) error {
	cfg, err := parseAPIConfig(args, e)
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
	d, err := openDeps(ctx, cfg.serviceConfig, logger)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for Temporal
		}
		return err
	}
	defer d.close()
	svc, err := newAPIService(cfg, d)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

// apiService is the HTTP API, the webhook intake and the codec endpoint on
// one server.
type apiService struct {
	http *httpService
	log  *slog.Logger
}

// newAPIService builds the API from cfg on d. It listens at once (on
// cfg.listener when set); Start serves.
func newAPIService(cfg apiConfig, d *deps) (*apiService, error) {
	secrets := make([][]byte, len(cfg.WebhookSecrets.values))
	for i, s := range cfg.WebhookSecrets.values {
		secrets[i] = []byte(s)
	}
	var codecHandler http.Handler
	switch {
	case cfg.codecOpen:
		codecHandler = codec.Handler(d.codec, codec.HandlerOptions{AllowedOrigins: cfg.CodecOrigins})
	case len(cfg.CodecAuth.values) > 0:
		// Its own tokens, not the app's API keys: the endpoint decrypts
		// every customer's history, which no app backend needs.
		tokens, err := api.NewKeyRing(cfg.CodecAuth.values)
		if err != nil {
			return nil, fmt.Errorf("--codec-auth: %w", err)
		}
		codecHandler = codec.Handler(d.codec, codec.HandlerOptions{AllowedOrigins: cfg.CodecOrigins, Authorize: tokens.Authorize})
	default:
		d.log.Info("codec endpoint off: set --codec-auth to let the Temporal UI or CLI decode payloads")
	}
	quota := max(cfg.StartQuota, 1)
	server, err := api.New(api.Config{
		APIKeys:              cfg.APIKeys.values,
		WebhookSecrets:       secrets,
		AllowedRedirectHosts: cfg.AllowedRedirectHosts,
		AllowLocalhostHTTP:   cfg.AllowLocalhost,
		TaskQueue:            cfg.Temporal.TaskQueue,
		Namespace:            cfg.Temporal.Namespace,
		StartQuota:           rate.Every(time.Hour / time.Duration(quota)),
		StartBurst:           quota,
		ExportHold:           cfg.ExportHold,
		WebhookConcurrency:   cfg.WebhookConcurrency,
		RequestTimeout:       api.DefaultRequestTimeout,
		Ready:                cfg.ready,
		Codec:                codecHandler,
		Registry:             d.registry,
		Logger:               d.log,
	}, d.store, d.planbok, d.client)
	if err != nil {
		return nil, err
	}
	ln := cfg.listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("listen on --http-addr: %w", err)
		}
	}
	var h http.Handler = server.Handler()
	if cfg.mount != nil {
		h = cfg.mount(h)
	}
	t := apiTimeouts(api.DefaultRequestTimeout)
	return &apiService{
		// The grace period outlasts the longest request (a start), so
		// SIGTERM lets it finish and record its audit row.
		http: newHTTPService("api", ln, h, t, t.Write+5*time.Second, d.log),
		log:  d.log,
	}, nil
}

// Addr is the address the API listens on.
func (s *apiService) Addr() string { return s.http.Addr() }

// Start serves the API.
func (s *apiService) Start() { s.http.Start() }

// Shutdown stops taking requests and returns once those in flight ended.
func (s *apiService) Shutdown() error { return s.http.Shutdown() }

// Run serves until ctx ends, then shuts down gracefully.
func (s *apiService) Run(ctx context.Context) error {
	s.Start()
	s.log.Info("api listening", "addr", s.Addr())
	select {
	case err := <-s.http.Done():
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing requests in flight")
	err := s.Shutdown()
	s.log.Info("api stopped")
	return err
}

// defaultMetricsAddr is the worker's default --metrics-addr.
const defaultMetricsAddr = "127.0.0.1:9090"

// workerConfig configures `custodyflows worker`; dev fills one too.
type workerConfig struct {
	serviceConfig
	Notify      notifyConfig
	MetricsAddr string
	Reconcile   reconcileConfig
	PollRate    float64
	Prune       pruneConfig
	// WorkflowCache is --workflow-cache (worker.SetWorkflowCacheSize).
	WorkflowCache int

	// metricsFallback lets the metrics server take a free port when
	// MetricsAddr is busy: true when the address is the default, so a
	// second worker on the same host needs no setting of its own. An
	// address someone chose is never swapped for another.
	metricsFallback bool
}

func (c *workerConfig) register(fs *flag.FlagSet) {
	c.serviceConfig.register(fs)
	c.Notify.register(fs)
	c.Reconcile.register(fs)
	registerPollRate(fs, &c.PollRate)
	registerWorkflowCache(fs, &c.WorkflowCache)
	c.Prune.register(fs)
	fs.StringVar(&c.MetricsAddr, "metrics-addr", defaultMetricsAddr, "address serving /metrics, /healthz and /readyz; empty = none. When the default is taken (another worker on this host), a free port is used and logged")
}

func parseWorkerConfig(args []string, e env) (workerConfig, error) {
	var c workerConfig
	fs := newFlagSet("worker", e.stderr)
	c.register(fs)
	if err := c.parse(fs, args, e.lookup); err != nil {
		return c, err
	}
	c.metricsFallback = !explicitlySet(fs, "metrics-addr", e.lookup)
	errs := []error{c.serviceConfig.validate(), c.Notify.validate(true), c.Reconcile.validate(), validatePollRate(c.PollRate),
		validateWorkflowCache(c.WorkflowCache), c.Prune.validate(), flow.CheckReadBudget(c.PollRate, c.Reconcile.Rate)}
	if c.MetricsAddr != "" {
		errs = append(errs, hostPort("metrics-addr", c.MetricsAddr))
	}
	return c, errors.Join(errs...)
}

func runWorker(ctx context.Context, args []string, e env) error {
	cfg, err := parseWorkerConfig(args, e)
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
	worker.SetWorkflowCacheSize(cfg.WorkflowCache) // before any worker exists
	d, err := openDeps(ctx, cfg.serviceConfig, logger)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for Temporal
		}
		return err
	}
	defer d.close()
	svc, err := newWorkerService(cfg, d)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

// workerService is the Temporal worker and, unless MetricsAddr is empty,
// its metrics and health server.
type workerService struct {
	w      sdkworker.Worker
	client client.Client
	deps   *deps
	// reconcile polls the reconciler's own, rate-limited task queue; nil
	// until Start.
	reconcile *reconciler
	// stopPruner ends the pruning loop and waits for it; nil until Start.
	stopPruner func()
	ops        *httpService
	running    atomic.Bool // read by /readyz from request goroutines
	log        *slog.Logger
	cfg        workerConfig
}

// newWorkerService builds the worker from cfg on d; Start starts it.
func newWorkerService(cfg workerConfig, d *deps) (*workerService, error) {
	acts, err := newActivities(d.planbok, d.store, cfg.Notify, d.log)
	if err != nil {
		return nil, err
	}
	acts.ExportHold = cfg.ExportHold
	w, err := worker.New(d.client, worker.Options{TaskQueue: cfg.Temporal.TaskQueue, Activities: acts, Logger: d.log,
		PollsPerSecond: cfg.PollRate})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	s := &workerService{w: w, client: d.client, deps: d, log: d.log, cfg: cfg}
	if cfg.MetricsAddr != "" {
		ln, err := listenMetrics(cfg.MetricsAddr, cfg.metricsFallback, d.log)
		if err != nil {
			return nil, err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, `{"status":"ok"}`)
		})
		mux.HandleFunc("GET /readyz", s.readyz)
		s.ops = newHTTPService("worker metrics", ln, mux, opsTimeouts, opsTimeouts.Write, d.log)
	}
	return s, nil
}

// listenMetrics listens on addr; when it is busy and fallback is allowed,
// on a free port of the same host instead.
func listenMetrics(addr string, fallback bool, logger *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if !fallback || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("listen on --metrics-addr: %w", err)
	}
	host, _, _ := net.SplitHostPort(addr)
	ln, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, fmt.Errorf("listen on --metrics-addr: %w (and on a free port: %v)", err, err2)
	}
	logger.Warn("default metrics address taken (another worker on this host?); serving metrics and health on a free port instead",
		"wanted", addr, "addr", ln.Addr().String())
	return ln, nil
}

// MetricsAddr is where /metrics, /healthz and /readyz are served ("" when
// off).
func (s *workerService) MetricsAddr() string {
	if s.ops == nil {
		return ""
	}
	return s.ops.Addr()
}

// Start starts polling, the reconciler (its worker and schedule) and
// serving metrics.
func (s *workerService) Start(ctx context.Context) error {
	if err := s.w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	rw, err := startReconciler(ctx, s.cfg.Reconcile, s.client, s.deps.planbok, s.deps.store, s.cfg.Temporal.TaskQueue, s.cfg.ExportHold, s.log)
	if err != nil {
		s.w.Stop()
		return err
	}
	s.reconcile = rw
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pruned := make(chan struct{})
	go func() {
		defer close(pruned)
		runPruner(pctx, s.cfg.Prune, s.deps.store, s.log)
	}()
	s.stopPruner = func() { cancel(); <-pruned }
	s.running.Store(true)
	if s.ops != nil {
		s.ops.Start()
	}
	s.log.Info("worker started", "temporal", s.cfg.Temporal.Address, "namespace", s.cfg.Temporal.Namespace,
		"taskQueue", s.cfg.Temporal.TaskQueue, "metrics", s.MetricsAddr())
	return nil
}

// Ready reports whether the worker runs and reaches Temporal.
func (s *workerService) Ready(ctx context.Context) error {
	if !s.running.Load() {
		return errors.New("worker not running")
	}
	if _, err := s.client.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	return nil
}

func (s *workerService) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		s.log.Warn("readiness check failed", "err", err.Error())
		writeJSON(w, http.StatusServiceUnavailable, `{"status":"unavailable","checks":{"temporal":"unavailable"}}`)
		return
	}
	writeJSON(w, http.StatusOK, `{"status":"ok","checks":{"temporal":"ok"}}`)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// Stop drains the worker's tasks, then stops the metrics server. Safe to
// call more than once.
func (s *workerService) Stop() {
	if s.running.Swap(false) {
		if s.stopPruner != nil {
			s.stopPruner()
		}
		if s.reconcile != nil {
			s.reconcile.Stop()
		}
		s.w.Stop() // waits for running activities (worker.Options.StopTimeout)
	}
	if s.ops != nil {
		s.ops.Shutdown()
	}
}

// Run starts the worker and runs until ctx ends, then stops it: activities
// in flight finish before the caller closes the database.
func (s *workerService) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	var done <-chan error
	if s.ops != nil {
		done = s.ops.Done()
	}
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		s.log.Info("shutting down: finishing tasks in flight")
	}
	s.Stop()
	s.log.Info("worker stopped")
	return err
}

// newActivities builds the worker's activities; events go to the app only
// when a notify URL is set.
func newActivities(pb *planbok.Client, st *store.Store, n notifyConfig, logger *slog.Logger) (*activities.Activities, error) {
	acts := &activities.Activities{Planbok: pb, Store: st, Now: time.Now, Logger: logger}
	if n.URL == "" {
		return acts, nil
	}
	secret, err := notify.ParseSecret(n.Secret.value)
	if err != nil {
		return nil, fmt.Errorf("--notify-secret: %w", err)
	}
	acts.Notifier = notify.New(n.URL, secret, nil)
	return acts, nil
}
