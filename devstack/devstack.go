// Package devstack runs an embedded Temporal server (all four services in one
// process, loopback only, SQLite file or PostgreSQL) and the Temporal Web UI,
// for `custodyflows dev` and tests.
//
// With Config.Postgres the server keeps its state in two PostgreSQL
// databases (history and visibility) through the server's own postgres12
// persistence plugin, their schema set up by the server's own schema tool,
// as temporal-sql-tool does it: the shape of a self-hosted cluster, for the
// cluster test. devstack/devtemporal runs it as a process of its own.
//
// State lives in <DataDir>/temporal.db (history) and
// <DataDir>/temporal-visibility.db (what workflow lists read), so a Stop
// followed by a Start on the same directory, in this process or the next,
// resumes every workflow where it was. Only one Server may use a DataDir at a time. The server has no
// authentication and, unless Config.TLS is set, no TLS, which is why it only
// listens on loopback.
//
// The server's SQLite plugin keeps one connection per database file open
// until the process exits, even after Stop; deleting a DataDir and reusing
// its path in the same process is therefore not supported.
package devstack

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	namespacepb "go.temporal.io/api/namespace/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/temporal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Defaults for zero Config fields.
const (
	defaultHost      = "127.0.0.1"
	defaultNamespace = "default"
	defaultRetention = 30 * 24 * time.Hour
)

const (
	clusterName = "active"
	// readyTimeout bounds Start when ctx has no deadline: a server that is not
	// serving after this long is not going to.
	readyTimeout = time.Minute
)

// Config says where the embedded stack keeps its state and listens.
type Config struct {
	// DataDir holds temporal.db and temporal-visibility.db (SQLite, WAL);
	// it is created if missing.
	// Required unless Postgres is set.
	DataDir string
	// Postgres, when set, keeps the server's state in PostgreSQL instead of
	// DataDir. Its databases and schema are created on the first start and
	// upgraded on later ones; a Stop and a Start on the same databases, in
	// this process or the next, resume every workflow.
	Postgres *Postgres
	// Host is the loopback IP every service binds to; default "127.0.0.1".
	Host string
	// FrontendPort is the gRPC frontend port; 0 picks a free port.
	FrontendPort int
	// UIPort is the Web UI port; 0 runs no UI, -1 picks a free port (tests).
	UIPort int
	// Namespace is created on first start; default "default".
	Namespace string
	// Retention is the namespace's workflow retention; default 30 days.
	// A changed value is applied to an existing namespace on Start.
	Retention time.Duration
	// CodecEndpoint, if set, is the payload codec URL the UI decodes through
	// (e.g. http://127.0.0.1:8080/codec). The browser calls it directly, so
	// it must answer CORS for the UI's origin.
	CodecEndpoint string
	// Logger receives devstack's own messages and, filtered by LogLevel,
	// the embedded server's. Default slog.Default().
	Logger *slog.Logger
	// LogLevel is the embedded server's minimum level: debug, info, warn or
	// error; default warn, because the server is very noisy at info.
	LogLevel string
	// TLS, when set, serves the frontend over TLS, for tests of clients
	// that connect securely. The UI is not offered with it (UIPort 0).
	TLS *TLS
}

// TLS is the frontend's TLS. The server's own clients (its system worker,
// Start's readiness check) present CertFile too and verify ServerName, so
// the certificate must allow both server and client authentication.
type TLS struct {
	// CertFile and KeyFile are the frontend's certificate and key (PEM).
	CertFile, KeyFile string
	// CAFile is the CA (PEM) that signed CertFile and, with
	// RequireClientCert, the one clients' certificates must chain to.
	CAFile string
	// ServerName is a DNS name CertFile carries.
	ServerName string
	// RequireClientCert turns on mutual TLS.
	RequireClientCert bool
}

