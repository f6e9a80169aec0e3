package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/custodyflows/custodyflows/flow"
)

// Defaults of the Temporal connection when neither a flag, its CUSTODYFLOWS_
// variable nor the Temporal SDK's variable sets it.
const (
	defaultTemporalAddress = "127.0.0.1:7233"
	defaultNamespace       = "default"
)

// temporalConfig says where the Temporal server is and how to reach it
// securely.
//
// Each setting is read, first found wins, from: the command-line flag, its
// CUSTODYFLOWS_ variable, then the Temporal SDK's environment configuration
// (go.temporal.io/sdk/contrib/envconfig: TEMPORAL_ADDRESS, TEMPORAL_API_KEY,
// TEMPORAL_TLS_*, …, and a TOML profile only when TEMPORAL_CONFIG_FILE names
// one). The CUSTODYFLOWS_ names win because they are this program's own; the
// TEMPORAL_ ones are shared by every Temporal tool in the environment (the
// temporal CLI in the same container, say), and are honoured so that a
// deployment configured for Temporal Cloud the SDK's way works unchanged.
// The SDK's default profile file in the user's config directory is not
// read: a server must not depend on the home directory of whoever starts it.
type temporalConfig struct {
	Address       string
	Namespace     string
	TaskQueue     string
	APIKey        secretFlag
	TLS           bool
	TLSCert       string
	TLSKey        string
	TLSCA         string
	TLSServerName string

	// sdk is what the Temporal SDK's environment configuration says; the
	// settings above already hold its values where no flag overrides them.
	sdk envconfig.ClientConfigProfile
}

func (t *temporalConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&t.Address, "temporal-address", "", "Temporal frontend host:port (default "+defaultTemporalAddress+"; also TEMPORAL_ADDRESS)")
	fs.StringVar(&t.Namespace, "namespace", "", "Temporal namespace (default "+defaultNamespace+"; also TEMPORAL_NAMESPACE)")
	fs.StringVar(&t.TaskQueue, "task-queue", flow.DefaultTaskQueue, "Temporal task queue of the worker")
	fs.Var(&t.APIKey, "temporal-api-key", "Temporal API key, e.g. Temporal Cloud's (also TEMPORAL_API_KEY); turns TLS on")
	fs.BoolVar(&t.TLS, "temporal-tls", false, "connect to Temporal over TLS with the system's roots (also TEMPORAL_TLS); implied by every other --temporal-tls-* setting and by an API key")
	fs.StringVar(&t.TLSCert, "temporal-tls-cert", "", "client certificate (PEM file) for mTLS with Temporal (also TEMPORAL_TLS_CLIENT_CERT_PATH); needs --temporal-tls-key")
	fs.StringVar(&t.TLSKey, "temporal-tls-key", "", "private key (PEM file) of --temporal-tls-cert (also TEMPORAL_TLS_CLIENT_KEY_PATH)")
	fs.StringVar(&t.TLSCA, "temporal-tls-ca", "", "CA certificate(s) (PEM file) the Temporal server's certificate must chain to, instead of the system's roots (also TEMPORAL_TLS_SERVER_CA_CERT_PATH)")
	fs.StringVar(&t.TLSServerName, "temporal-tls-server-name", "", "name the Temporal server's certificate must carry, when it is not the host of --temporal-address (also TEMPORAL_TLS_SERVER_NAME)")
}

// applySDKEnv fills every setting still unset from the Temporal SDK's
// environment configuration, then the defaults. Call it after parseFlags.
func (t *temporalConfig) applySDKEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	_, hasFile := lookup("TEMPORAL_CONFIG_FILE")
	prof, err := envconfig.LoadClientConfigProfile(envconfig.LoadClientConfigProfileOptions{
		DisableFile: !hasFile,
		EnvLookup:   sdkEnv{lookup},
	})
	if err != nil {
		return fmt.Errorf("Temporal SDK environment configuration (TEMPORAL_*): %w", err)
	}
	t.sdk = prof
	fill := func(flagName string, dst *string, v string) {
		if v != "" && !explicitlySet(fs, flagName, lookup) {
			*dst = v
		}
	}
	fill("temporal-address", &t.Address, prof.Address)
	fill("namespace", &t.Namespace, prof.Namespace)
	fill("temporal-api-key", &t.APIKey.value, prof.APIKey)
	if p := prof.TLS; p != nil {
		fill("temporal-tls-cert", &t.TLSCert, p.ClientCertPath)
		fill("temporal-tls-key", &t.TLSKey, p.ClientKeyPath)
		fill("temporal-tls-ca", &t.TLSCA, p.ServerCACertPath)
		fill("temporal-tls-server-name", &t.TLSServerName, p.ServerName)
	}
	if t.Address == "" {
		t.Address = defaultTemporalAddress
	}
	if t.Namespace == "" {
		t.Namespace = defaultNamespace
	}
	return nil
}

// sdkEnv lets envconfig read the variables through the command's lookup.
type sdkEnv struct{ lookup func(string) (string, bool) }

func (e sdkEnv) LookupEnv(key string) (string, bool) { return e.lookup(key) }

// Environ lists the process's variables the lookup agrees with (envconfig
// scans it for TEMPORAL_GRPC_META_*).
func (e sdkEnv) Environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if v, ok := e.lookup(k); ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}

func (t temporalConfig) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(t.Address); err != nil {
		errs = append(errs, fmt.Errorf("--temporal-address must be host:port, got %q", t.Address))
	}
	if t.Namespace == "" {
		errs = append(errs, errors.New("--namespace must not be empty"))
	}
	if t.TaskQueue == "" {
		errs = append(errs, errors.New("--task-queue must not be empty"))
	}
	if (t.TLSCert == "") != (t.TLSKey == "") {
		errs = append(errs, errors.New("--temporal-tls-cert (TEMPORAL_TLS_CLIENT_CERT_PATH) and --temporal-tls-key (TEMPORAL_TLS_CLIENT_KEY_PATH) go together"))
	}
	return errors.Join(errs...)
}

