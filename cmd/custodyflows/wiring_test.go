package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/custodyflows/custodyflows/api"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

var testPayloadKeys = "k1:" + strings.Repeat("A", 43) + "="

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A secret flag can be read from the file its _FILE variable names, as
// Docker and Kubernetes mount secrets; the value never shows in errors.
func TestParseFlags_SecretFromFile(t *testing.T) {
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "api-keys")
	os.WriteFile(keysFile, []byte("file-key-1,file-key-2\n"), 0o600)
	base := map[string]string{
		"CUSTODYFLOWS_PLANBOK_API_KEY":           "k",
		"CUSTODYFLOWS_PAYLOAD_KEYS":              testPayloadKeys,
		"CUSTODYFLOWS_WEBHOOK_SECRETS":           "s",
		"CUSTODYFLOWS_ALLOWED_REDIRECT_HOSTS":    "app.example.com",
		"CUSTODYFLOWS_API_KEYS_FILE":             keysFile,
		"CUSTODYFLOWS_TEMPORAL_API_KEY_FILE":     keysFile,
		"CUSTODYFLOWS_ALLOW_LOCALHOST_REDIRECTS": "false",
	}
	c, err := parseAPIConfig(nil, env{stderr: io.Discard, lookup: lookupFrom(base)})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.APIKeys.values, "|"); got != "file-key-1|file-key-2" {
		t.Errorf("api keys from file: got %q, want file-key-1|file-key-2 (newline trimmed)", got)
	}

	// A flag on the command line still wins over the file.
	c, err = parseAPIConfig([]string{"--api-keys", "cli-key"}, env{stderr: io.Discard, lookup: lookupFrom(base)})
	if err != nil || strings.Join(c.APIKeys.values, ",") != "cli-key" {
		t.Errorf("flag over file: got %v, %v", c.APIKeys.values, err)
	}

	for name, tc := range map[string]struct {
		set  map[string]string
		want string
	}{
		"both":    {map[string]string{"CUSTODYFLOWS_API_KEYS": "env-key"}, "both CUSTODYFLOWS_API_KEYS and CUSTODYFLOWS_API_KEYS_FILE are set"},
		"missing": {map[string]string{"CUSTODYFLOWS_API_KEYS_FILE": filepath.Join(dir, "nope")}, "CUSTODYFLOWS_API_KEYS_FILE: open"},
		"empty":   {map[string]string{"CUSTODYFLOWS_API_KEYS_FILE": filepath.Join(dir, "empty")}, "is empty"},
	} {
		os.WriteFile(filepath.Join(dir, "empty"), []byte("\n"), 0o600)
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range tc.set {
			m[k] = v
		}
		_, err := parseAPIConfig(nil, env{stderr: io.Discard, lookup: lookupFrom(m)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "file-key") {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}

	// Only secrets come from files: a _FILE for a plain flag is not read.
	m := map[string]string{"CUSTODYFLOWS_HTTP_ADDR_FILE": keysFile}
	for k, v := range base {
		m[k] = v
	}
	if c, err := parseAPIConfig(nil, env{stderr: io.Discard, lookup: lookupFrom(m)}); err != nil || c.HTTPAddr != "127.0.0.1:8080" {
		t.Errorf("plain flag with _FILE: got %q, %v", c.HTTPAddr, err)
	}
}

// Temporal settings: the flag, then CUSTODYFLOWS_*, then the Temporal SDK's
// TEMPORAL_* variable, then the default.
func TestTemporalConfig_Precedence(t *testing.T) {
	base := map[string]string{"CUSTODYFLOWS_PLANBOK_API_KEY": "k", "CUSTODYFLOWS_PAYLOAD_KEYS": testPayloadKeys}
	parse := func(args []string, extra map[string]string) workerConfig {
		t.Helper()
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		c, err := parseWorkerConfig(args, env{stderr: io.Discard, lookup: lookupFrom(m)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := parse(nil, nil); c.Temporal.Address != "127.0.0.1:7233" || c.Temporal.Namespace != "default" || c.Temporal.tlsEnabled() {
		t.Errorf("defaults: got %+v", c.Temporal)
	}
	sdk := map[string]string{
		"TEMPORAL_ADDRESS":                 "ns.acct.tmprl.cloud:7233",
		"TEMPORAL_NAMESPACE":               "ns.acct",
		"TEMPORAL_API_KEY":                 "sdk-api-key",
		"TEMPORAL_TLS_SERVER_NAME":         "sdk.example",
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "/sdk/ca.pem",
	}
	c := parse(nil, sdk)
	if c.Temporal.Address != "ns.acct.tmprl.cloud:7233" || c.Temporal.Namespace != "ns.acct" || c.Temporal.APIKey.value != "sdk-api-key" ||
		c.Temporal.TLSServerName != "sdk.example" || c.Temporal.TLSCA != "/sdk/ca.pem" || !c.Temporal.tlsEnabled() {
		t.Errorf("from TEMPORAL_*: got %+v", c.Temporal)
	}
	sdk["CUSTODYFLOWS_TEMPORAL_ADDRESS"] = "own.example:7233"
	sdk["CUSTODYFLOWS_TEMPORAL_API_KEY"] = "own-api-key"
	c = parse([]string{"--namespace", "from-flag"}, sdk)
	if c.Temporal.Address != "own.example:7233" || c.Temporal.APIKey.value != "own-api-key" || c.Temporal.Namespace != "from-flag" {
		t.Errorf("CUSTODYFLOWS_* and flags over TEMPORAL_*: got %+v", c.Temporal)
	}

	_, err := parseWorkerConfig(nil, env{stderr: io.Discard, lookup: lookupFrom(map[string]string{
		"CUSTODYFLOWS_PLANBOK_API_KEY": "k", "CUSTODYFLOWS_PAYLOAD_KEYS": testPayloadKeys,
		"TEMPORAL_TLS_CLIENT_CERT_PATH": "/c.pem",
	})})
	if err == nil || !strings.Contains(err.Error(), "--temporal-tls-key (TEMPORAL_TLS_CLIENT_KEY_PATH)") {
		t.Errorf("cert without key: got %v", err)
	}
}

// The API key reaches the client as credentials and turns TLS on.
func TestTemporalConfig_APIKeyMeansTLS(t *testing.T) {
	tc := temporalConfig{Address: "x:7233", Namespace: "n", TaskQueue: "q", APIKey: secretFlag{"key-123"}}
	opts, err := tc.clientOptions()
	if err != nil || opts.Credentials == nil || !tc.tlsEnabled() {
		t.Fatalf("api key: got credentials %v, TLS %v, %v; want both", opts.Credentials, tc.tlsEnabled(), err)
	}
	tc.TLSCA = filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(tc.TLSCA, []byte("not a certificate"), 0o600)
	if _, err := tc.clientOptions(); err == nil || !strings.Contains(err.Error(), "--temporal-tls-ca") {
		t.Errorf("bad CA file: got %v, want an error naming --temporal-tls-ca", err)
	}
}

// codec-auth is the codec endpoint's own credential; it may not be an app
// key, which would open every history again.
func TestParseAPIConfig_CodecAuthIsNotAnAPIKey(t *testing.T) {
	args := []string{"--planbok-api-key", "k", "--payload-keys", testPayloadKeys, "--webhook-secrets", "s",
		"--allowed-redirect-hosts", "app.example.com", "--api-keys", "app-key,other", "--codec-auth", "app-key"}
	_, err := parseAPIConfig(args, env{stderr: io.Discard, lookup: lookupFrom(nil)})
	if err == nil || !strings.Contains(err.Error(), "--codec-auth must differ") {
		t.Fatalf("got %v, want a refusal", err)
	}
	if strings.Contains(err.Error(), "app-key") {
		t.Fatalf("the error shows the key: %v", err)
	}
}

// A second worker on the same host: the default metrics address is taken,
// so it serves on a free port and says so; an address someone chose is
// never swapped.
func TestWorker_MetricsAddressTaken(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	var logs bytes.Buffer
	ln, err := listenMetrics(busy.Addr().String(), true, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("default address taken: %v", err)
	}
	defer ln.Close()
	if ln.Addr().String() == busy.Addr().String() || !strings.Contains(logs.String(), "free port") {
		t.Errorf("got %s and log %q, want another port, logged", ln.Addr(), logs.String())
	}
	if _, err := listenMetrics(busy.Addr().String(), false, quietLogger()); err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Errorf("chosen address taken: got %v, want an error naming --metrics-addr", err)
	}

	base := map[string]string{"CUSTODYFLOWS_PLANBOK_API_KEY": "k", "CUSTODYFLOWS_PAYLOAD_KEYS": testPayloadKeys}
	c, _ := parseWorkerConfig(nil, env{stderr: io.Discard, lookup: lookupFrom(base)})
	if !c.metricsFallback {
		t.Error("default --metrics-addr: fallback off, want on")
	}
	c, _ = parseWorkerConfig([]string{"--metrics-addr", defaultMetricsAddr}, env{stderr: io.Discard, lookup: lookupFrom(base)})
	if c.metricsFallback {
		t.Error("--metrics-addr given: fallback on, want off")
	}
}

// A data dir that cannot be written is reported as what it is. Root
// ignores permission bits, so the test uses a path under a regular file
// and, where the process may mount, a read-only bind mount.
func TestStart_UnwritableDataDirNamesTheCause(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	cases := map[string]string{filepath.Join(file, "data"): "not a directory"}

	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o700)
	if err := syscall.Mount(ro, ro, "", syscall.MS_BIND, ""); err == nil {
		defer syscall.Unmount(ro, syscall.MNT_DETACH)
		if err := syscall.Mount("", ro, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			t.Fatalf("remount read-only: %v", err)
		}
		cases[ro] = "read-only file system"
	} else {
		t.Logf("no read-only bind mount (%v): only the regular-file case runs", err)
	}

	for path, want := range cases {
		err := run(context.Background(), []string{"dev", "--data-dir", path, "--ui-port", "0"}, io.Discard, io.Discard, lookupFrom(nil))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--data-dir") {
			t.Errorf("dev --data-dir %s: got %v, want --data-dir and %q", path, err, want)
		}
		err = run(context.Background(), []string{"worker", "--db", filepath.Join(path, "app.db"), "--planbok-api-key", "k",
			"--payload-keys", testPayloadKeys, "--metrics-addr", ""}, io.Discard, io.Discard, lookupFrom(nil))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--db") {
			t.Errorf("worker --db under %s: got %v, want --db and %q", path, err, want)
		}
	}
}