// Server is a running embedded Temporal server and, optionally, its Web UI.
type Server struct {
	server       temporal.Server
	ui           *uiserver.Server
	uiDone       chan struct{}
	tls          *TLS
	frontendAddr string
	uiURL        string
	namespace    string
	logger       *slog.Logger
	serverLevel  *slog.LevelVar // the embedded server's minimum log level

	stopOnce sync.Once
	stopErr  error
}

// Start starts the server (and the UI when cfg.UIPort != 0) and returns once
// the frontend accepts connections and the namespace exists. On the first
// start in a DataDir it creates the schema and the namespace; later starts
// reuse them. The caller must call Stop.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	began := time.Now()
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	level, err := parseLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	serverLevel := new(slog.LevelVar)
	serverLevel.Set(level)
	if _, hasDeadline := ctx.Deadline(); !hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}

	frontendPort := cfg.FrontendPort
	if frontendPort == 0 {
		if cfg.Postgres != nil {
			frontendPort, err = servicePort(cfg.Host) // a cluster's ports must fit SMALLINT
		} else {
			frontendPort, err = freePort(cfg.Host)
		}
		if err != nil {
			return nil, err
		}
	} else if err := checkPortFree(cfg.Host, frontendPort); err != nil {
		// Checked here because the server reports a failed listen by panicking.
		return nil, fmt.Errorf("frontend port: %w", err)
	}
	var uiPort int
	switch {
	case cfg.UIPort < 0:
		if uiPort, err = freePort(cfg.Host); err != nil {
			return nil, err
		}
	case cfg.UIPort > 0:
		// The UI server exits the process when it cannot listen, so a busy
		// port must be caught here, as an error.
		if err := checkPortFree(cfg.Host, cfg.UIPort); err != nil {
			return nil, fmt.Errorf("ui port: %w", err)
		}
		uiPort = cfg.UIPort
	}

	var stores storeConfig
	if cfg.Postgres != nil {
		stores, err = preparePostgres(cfg)
	} else {
		stores, err = prepareDatabase(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	srvCfg, hosts, err := serverConfig(cfg.Host, frontendPort, stores)
	if err != nil {
		return nil, err
	}
	if t := cfg.TLS; t != nil {
		client := config.ClientTLS{ServerName: t.ServerName, RootCAFiles: []string{t.CAFile}}
		srvCfg.Global.TLS.Frontend = config.GroupTLS{
			Server: config.ServerTLS{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFiles: []string{t.CAFile}, RequireClientAuth: t.RequireClientCert},
			Client: client,
		}
		srvCfg.Global.TLS.SystemWorker = config.WorkerTLS{CertFile: t.CertFile, KeyFile: t.KeyFile, Client: client}
	}
	srv, err := startTemporal(
		temporal.WithConfig(srvCfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(newServerLogger(cfg.Logger, serverLevel)),
		temporal.WithDynamicConfigClient(devDynamicConfig()),
	)
	if err != nil {
		return nil, err
	}
	s := &Server{
		server:       srv,
		tls:          cfg.TLS,
		frontendAddr: net.JoinHostPort(cfg.Host, strconv.Itoa(frontendPort)),
		namespace:    cfg.Namespace,
		logger:       cfg.Logger,
		serverLevel:  serverLevel,
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	if err := s.waitReady(ctx, cfg.Retention); err != nil {
		return nil, err
	}
	if uiPort != 0 {
		if err := s.startUI(ctx, cfg, uiPort); err != nil {
			return nil, err
		}
	}
	s.logger.Info("temporal dev server ready",
		"frontend", s.frontendAddr, "namespace", s.namespace, "ui", s.uiURL,
		"db", stores.describe, "elapsed", time.Since(began).Round(time.Millisecond))
	return s, nil
}

// FrontendAddress is the gRPC frontend's host:port, e.g. "127.0.0.1:7233".
func (s *Server) FrontendAddress() string { return s.frontendAddr }

// Namespace is the namespace Start created or found.
func (s *Server) Namespace() string { return s.namespace }

// UIURL is the Web UI's base URL, e.g. "http://127.0.0.1:8233", or "" when
// the UI is not running.
func (s *Server) UIURL() string { return s.uiURL }

// Stop stops the UI, then the server. It is safe to call more than once;
// later calls return the first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		began := time.Now()
		if s.ui != nil {
			s.ui.Stop()
			<-s.uiDone
		}
		// Shutting down makes the server's internal pollers and clients warn
		// about connections it is closing itself: keep only errors, then
		// nothing once it has stopped.
		if s.serverLevel.Level() < slog.LevelError {
			s.serverLevel.Set(slog.LevelError)
		}
		if err := s.server.Stop(); err != nil {
			s.stopErr = fmt.Errorf("stop temporal server: %w", err)
		}
		s.serverLevel.Set(levelMuted)
		s.logger.Info("temporal dev server stopped", "elapsed", time.Since(began).Round(time.Millisecond))
	})
	return s.stopErr
}

