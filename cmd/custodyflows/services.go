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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
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
	ExportHold  time.Duration
}

func (s *serviceConfig) register(fs *flag.FlagSet) {
	s.Temporal.register(fs)
	s.Planbok.register(fs)
	fs.StringVar(&s.DB, "db", "./.data/custodyflows.db", "path of the app's SQLite database (security status, flow index, webhook inbox, audit log)")
	fs.Var(&s.PayloadKeys, "payload-keys", "payload encryption keys, id:<base64 32 bytes>[,id:…]; the first encrypts, all decrypt (rotation)")
	s.Log.register(fs)
	fs.DurationVar(&s.ExportHold, "export-hold", flow.DefaultExportHold, "how long after a PIN reset private-key exports are refused (export_on_hold); 0 = off. Give api and worker the same value")
}

func (s serviceConfig) validate() error {
	errs := []error{s.Temporal.validate(), s.Planbok.validate()}
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

// common opens what both services need: logger, store, codec, metrics
// registry and a Temporal client. close releases them.
type common struct {
	log      *slog.Logger
	store    *store.Store
	codec    *codec.Codec
	registry *prometheus.Registry
	client   client.Client
	planbok  *planbok.Client
	closers  []func() error
}

func openCommon(ctx context.Context, s serviceConfig, stderr io.Writer) (*common, error) {
	c := &common{}
	var err error
	if c.log, err = s.Log.newLogger(stderr); err != nil {
		return nil, err
	}
	keyring, err := codec.ParseKeys(s.PayloadKeys.value)
	if err != nil {
		return nil, fmt.Errorf("--payload-keys: %w", err)
	}
	if c.codec, err = codec.New(keyring); err != nil {
		return nil, fmt.Errorf("--payload-keys: %w", err)
	}
	if c.store, err = store.Open(ctx, s.DB); err != nil {
		return nil, fmt.Errorf("open app database: %w", err)
	}
	c.closers = append(c.closers, c.store.Close)
	c.registry = prometheus.NewRegistry()
	c.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sdkMetrics, metricsCloser, err := worker.NewMetricsHandler(c.registry)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("metrics: %w", err)
	}
	c.closers = append(c.closers, metricsCloser.Close)
	c.client, err = client.DialContext(ctx, worker.ClientOptions(worker.ClientConfig{
		HostPort:  s.Temporal.Address,
		Namespace: s.Temporal.Namespace,
		Codec:     c.codec,
		Logger:    c.log,
		Metrics:   sdkMetrics,
	}))
	if err != nil {
		c.close()
		return nil, fmt.Errorf("connect to Temporal at %s: %w", s.Temporal.Address, err)
	}
	c.closers = append(c.closers, func() error { c.client.Close(); return nil })
	c.planbok = planbok.New(s.Planbok.URL, s.Planbok.APIKey.value)
	return c, nil
}

func (c *common) close() error {
	var errs []error
	for i := len(c.closers) - 1; i >= 0; i-- {
		errs = append(errs, c.closers[i]())
	}
	c.closers = nil
	return errors.Join(errs...)
}

// apiConfig configures `custodyflows api`.
type apiConfig struct {
	serviceConfig
	HTTPAddr             string
	APIKeys              secretListFlag
	WebhookSecrets       secretListFlag
	AllowedRedirectHosts listFlag
	AllowLocalhost       bool
	CodecOrigins         listFlag
	StartQuota           int
}