// A fatal error is one JSON line a log pipeline keeps whole.
func TestLogFatal_OneJSONLine(t *testing.T) {
	var buf bytes.Buffer
	logFatal(&buf, []string{"api"}, errors.Join(errors.New("--api-keys is required"), errors.New("--db must not be empty")))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("got %d lines: %q", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[0])
	}
	if rec["level"] != "ERROR" || rec["command"] != "api" || !strings.Contains(fmt.Sprint(rec["error"]), "--db must not be empty") {
		t.Errorf("got %v", rec)
	}
}

// Shutdown lets a request in flight finish and returns only once its
// handler has, so what is closed next (the database) is never closed
// under it.
func TestHTTPService_ShutdownFinishesRequestsInFlight(t *testing.T) {
	var finished atomic.Bool
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(500 * time.Millisecond)
		finished.Store(true)
		io.WriteString(w, "done")
	})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	s := newHTTPService("test", ln, h, apiTimeouts(time.Second), 5*time.Second, quietLogger())
	s.Start()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr())
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	s.Shutdown()
	if !finished.Load() {
		t.Fatal("Shutdown returned before the handler finished")
	}
	if r := <-got; r != "done" {
		t.Fatalf("request in flight: got %q, want done", r)
	}
}

// The API's timeouts: a start may use the whole request budget and still
// write its answer; reads and idles are bounded.
func TestAPITimeouts_FitTheRoutes(t *testing.T) {
	to := apiTimeouts(api.DefaultRequestTimeout)
	if to.Write <= api.DefaultRequestTimeout || to.Read <= 0 || to.ReadHeader <= 0 || to.Idle <= 0 {
		t.Fatalf("got %+v, want every timeout set and Write above the %s budget", to, api.DefaultRequestTimeout)
	}
	for name, to := range map[string]serverTimeouts{"sandbox": sandboxTimeouts, "ops": opsTimeouts} {
		if to.Read <= 0 || to.Write <= 0 || to.Idle <= 0 || to.ReadHeader <= 0 {
			t.Errorf("%s: got %+v, want every timeout set", name, to)
		}
	}
}