// profile is the SDK profile with the flags applied.
func (t temporalConfig) profile() envconfig.ClientConfigProfile {
	p := t.sdk
	p.Address, p.Namespace, p.APIKey = t.Address, t.Namespace, t.APIKey.value
	var c envconfig.ClientConfigTLS
	if p.TLS != nil {
		c = *p.TLS
	}
	c.ClientCertPath, c.ClientKeyPath, c.ServerCACertPath, c.ServerName = t.TLSCert, t.TLSKey, t.TLSCA, t.TLSServerName
	if t.TLSCert != "" { // a file named by a flag replaces PEM data from the environment
		c.ClientCertData, c.ClientKeyData = nil, nil
	}
	if t.TLSCA != "" {
		c.ServerCACertData = nil
	}
	if t.TLS {
		c.Disabled = false
	}
	if p.TLS != nil || t.TLS || t.TLSCert != "" || t.TLSCA != "" || t.TLSServerName != "" {
		p.TLS = &c
	}
	return p
}

// tlsEnabled reports whether the connection uses TLS.
func (t temporalConfig) tlsEnabled() bool {
	p := t.profile()
	if p.TLS != nil {
		return !p.TLS.Disabled
	}
	return p.APIKey != ""
}

// clientOptions turns the settings into the SDK's connection options
// (address, namespace, TLS with its certificates loaded, API key, gRPC
// metadata). Errors name the settings, never a key's content.
func (t temporalConfig) clientOptions() (client.Options, error) {
	p := t.profile()
	o, err := p.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return o, fmt.Errorf("Temporal TLS settings (--temporal-tls-cert, --temporal-tls-key, --temporal-tls-ca or their TEMPORAL_TLS_* variables): %w", err)
	}
	if c := o.ConnectionOptions.TLS; c != nil && c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return o, nil
}

// Backoff while waiting for Temporal: quick at first (a server starting
// next to us), then every 30 s so a long outage does not flood the logs.
const (
	dialFirstDelay = 500 * time.Millisecond
	dialMaxDelay   = 30 * time.Second
	dialAttempt    = 10 * time.Second
)

// dialTemporal connects to Temporal and waits until the namespace exists,
// retrying with backoff (each wait logged) while the server cannot be
// reached or the namespace is not there yet, so api and worker can start
// before Temporal does. A refused TLS handshake or credential is a mistake
// in the settings, not a server still starting: it stops at once with an
// error naming the settings to check. ctx ending stops the wait.
func dialTemporal(ctx context.Context, t temporalConfig, opts client.Options, logger *slog.Logger) (client.Client, error) {
	delay := dialFirstDelay
	for attempt := 1; ; attempt++ {
		c, err := dialOnce(ctx, t, opts)
		if err == nil {
			if attempt > 1 {
				logger.Info("connected to Temporal", "address", t.Address, "namespace", t.Namespace, "attempts", attempt)
			}
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if fatal := classifyDialError(t, err); fatal != nil {
			return nil, fatal
		}
		logger.Warn("waiting for Temporal", "address", t.Address, "namespace", t.Namespace,
			"attempt", attempt, "retry_in", delay.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, dialMaxDelay)
	}
}

// errNamespaceMissing marks a namespace the server does not know (yet).
var errNamespaceMissing = errors.New("namespace not found")

func dialOnce(ctx context.Context, t temporalConfig, opts client.Options) (client.Client, error) {
	actx, cancel := context.WithTimeout(ctx, dialAttempt)
	defer cancel()
	c, err := client.DialContext(actx, opts)
	if err != nil {
		return nil, err
	}
	// Dial checks the server, not the namespace: every call would fail with
	// NotFound until someone creates it.
	_, err = c.WorkflowService().DescribeNamespace(actx, &workflowservice.DescribeNamespaceRequest{Namespace: t.Namespace})
	if err != nil {
		c.Close()
		var nf *serviceerror.NamespaceNotFound
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: %q", errNamespaceMissing, t.Namespace)
		}
		return nil, err
	}
	return c, nil
}

// classifyDialError returns the error that stops the process for a failure
// no wait can cure, or nil when trying again makes sense.
func classifyDialError(t temporalConfig, err error) error {
	msg := err.Error()
	where := fmt.Sprintf("connect to Temporal at %s", t.Address)
	switch {
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "tls: failed to verify"):
		return fmt.Errorf("%s: the server's certificate is not trusted: check --temporal-tls-ca (TEMPORAL_TLS_SERVER_CA_CERT_PATH) and --temporal-tls-server-name (TEMPORAL_TLS_SERVER_NAME): %w", where, err)
	case strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate") ||
		strings.Contains(msg, "unknown certificate") || strings.Contains(msg, "certificate unknown"):
		return fmt.Errorf("%s: the server refused the client certificate: check --temporal-tls-cert and --temporal-tls-key (TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH): %w", where, err)
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return fmt.Errorf("%s: the server does not speak TLS: unset the --temporal-tls-* settings and the API key, or point --temporal-address at its TLS port: %w", where, err)
	case strings.Contains(msg, "tls:"):
		return fmt.Errorf("%s: TLS handshake failed: check the --temporal-tls-* settings (TEMPORAL_TLS_*): %w", where, err)
	}
	if code := status.Code(err); code == codes.Unauthenticated || code == codes.PermissionDenied {
		return fmt.Errorf("%s: refused: check --temporal-api-key (TEMPORAL_API_KEY) or the client certificate, and that it may use namespace %q: %w", where, t.Namespace, err)
	}
	return nil
}