func (c *Config) setDefaults() error {
	if c.DataDir == "" && c.Postgres == nil {
		return errors.New("DataDir is required")
	}
	if c.Postgres != nil {
		if err := c.Postgres.setDefaults(); err != nil {
			return err
		}
	}
	if c.Host == "" {
		c.Host = defaultHost
	}
	// The server has no auth and no TLS: refuse to expose it.
	if ip := net.ParseIP(c.Host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("host %q is not a loopback IP address", c.Host)
	}
	if c.FrontendPort < 0 || c.FrontendPort > 65535 {
		return fmt.Errorf("frontend port %d out of range", c.FrontendPort)
	}
	if c.UIPort < -1 || c.UIPort > 65535 {
		return fmt.Errorf("ui port %d out of range", c.UIPort)
	}
	if c.TLS != nil && c.UIPort != 0 {
		return errors.New("the UI is not offered with TLS: set UIPort 0")
	}
	if c.Namespace == "" {
		c.Namespace = defaultNamespace
	}
	if c.Retention == 0 {
		c.Retention = defaultRetention
	}
	if c.Retention < 0 {
		return fmt.Errorf("negative retention %v", c.Retention)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// storeConfig is where the server keeps history and visibility.
type storeConfig struct {
	defaultStore, visibility *config.SQL
	shards                   int32
	describe                 string // for the log: a path or host/database, never a password
}

// serverConfig is the static server config: the stores, the four services
// on loopback.
func serverConfig(host string, frontendPort int, stores storeConfig) (*config.Config, map[primitives.ServiceName]static.Hosts, error) {
	frontendAddr := net.JoinHostPort(host, strconv.Itoa(frontendPort))
	// The frontend's HTTP API serves Nexus callbacks and the HTTP/JSON API;
	// without it the server warns on every start.
	// Picked ports are not bound until the server starts: never hand out
	// one twice.
	taken := []int{frontendPort}
	httpPort, err := servicePort(host, taken...)
	if err != nil {
		return nil, nil, err
	}
	taken = append(taken, httpPort)

	services := map[string]config.Service{
		string(primitives.FrontendService): {RPC: config.RPC{GRPCPort: frontendPort, HTTPPort: httpPort, BindOnIP: host}},
	}
	hosts := map[primitives.ServiceName]static.Hosts{
		primitives.FrontendService: static.SingleLocalHost(frontendAddr),
	}
	// Static membership replaces ringpop, so no membership ports are needed.
	for _, name := range []primitives.ServiceName{primitives.HistoryService, primitives.MatchingService, primitives.WorkerService} {
		port, err := servicePort(host, taken...)
		if err != nil {
			return nil, nil, err
		}
		taken = append(taken, port)
		services[string(name)] = config.Service{RPC: config.RPC{GRPCPort: port, BindOnIP: host}}
		hosts[name] = static.SingleLocalHost(net.JoinHostPort(host, strconv.Itoa(port)))
	}

	var c config.Config
	c.Global.Membership.MaxJoinDuration = 30 * time.Second
	c.Global.Membership.BroadcastAddress = host
	c.Persistence = config.Persistence{NumHistoryShards: stores.shards}
	c.Persistence.DefaultStore, c.Persistence.VisibilityStore = "default", "visibility"
	c.Persistence.DataStores = map[string]config.DataStore{
		"default":    {SQL: stores.defaultStore},
		"visibility": {SQL: stores.visibility},
	}
	c.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             frontendAddr,
				HTTPAddress:            net.JoinHostPort(host, strconv.Itoa(httpPort)),
			},
		},
	}
	c.DCRedirectionPolicy.Policy = "noop"
	c.Services = services
	c.Archival.History.State = "disabled"
	c.Archival.Visibility.State = "disabled"
	c.NamespaceDefaults.Archival.History.State = "disabled"
	c.NamespaceDefaults.Archival.Visibility.State = "disabled"
	// The server's own worker service (schedules, batch jobs, …) dials this.
	c.PublicClient.HostPort = frontendAddr
	return &c, hosts, nil
}