// intakeServer serves the real API handler (store in memory, a Temporal
// client that never connects) with timeouts t.
func intakeServer(t *testing.T, to serverTimeouts) (*httpService, string) {
	t.Helper()
	st, err := store.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: nopLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	srv, err := api.New(api.Config{APIKeys: []string{"app-key"}, WebhookSecrets: [][]byte{[]byte("whsec")}, AllowLocalhostHTTP: true},
		st, planbok.New("http://127.0.0.1:1", "k"), tc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newHTTPService("api", ln, srv.Handler(), to, time.Second, quietLogger())
	s.Start()
	t.Cleanup(func() { s.Shutdown() })
	return s, "http://" + s.Addr()
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// slowBody opens a connection that sends a webhook's headers, then its body
// one byte at a time.
func slowBody(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST /v1/webhooks/planbok HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
	return c
}

// A client that sends the webhook intake its body slowly is cut off within
// the read timeout instead of holding the connection as long as it likes.
func TestIntake_SlowBodyIsCutOff(t *testing.T) {
	const read = 600 * time.Millisecond
	s, _ := intakeServer(t, serverTimeouts{ReadHeader: read, Read: read, Write: 2 * time.Second, Idle: time.Second})
	c := slowBody(t, s.Addr())
	defer c.Close()
	began := time.Now()
	stop := make(chan struct{})
	go func() { // one byte every 100 ms, well within any per-byte limit
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	defer close(stop)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Whatever the server answers (an error status or nothing), it must
	// then close the connection.
	_, err := io.Copy(io.Discard, bufio.NewReader(c))
	took := time.Since(began)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %s, want it cut within the %s read timeout", took, read)
	}
	if took > read+time.Second {
		t.Fatalf("cut off after %s, want within about %s", took, read)
	}
}

// Hundreds of slow-body connections on the intake do not starve an
// authenticated call: each costs the server one goroutine and one file
// descriptor until the read timeout cuts it.
func TestIntake_SlowClientsDoNotStarveTheAPI(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 100
	}
	s, base := intakeServer(t, apiTimeouts(api.DefaultRequestTimeout))
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		conns = append(conns, slowBody(t, s.Addr()))
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/customers/cust_1/flows", nil)
	req.Header.Set("Authorization", "Bearer app-key")
	hc := &http.Client{Timeout: 5 * time.Second}
	began := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("authenticated call with %d slow connections open: %v", n, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authenticated call: got %d, want 200", resp.StatusCode)
	}
	t.Logf("%d slow-body connections open: authenticated call answered in %s", n, time.Since(began))
}

// /readyz sees a full disk: the app database answers pings but cannot be
// written. The database lives on a small tmpfs the test fills (root may
// mount; chmod would not stop root).
func TestReadyz_FullDiskIsUnready(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "small")
	os.Mkdir(dir, 0o700)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v); the api test with a fake store covers the logic", err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	st, err := store.Open(context.Background(), filepath.Join(dir, "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: nopLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	srv, err := api.New(api.Config{APIKeys: []string{"k"}}, st, planbok.New("http://127.0.0.1:1", "k"), tc)
	if err != nil {
		t.Fatal(err)
	}
	databaseCheck := func() string {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body struct {
			Checks map[string]string `json:"checks"`
		}
		json.Unmarshal(rec.Body.Bytes(), &body)
		return body.Checks["database"]
	}
	if got := databaseCheck(); got != "ok" {
		t.Fatalf("database check with room on disk: got %q, want ok", got)
	}
	filler, _ := os.Create(filepath.Join(dir, "filler"))
	chunk := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			break // ENOSPC: the disk is full
		}
	}
	filler.Close()
	if got := databaseCheck(); got != "unavailable" {
		t.Fatalf("database check on a full disk: got %q, want unavailable", got)
	}
	os.Remove(filepath.Join(dir, "filler"))
	if got := databaseCheck(); got != "ok" {
		t.Fatalf("database check after freeing space: got %q, want ok", got)
	}
}

