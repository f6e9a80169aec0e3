package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/custodyflows/custodyflows/devstack"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate for name (also valid for 127.0.0.1) and its
// key to dir, and returns their paths and the key's PEM.
func (ca *testCA) issue(t *testing.T, dir, name string, serial int64) (certPath, keyPath string, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, keyPEM, 0o600)
	return certPath, keyPath, keyPEM
}

// waitJSON polls url until it answers 200 and returns the decoded body.
func waitJSON(t *testing.T, url string, limit time.Duration) (map[string]any, time.Duration) {
	t.Helper()
	began := time.Now()
	for time.Since(began) < limit {
		resp, err := http.Get(url)
		if err == nil {
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return body, time.Since(began)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready within %s", url, limit)
	return nil, 0
}

// api and worker reach a Temporal server that requires mutual TLS, with
// the Temporal SDK's variables: started before the server, they wait for it
// (logging each wait), then connect over a real handshake. A wrong CA or a
// missing client certificate stops the process at start with an error that
// names the setting and shows no key.
func TestServices_MutualTLSToTemporal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	ca := newTestCA(t, "custodyflows test CA")
	os.WriteFile(filepath.Join(dir, "ca.pem"), ca.pem, 0o600)
	serverCert, serverKey, serverKeyPEM := ca.issue(t, dir, "temporal.test", 2)
	clientCert, clientKey, clientKeyPEM := ca.issue(t, dir, "custodyflows.test", 3)
	other := newTestCA(t, "some other CA")
	os.WriteFile(filepath.Join(dir, "other-ca.pem"), other.pem, 0o600)

	temporalAddr := freeAddr(t)
	_, portText, _ := net.SplitHostPort(temporalAddr)
	port, _ := strconv.Atoi(portText)

	environment := map[string]string{
		"TEMPORAL_ADDRESS":                    temporalAddr,
		"TEMPORAL_NAMESPACE":                  "default",
		"TEMPORAL_TLS_CLIENT_CERT_PATH":       clientCert,
		"TEMPORAL_TLS_CLIENT_KEY_PATH":        clientKey,
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH":    filepath.Join(dir, "ca.pem"),
		"TEMPORAL_TLS_SERVER_NAME":            "temporal.test",
		"CUSTODYFLOWS_DB":                     filepath.Join(dir, "app.db"),
		"CUSTODYFLOWS_PLANBOK_URL":            "http://127.0.0.1:1",
		"CUSTODYFLOWS_PLANBOK_API_KEY":        "pbk",
		"CUSTODYFLOWS_PAYLOAD_KEYS":           testPayloadKeys,
		"CUSTODYFLOWS_WEBHOOK_SECRETS":        "whsec",
		"CUSTODYFLOWS_API_KEYS":               "app-key",
		"CUSTODYFLOWS_ALLOWED_REDIRECT_HOSTS": "app.example.com",
		"CUSTODYFLOWS_LOG_FORMAT":             "json",
	}
	apiAddr, metricsAddr := freeAddr(t), freeAddr(t)
	var logs lockedBuffer
	done := make(chan error, 2)
	began := time.Now()
	go func() {
		done <- run(ctx, []string{"worker", "--metrics-addr", metricsAddr}, io.Discard, &logs, lookupFrom(environment))
	}()
	go func() {
		done <- run(ctx, []string{"api", "--http-addr", apiAddr}, io.Discard, &logs, lookupFrom(environment))
	}()

	// Temporal comes up after them.
	time.Sleep(1500 * time.Millisecond)
	temporalBegan := time.Now()
	temporal, err := devstack.Start(ctx, devstack.Config{
		DataDir: filepath.Join(dir, "temporal"), FrontendPort: port, LogLevel: "error",
		TLS: &devstack.TLS{CertFile: serverCert, KeyFile: serverKey, CAFile: filepath.Join(dir, "ca.pem"),
			ServerName: "temporal.test", RequireClientCert: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer temporal.Stop()
	temporalUp := time.Since(temporalBegan)

	waitJSON(t, "http://"+metricsAddr+"/readyz", 90*time.Second)
	workerTook := time.Since(began)
	var body map[string]any
	for deadline := time.Now().Add(60 * time.Second); ; {
		body, _ = waitJSON(t, "http://"+apiAddr+"/readyz", 90*time.Second)
		// The worker polls over mTLS: the API sees it on the task queue.
		if checks, _ := body["checks"].(map[string]any); checks["worker"] == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("api /readyz never saw a worker poll: %v", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("temporal with mTLS up in %s; ready after process start: worker %s, api %s (both started %s before Temporal)",
		temporalUp, workerTook, time.Since(began), temporalBegan.Sub(began).Round(time.Millisecond))
	if !strings.Contains(logs.String(), "waiting for Temporal") {
		t.Errorf("no wait was logged:\n%s", logs.String())
	}

	// With Temporal up: start-to-ready of a fresh api, and two more workers
	// on the default metrics address, which the second cannot have: it
	// takes a free port and says so, with no setting of its own.
	api2 := freeAddr(t)
	began2 := time.Now()
	go func() {
		done <- run(ctx, []string{"api", "--http-addr", api2}, io.Discard, io.Discard, lookupFrom(environment))
	}()
	waitJSON(t, "http://"+api2+"/readyz", 60*time.Second)
	apiReady := time.Since(began2)
	var workerLogs [2]lockedBuffer
	var workerReady [2]time.Duration
	for i := range workerLogs {
		began := time.Now()
		go func() {
			done <- run(ctx, []string{"worker"}, io.Discard, &workerLogs[i], lookupFrom(environment))
		}()
		addr := ""
		for deadline := time.Now().Add(60 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for _, line := range strings.Split(workerLogs[i].String(), "\n") {
				var rec map[string]any
				if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "worker started" {
					addr, _ = rec["metrics"].(string)
				}
			}
		}
		if addr == "" {
			t.Fatalf("worker %d logged no metrics address:\n%s", i+1, workerLogs[i].String())
		}
		waitJSON(t, "http://"+addr+"/readyz", 60*time.Second)
		workerReady[i] = time.Since(began)
	}
	if !strings.Contains(workerLogs[1].String(), "free port") {
		t.Errorf("second worker on the default metrics address: no fallback logged:\n%s", workerLogs[1].String())
	}
	t.Logf("Temporal up (mTLS): api start-to-ready %s; workers %s and %s (the second on a fallback port)", apiReady, workerReady[0], workerReady[1])

	// A wrong CA, a missing client certificate: stopped at start, the
	// setting named, no key shown.
	for name, tc := range map[string]struct {
		change map[string]string
		want   string
	}{
		"wrong CA":              {map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": filepath.Join(dir, "other-ca.pem")}, "TEMPORAL_TLS_SERVER_CA_CERT_PATH"},
		"no client certificate": {map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": "", "TEMPORAL_TLS_CLIENT_KEY_PATH": ""}, "--temporal-tls-cert"},
	} {
		t.Run(name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range environment {
				m[k] = v
			}
			for k, v := range tc.change {
				m[k] = v
			}
			var out lockedBuffer
			actx, acancel := context.WithTimeout(ctx, 60*time.Second)
			defer acancel()
			began := time.Now()
			err := run(actx, []string{"worker", "--metrics-addr", ""}, io.Discard, &out, lookupFrom(m))
			if err == nil || actx.Err() != nil {
				t.Fatalf("got %v after %s, want an error at start", err, time.Since(began))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want it to name %s", err, tc.want)
			}
			for _, key := range [][]byte{clientKeyPEM, serverKeyPEM} {
				block := strings.Split(string(key), "\n")[1]
				if strings.Contains(err.Error(), block) || strings.Contains(out.String(), block) {
					t.Errorf("a key was printed")
				}
			}
			t.Logf("stopped after %s: %v", time.Since(began), err)
		})
	}

	// A namespace that does not exist yet: the worker waits for it, then
	// starts once someone registers it.
	nsEnv := map[string]string{}
	for k, v := range environment {
		nsEnv[k] = v
	}
	nsEnv["TEMPORAL_NAMESPACE"] = "created-later"
	nsMetrics := freeAddr(t)
	var nsLogs lockedBuffer
	go func() {
		done <- run(ctx, []string{"worker", "--metrics-addr", nsMetrics}, io.Discard, &nsLogs, lookupFrom(nsEnv))
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(nsLogs.String(), "namespace not found"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no wait for the namespace was logged:\n%s", nsLogs.String())
		}
	}
	tc := temporalConfig{Address: temporalAddr, Namespace: "default", TLSCert: clientCert, TLSKey: clientKey,
		TLSCA: filepath.Join(dir, "ca.pem"), TLSServerName: "temporal.test"}
	opts, err := tc.clientOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = nopLogger{}
	nc, err := client.NewNamespaceClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	err = nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{Namespace: "created-later", WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)})
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	waitJSON(t, "http://"+nsMetrics+"/readyz", 60*time.Second)

	// Temporal goes away: the health routes say so, the processes stay.
	temporal.Stop()
	for _, url := range []string{"http://" + metricsAddr + "/readyz", "http://" + apiAddr + "/readyz"} {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, err := http.Get(url)
			if err != nil {
				t.Fatalf("%s: %v", url, err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %d 30s after Temporal stopped, want 503", url, resp.StatusCode)
			}
		}
	}

	cancel()
	for range 6 {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("command stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a command did not stop within 30s")
		}
	}
}