// devDynamicConfig holds the dynamic config for a one-process dev server.
func devDynamicConfig() dynamicconfig.StaticClient {
	return dynamicconfig.StaticClient{
		// On by default in server 1.32, but the app depends on workflow
		// update and Update-with-Start: keep it on whatever the default.
		dynamicconfig.FrontendEnableUpdateWorkflowExecution.Key(): true,
		// Workflows' mutable states kept in memory, about 11 KB each. The
		// default (128k entries) is sized for a production history host;
		// in one process with thousands of flows waiting on people, 2,048
		// keeps it near 25 MB, and an evicted one is read back from the
		// database when its next task comes.
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key(): 2048,
		// The UI lists and counts workflows often; the default 10 rps per
		// namespace makes it fail with "namespace rate limit exceeded".
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// One partition per task queue, as the Temporal CLI's dev server
		// does: one process has no load to spread, and with the default
		// four a task can land on a partition no poller waits on.
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  1,
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): 1,
		// Workflow tasks, child starts and external signals reach matching
		// and the other workflow through the history transfer queue. Its
		// reader is rate limited per shard (default 20 reads/s, burst 20),
		// and with our single shard one flow needs ~25 reads, each only
		// possible after the previous task ran: once the burst is spent
		// every hop waits ~50 ms for a token, which took a flow start from
		// ~50 to ~450 ms. Reads are triggered by new tasks, not by a timer,
		// so a higher cap costs nothing while idle.
		dynamicconfig.TransferProcessorMaxPollRPS.Key(): 1000,
	}
}

// startTemporal creates and starts the server. The server reports some
// startup failures (e.g. a port taken between freePort and listen) through
// Logger.Fatal, which panics here; turn that into an error.
func startTemporal(opts ...temporal.ServerOption) (srv temporal.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("start temporal server: %v", r)
		}
	}()
	srv, err = temporal.NewServer(opts...)
	if err != nil {
		return nil, fmt.Errorf("create temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		_ = srv.Stop()
		return nil, fmt.Errorf("start temporal server: %w", err)
	}
	return srv, nil
}