// The rest of the SDK's environment configuration comes along: PEM data
// instead of files, TEMPORAL_TLS=false, gRPC metadata.
func TestTemporalConfig_SDKEnvironmentExtras(t *testing.T) {
	ca := newTestCA(t, "env CA")
	c, err := parseWorkerConfig(nil, env{stderr: io.Discard, lookup: lookupFrom(map[string]string{
		"CUSTODYFLOWS_PLANBOK_API_KEY": "k", "CUSTODYFLOWS_PAYLOAD_KEYS": testPayloadKeys,
		"TEMPORAL_TLS_SERVER_CA_CERT_DATA": string(ca.pem),
	})})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.Temporal.clientOptions()
	if err != nil || opts.ConnectionOptions.TLS == nil || opts.ConnectionOptions.TLS.RootCAs == nil {
		t.Fatalf("CA from TEMPORAL_TLS_SERVER_CA_CERT_DATA: got %+v, %v, want TLS with that CA", opts.ConnectionOptions.TLS, err)
	}
	c, err = parseWorkerConfig(nil, env{stderr: io.Discard, lookup: lookupFrom(map[string]string{
		"CUSTODYFLOWS_PLANBOK_API_KEY": "k", "CUSTODYFLOWS_PAYLOAD_KEYS": testPayloadKeys,
		"TEMPORAL_API_KEY": "local-key", "TEMPORAL_TLS": "false",
	})})
	if err != nil {
		t.Fatal(err)
	}
	if opts, err := c.Temporal.clientOptions(); err != nil || c.Temporal.tlsEnabled() || !opts.ConnectionOptions.TLSDisabled {
		t.Fatalf("TEMPORAL_TLS=false with an API key: got TLS %v, disabled %v, %v; want TLS off", c.Temporal.tlsEnabled(), opts.ConnectionOptions.TLSDisabled, err)
	}
}