func parseAPIConfig(args []string, e env) (apiConfig, error) {
	var c apiConfig
	fs := newFlagSet("api", e.stderr)
	c.serviceConfig.register(fs)
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address of the API, the webhook intake and the codec endpoint")
	fs.Var(&c.APIKeys, "api-keys", "comma-separated API keys app backends send as Bearer tokens; several may be valid at once (rotation)")
	fs.Var(&c.WebhookSecrets, "webhook-secrets", "comma-separated Planbok webhook secrets; any may sign (rotation)")
	fs.Var(&c.AllowedRedirectHosts, "allowed-redirect-hosts", "comma-separated hosts a redirectUrl may point to (https only); *.example.com allows subdomains")
	fs.BoolVar(&c.AllowLocalhost, "allow-localhost-redirects", false, "also allow http://localhost and http://127.0.0.1 redirect URLs (development only)")
	fs.Var(&c.CodecOrigins, "codec-cors-origins", "comma-separated origins (the Temporal UI) allowed to call the codec endpoint")
	fs.IntVar(&c.StartQuota, "start-quota", 20, "flow starts allowed per customer per hour")
	if err := parseFlags(fs, args, e.lookup); err != nil {
		return c, err
	}
	errs := []error{c.serviceConfig.validate(), hostPort("http-addr", c.HTTPAddr), positive("start-quota", c.StartQuota)}
	if len(c.APIKeys.values) == 0 {
		errs = append(errs, fmt.Errorf("--api-keys is required (or %s): the API refuses to run without authentication", envName("api-keys")))
	}
	if len(c.WebhookSecrets.values) == 0 {
		errs = append(errs, fmt.Errorf("--webhook-secrets is required (or %s): unsigned webhooks are refused", envName("webhook-secrets")))
	}
	if len(c.AllowedRedirectHosts) == 0 && !c.AllowLocalhost {
		errs = append(errs, errors.New("--allowed-redirect-hosts is required: redirect URLs are checked against it so a start cannot become an open redirect"))
	}
	return c, errors.Join(errs...)
}

func runAPI(ctx context.Context, args []string, e env) error {
	cfg, err := parseAPIConfig(args, e)
	if err != nil {
		return err
	}
	c, err := openCommon(ctx, cfg.serviceConfig, e.stderr)
	if err != nil {
		return err
	}
	defer c.close()
	keys, err := api.NewKeyRing(cfg.APIKeys.values)
	if err != nil {
		return err
	}
	secrets := make([][]byte, len(cfg.WebhookSecrets.values))
	for i, s := range cfg.WebhookSecrets.values {
		secrets[i] = []byte(s)
	}
	server, err := api.New(api.Config{
		APIKeys:              cfg.APIKeys.values,
		WebhookSecrets:       secrets,
		AllowedRedirectHosts: cfg.AllowedRedirectHosts,
		AllowLocalhostHTTP:   cfg.AllowLocalhost,
		TaskQueue:            cfg.Temporal.TaskQueue,
		Namespace:            cfg.Temporal.Namespace,
		StartQuota:           rate.Every(time.Hour / time.Duration(cfg.StartQuota)),
		StartBurst:           cfg.StartQuota,
		ExportHold:           cfg.ExportHold,
		Codec: codec.Handler(c.codec, codec.HandlerOptions{
			AllowedOrigins: cfg.CodecOrigins,
			// It decrypts histories: the same keys as the API.
			Authorize: keys.Authorize,
		}),
		Registry: c.registry,
		Logger:   c.log,
	}, c.store, c.planbok, c.client)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr: %w", err)
	}
	c.log.Info("api listening", "addr", ln.Addr().String(), "temporal", cfg.Temporal.Address, "namespace", cfg.Temporal.Namespace)
	return serveUntilDone(ctx, ln, server.Handler(), c.log)
}

// workerConfig configures `custodyflows worker`.
type workerConfig struct {
	serviceConfig
	Notify      notifyConfig
	MetricsAddr string
}

func parseWorkerConfig(args []string, e env) (workerConfig, error) {
	var c workerConfig
	fs := newFlagSet("worker", e.stderr)
	c.serviceConfig.register(fs)
	c.Notify.register(fs)
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "127.0.0.1:9090", "address serving /metrics and /healthz; empty = none")
	if err := parseFlags(fs, args, e.lookup); err != nil {
		return c, err
	}
	errs := []error{c.serviceConfig.validate(), c.Notify.validate(true)}
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
	c, err := openCommon(ctx, cfg.serviceConfig, e.stderr)
	if err != nil {
		return err
	}
	defer c.close()
	acts, err := newActivities(c.planbok, c.store, cfg.Notify, c.log)
	if err != nil {
		return err
	}
	acts.ExportHold = cfg.ExportHold
	w, err := worker.New(c.client, worker.Options{TaskQueue: cfg.Temporal.TaskQueue, Activities: acts, Logger: c.log})
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop() // drains in-flight tasks
	c.log.Info("worker started", "temporal", cfg.Temporal.Address, "namespace", cfg.Temporal.Namespace, "taskQueue", cfg.Temporal.TaskQueue)
	if cfg.MetricsAddr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen on --metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	return serveUntilDone(ctx, ln, mux, c.log)
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