// waitReady polls the frontend over plain gRPC, as any client would, until
// it describes the namespace; then it applies a changed retention.
func (s *Server) waitReady(ctx context.Context, retention time.Duration) error {
	creds := insecure.NewCredentials()
	if s.tls != nil {
		c, err := s.tls.clientConfig()
		if err != nil {
			return err
		}
		creds = credentials.NewTLS(c)
	}
	conn, err := grpc.NewClient(s.frontendAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("dial frontend: %w", err)
	}
	defer conn.Close()
	svc := workflowservice.NewWorkflowServiceClient(conn)

	var ns *workflowservice.DescribeNamespaceResponse
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ns, err = svc.DescribeNamespace(attemptCtx, &workflowservice.DescribeNamespaceRequest{Namespace: s.namespace})
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal frontend %s not ready: %w (last error: %v)", s.frontendAddr, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}

	// CreateNamespaces leaves an existing namespace alone; honour a changed
	// Retention through the API instead.
	if got := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got != retention {
		_, err := svc.UpdateNamespace(ctx, &workflowservice.UpdateNamespaceRequest{
			Namespace: s.namespace,
			Config:    &namespacepb.NamespaceConfig{WorkflowExecutionRetentionTtl: durationpb.New(retention)},
		})
		if err != nil {
			return fmt.Errorf("update retention of namespace %q: %w", s.namespace, err)
		}
		s.logger.Info("updated namespace retention", "namespace", s.namespace, "from", got, "to", retention)
	}
	return nil
}

// clientConfig is the TLS of the server's own client: its certificate, its CA.
func (t *TLS) clientConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tls ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls ca %s: no PEM certificate", t.CAFile)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}, nil
}

// startUI runs the Web UI in a goroutine (its Start blocks) and waits until
// it answers HTTP.
func (s *Server) startUI(ctx context.Context, cfg Config, port int) error {
	ui, err := newUI(&uiconfig.Config{
		Host:                cfg.Host,
		Port:                port,
		TemporalGRPCAddress: s.frontendAddr,
		EnableUI:            true,
		DefaultNamespace:    s.namespace,
		HideLogs:            true,
		// Offline by design: no calls to temporal.io for news or releases.
		DisableNewsFetch:   true,
		NotifyOnNewVersion: false,
		// Plain http on loopback: a Secure CSRF cookie would never be sent.
		CORS: uiconfig.CORS{CookieInsecure: true},
		Codec: uiconfig.Codec{
			Endpoint: cfg.CodecEndpoint,
			// The UI refuses to send a token to a non-https endpoint and then
			// decodes nothing, so only ask for it where it can work. (With
			// UI auth off, as here, there is no token to pass anyway.)
			PassAccessToken: strings.HasPrefix(cfg.CodecEndpoint, "https://"),
		},
	})
	if err != nil {
		return err
	}
	s.ui = ui
	s.uiDone = make(chan struct{})
	go func() {
		defer close(s.uiDone)
		// Start returns nil once Stop closes it; on a listen error it exits
		// the process, which checkPortFree makes unlikely.
		_ = ui.Start()
	}()

	base := "http://" + net.JoinHostPort(cfg.Host, strconv.Itoa(port))
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.uiURL = base
				return nil
			}
			err = fmt.Errorf("GET /healthz: status %d", resp.StatusCode)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal ui %s not ready: %w (last error: %v)", base, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// newUI builds the UI server, which panics on bad config or assets.
func newUI(c *uiconfig.Config) (ui *uiserver.Server, err error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("temporal ui config: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("create temporal ui: %v", r)
		}
	}()
	return uiserver.NewServer(uiserveroptions.WithConfigProvider(c)), nil
}

// freePort asks the kernel for a free TCP port on host. Another process may
// take it before the server binds it; for a dev server that is acceptable.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// servicePort picks a free port for one of the server's internal services.
// Temporal records service ports in SMALLINT columns (cluster membership),
// so they stay below 32768, where the kernel's ephemeral range (and so
// freePort) never goes on Linux.
func servicePort(host string, taken ...int) (int, error) {
	const low, high = 10000, 32767
	var b [2]byte
	for range 200 {
		_, _ = rand.Read(b[:])
		port := low + (int(b[0])<<8|int(b[1]))%(high-low+1)
		if !slices.Contains(taken, port) && checkPortFree(host, port) == nil {
			return port, nil
		}
	}
	return 0, fmt.Errorf("find free port below %d on %s: none after 200 tries", high+1, host)
}

// checkPortFree reports whether host:port can be listened on right now.
func checkPortFree(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails (crypto/rand documents this)
	return hex.EncodeToString(b)
}
