package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
// CUSTODYFLOWS_ variable, then the variable of the Temporal SDK's
// environment configuration (TEMPORAL_ADDRESS, TEMPORAL_API_KEY, …). The
// CUSTODYFLOWS_ names win because they are this program's own; the TEMPORAL_
// ones are shared by every Temporal tool in the environment (the temporal CLI
// in the same container, say), and are honoured so that a deployment
// configured for Temporal Cloud the SDK way works unchanged. The SDK's TOML
// profile files are not read: a server must not depend on the home directory
// of whoever starts it.
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
}

// temporalEnv maps each flag to the Temporal SDK variable it falls back to.
var temporalEnv = []struct{ flag, sdkVar string }{
	{"temporal-address", "TEMPORAL_ADDRESS"},
	{"namespace", "TEMPORAL_NAMESPACE"},
	{"temporal-api-key", "TEMPORAL_API_KEY"},
	{"temporal-tls", "TEMPORAL_TLS"},
	{"temporal-tls-cert", "TEMPORAL_TLS_CLIENT_CERT_PATH"},
	{"temporal-tls-key", "TEMPORAL_TLS_CLIENT_KEY_PATH"},
	{"temporal-tls-ca", "TEMPORAL_TLS_SERVER_CA_CERT_PATH"},
	{"temporal-tls-server-name", "TEMPORAL_TLS_SERVER_NAME"},
}

// sdkVar is the Temporal SDK variable flag name falls back to ("" if none).
func sdkVar(name string) string {
	for _, e := range temporalEnv {
		if e.flag == name {
			return e.sdkVar
		}
	}
	return ""
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
// variables, then the defaults. Call it after parseFlags.
func (t *temporalConfig) applySDKEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	for _, e := range temporalEnv {
		if explicitlySet(fs, e.flag, lookup) {
			continue
		}
		v, ok := lookup(e.sdkVar)
		if !ok || v == "" {
			continue
		}
		if err := fs.Set(e.flag, v); err != nil {
			errs = append(errs, fmt.Errorf("invalid value in %s", e.sdkVar))
		}
	}
	if t.Address == "" {
		t.Address = defaultTemporalAddress
	}
	if t.Namespace == "" {
		t.Namespace = defaultNamespace
	}
	return errors.Join(errs...)
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

// tlsEnabled reports whether the connection uses TLS.
func (t temporalConfig) tlsEnabled() bool {
	return t.TLS || t.TLSCert != "" || t.TLSCA != "" || t.TLSServerName != "" || t.APIKey.value != ""
}

// tlsConfig loads the certificates; nil when TLS is off. Errors name the
// setting and the file, never a key's content.
func (t temporalConfig) tlsConfig() (*tls.Config, error) {
	if !t.tlsEnabled() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.TLSServerName}
	if t.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(t.TLSCert, t.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--temporal-tls-cert %s / --temporal-tls-key %s (TEMPORAL_TLS_CLIENT_CERT_PATH / TEMPORAL_TLS_CLIENT_KEY_PATH): %w", t.TLSCert, t.TLSKey, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if t.TLSCA != "" {
		pem, err := os.ReadFile(t.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("--temporal-tls-ca (TEMPORAL_TLS_SERVER_CA_CERT_PATH): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--temporal-tls-ca %s (TEMPORAL_TLS_SERVER_CA_CERT_PATH): no PEM certificate in the file", t.TLSCA)
		}
		c.RootCAs = pool
	}
	return c, nil
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
