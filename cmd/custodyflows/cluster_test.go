package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx", to read the app database

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/internal/pgtest"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox"
)

// The production shape, on this machine: a Temporal server on PostgreSQL
// (devstack/devtemporal, its own process), two `api` and two `worker`
// processes of the built binary on a PostgreSQL app database and a task
// queue that is not the default, and `custodyflows sandbox` in Planbok's
// place. Then the faults an operator meets: concurrent starts spread over
// both APIs, one webhook delivered to both at once, a worker killed with
// flows in flight, and Temporal down for 20 s.
func TestCluster_TwoAPIsTwoWorkersOnPostgres(t *testing.T) {
	const (
		taskQueue     = "cluster-flows" // not flow.DefaultTaskQueue
		namespace     = "cluster"
		planbokKey    = "cluster-planbok-key"
		webhookSecret = "cluster-webhook-secret"
		apiKey        = "cluster-api-key"
		codecToken    = "cluster-codec-token"
		startQuota    = 5 // per customer per hour, for the whole deployment
		redirect      = "https://app.example.com/done"
		outage        = 20 * time.Second
	)
	if taskQueue == flow.DefaultTaskQueue {
		t.Fatal("the cluster must run on a task queue that is not the default")
	}
	bins := buildClusterBinaries(t)

	pg := pgtest.StartCluster(t)
	appDBWithPassword, err := pg.CreateDatabase(context.Background(), "custodyflows")
	if err != nil {
		t.Fatal(err)
	}
	// As deploy/ runs it: the URL holds no password, the driver reads it
	// from the pgpass file PGPASSFILE names.
	appDB := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/custodyflows?sslmode=disable", pg.Port())
	pgpass := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(pgpass, []byte(fmt.Sprintf("127.0.0.1:%d:custodyflows:postgres:%s\n", pg.Port(), pg.Password())), 0o600); err != nil {
		t.Fatal(err)
	}
	superuser := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d", pg.Password(), pg.Port())

	// Temporal, on a port it keeps across the outage below.
	temporalPort := lowFreePort(t)
	temporalAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(temporalPort))
	temporalArgs := []string{"--postgres-url", superuser, "--port", strconv.Itoa(temporalPort), "--namespace", namespace, "--log-level", "error"}
	temporal := startProc(t, "temporal", bins.devtemporal, temporalArgs, nil)
	temporal.waitLine(t, "ready ", 3*time.Minute)

	payloadKey := make([]byte, 32)
	rand.Read(payloadKey)
	apiAddrs := []string{freeAddr(t), freeAddr(t)}
	common := map[string]string{
		"CUSTODYFLOWS_TEMPORAL_ADDRESS": temporalAddr,
		"CUSTODYFLOWS_NAMESPACE":        namespace,
		"CUSTODYFLOWS_TASK_QUEUE":       taskQueue,
		"CUSTODYFLOWS_DB":               appDB,
		"CUSTODYFLOWS_PAYLOAD_KEYS":     "k1:" + base64.StdEncoding.EncodeToString(payloadKey),
		"CUSTODYFLOWS_PLANBOK_API_KEY":  planbokKey,
		"CUSTODYFLOWS_LOG_FORMAT":       "json",
		"CUSTODYFLOWS_LOG_LEVEL":        "warn",
		"PGPASSFILE":                    pgpass,
	}

	// The sandbox sends its webhooks to the first API; the test sends some
	// to both.
	sandboxAddr := freeAddr(t)
	sandboxURL := "http://" + sandboxAddr
	sb := startProc(t, "sandbox", bins.custodyflows, []string{"sandbox"}, map[string]string{
		"CUSTODYFLOWS_SANDBOX_ADDR":    sandboxAddr,
		"CUSTODYFLOWS_DATA_DIR":        t.TempDir(),
		"CUSTODYFLOWS_PLANBOK_API_KEY": planbokKey,
		"CUSTODYFLOWS_WEBHOOK_URL":     "http://" + apiAddrs[0] + "/v1/webhooks/planbok",
		"CUSTODYFLOWS_WEBHOOK_SECRET":  webhookSecret,
		"CUSTODYFLOWS_KDF":             "light",
		"CUSTODYFLOWS_RATE_LIMIT":      "false",
		"CUSTODYFLOWS_LOG_LEVEL":       "warn",
	})
	sb.waitHTTP(t, sandboxURL+"/v2/customers", http.StatusUnauthorized, 30*time.Second)
	common["CUSTODYFLOWS_PLANBOK_URL"] = sandboxURL

	migrate := startProc(t, "migrate", bins.custodyflows, []string{"migrate"}, map[string]string{"CUSTODYFLOWS_DB": appDB, "PGPASSFILE": pgpass})
	if err := migrate.wait(60 * time.Second); err != nil {
		t.Fatalf("migrate: %v\n%s", err, migrate.logs.String())
	}
	t.Logf("migrate: %v", migrate.elapsed.Round(time.Millisecond))

	checks := composeHealthchecks(t)
	workerEnv := func() (map[string]string, string) {
		metrics := freeAddr(t)
		e := cloneMap(common)
		e["CUSTODYFLOWS_METRICS_ADDR"] = metrics
		return e, metrics
	}
	var workers []*proc
	var workerMetrics []string
	for i := range 2 {
		e, metrics := workerEnv()
		w := startProc(t, fmt.Sprintf("worker%d", i+1), bins.custodyflows, []string{"worker"}, e)
		workers, workerMetrics = append(workers, w), append(workerMetrics, metrics)
	}
	apiFlags := envNamesOf(t, "api")
	var apis []*proc
	for i, addr := range apiAddrs {
		e := cloneMap(common)
		e["CUSTODYFLOWS_HTTP_ADDR"] = addr
		e["CUSTODYFLOWS_API_KEYS"] = apiKey
		e["CUSTODYFLOWS_WEBHOOK_SECRETS"] = webhookSecret
		e["CUSTODYFLOWS_ALLOWED_REDIRECT_HOSTS"] = "app.example.com"
		e["CUSTODYFLOWS_START_QUOTA"] = strconv.Itoa(startQuota)
		if apiFlags["CUSTODYFLOWS_CODEC_AUTH"] {
			e["CUSTODYFLOWS_CODEC_AUTH"] = codecToken
		}
		apis = append(apis, startProc(t, fmt.Sprintf("api%d", i+1), bins.custodyflows, []string{"api"}, e))
	}
	for i, w := range workers {
		w.waitHTTP(t, "http://"+workerMetrics[i]+"/readyz", http.StatusOK, 90*time.Second)
	}
	for i, a := range apis {
		a.waitHTTP(t, "http://"+apiAddrs[i]+"/readyz", http.StatusOK, 90*time.Second)
	}
	for _, p := range append(append([]*proc{temporal, sb}, workers...), apis...) {
		t.Logf("start-to-ready %-8s %v", p.name, p.ready.Round(time.Millisecond))
	}
	// The compose file's health checks, run against the real processes.
	for i, addr := range apiAddrs {
		_, port, _ := net.SplitHostPort(addr)
		if err := checks["api"].run(port); err != nil {
			t.Errorf("compose healthcheck of api%d: %v", i+1, err)
		}
	}
	for i, addr := range workerMetrics {
		_, port, _ := net.SplitHostPort(addr)
		if err := checks["worker"].run(port); err != nil {
			t.Errorf("compose healthcheck of worker%d: %v", i+1, err)
		}
	}

	clients := []*apiClient{
		{t: t, base: "http://" + apiAddrs[0], key: apiKey},
		{t: t, base: "http://" + apiAddrs[1], key: apiKey},
	}
	helper := sandbox.NewHelperClient(sandboxURL, planbokKey, nil)
	complete := func(challengeID string, body any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := helper.Complete(ctx, challengeID, body); err != nil {
			t.Fatalf("complete challenge %s: %v", challengeID, err)
		}
	}
	body := func() map[string]any { return map[string]any{"redirectUrl": redirect} }
	var startLatency, completeLatency []time.Duration

	// 1. Flows through both APIs complete: each customer is onboarded
	// through one API and read back through the other.
	const customers = 12
	onboarded := make([]flow.Customer, customers)
	for i := range customers {
		in, out := clients[i%2], clients[(i+1)%2]
		cust := in.createCustomer(fmt.Sprintf("Cluster %d", i), fmt.Sprintf("cluster-%d", i))
		began := time.Now()
		f, _ := in.start(cust.ID, flow.KindInitialize, body(), http.StatusCreated)
		startLatency = append(startLatency, time.Since(began))
		began = time.Now()
		complete(f.ChallengeID, map[string]any{"pin": testPIN, "recovery": securityQuestions(testAnswers...)})
		out.waitFlow(f.ID, flow.StatusCompleted, 60*time.Second)
		completeLatency = append(completeLatency, time.Since(began))
		onboarded[i] = out.customer(cust.ID)
		if !onboarded[i].Security.HasPIN || !onboarded[i].Security.HasRecovery {
			t.Fatalf("customer %d after initialize: got %+v, want a PIN and recovery", i, onboarded[i].Security)
		}
	}
	t.Logf("initialize over both APIs: %d flows; start p50 %v p99 %v; Gateway-to-completed p50 %v p99 %v",
		customers, pct(startLatency, 50), pct(startLatency, 99), pct(completeLatency, 50), pct(completeLatency, 99))

	// 2. Twenty concurrent starts of one flow for one customer, spread over
	// both APIs: one flow is created (201), every other start answers 200
	// with that same flow (API.md §2), and the quota counts it once.
	quotaCust := onboarded[0]
	results := make([]rawResponse, 20)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			results[i] = post(clients[i%2].base+"/v1/customers/"+quotaCust.ID+"/update-pin", apiKey, body())
		}()
	}
	close(gate)
	wg.Wait()
	created, again, ids := 0, 0, map[string]bool{}
	for i, r := range results {
		switch r.status {
		case http.StatusCreated:
			created++
		case http.StatusOK:
			again++
		default:
			t.Errorf("concurrent start %d (api%d): got %d %s, want 201 or 200", i, i%2+1, r.status, r.body)
			continue
		}
		var f flow.Flow
		if err := json.Unmarshal(r.body, &f); err != nil {
			t.Fatalf("concurrent start %d: %v", i, err)
		}
		ids[f.ID] = true
	}
	if created != 1 || again != 19 || len(ids) != 1 {
		t.Fatalf("20 concurrent starts: got %d created, %d answered again, %d distinct flows; want 1, 19, 1", created, again, len(ids))
	}
	var burstFlow string
	for id := range ids {
		burstFlow = id
	}
	var listed struct{ Flows []flow.Flow }
	clients[1].do(http.MethodGet, "/v1/customers/"+quotaCust.ID+"/flows", nil).decode(t, &listed)
	if n := countKind(listed.Flows, flow.KindUpdatePIN); n != 1 {
		t.Fatalf("update_pin flows of the customer after the burst: got %d, want 1", n)
	}
	// The customer has used 2 of its quota (initialize, the burst). Each
	// cancel frees the slot; the next start, alternating APIs, is a new
	// flow. With a quota per process each API would allow startQuota.
	active := burstFlow
	for n := 3; n <= startQuota+1; n++ {
		c := clients[n%2]
		if r := c.do(http.MethodPost, "/v1/flows/"+active+"/cancel", nil); r.Status != http.StatusOK {
			t.Fatalf("cancel %s: got %d %s", active, r.Status, r.Body)
		}
		// A client starts again once the customer shows no active flow.
		for deadline := time.Now().Add(15 * time.Second); c.customer(quotaCust.ID).ActiveFlow != nil; {
			if time.Now().After(deadline) {
				t.Fatalf("customer still shows an active flow 15s after cancelling %s", active)
			}
			time.Sleep(100 * time.Millisecond)
		}
		want := http.StatusCreated
		if n > startQuota {
			want = http.StatusTooManyRequests
		}
		r := post(c.base+"/v1/customers/"+quotaCust.ID+"/update-pin", apiKey, body())
		var f flow.Flow
		_ = json.Unmarshal(r.body, &f)
		if r.status != want {
			t.Fatalf("start %d of the customer (api%d) after cancelling %s: got %d (flow %q, status %q) %.200s, want %d",
				n, n%2+1, active, r.status, f.ID, f.Status, r.body, want)
		}
		if want == http.StatusTooManyRequests {
			var e struct{ Error struct{ Code string } }
			_ = json.Unmarshal(r.body, &e)
			mustEqual(t, "start over the quota", e.Error.Code, "rate_limited")
			if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra <= 0 {
				t.Errorf("rate_limited Retry-After: got %q, want positive seconds", r.header.Get("Retry-After"))
			}
			t.Logf("start quota: start %d of the customer (api%d) answered 429 rate_limited, Retry-After %ss", n, n%2+1, r.header.Get("Retry-After"))
			break
		}
		active = f.ID
	}

	// 3. One webhook delivered to both APIs at once is recorded and acted
	// on once: one delivery is new, the other a duplicate.
	hookCust := onboarded[1]
	f, _ := clients[0].start(hookCust.ID, flow.KindUpdatePIN, body(), http.StatusCreated)
	complete(f.ChallengeID, map[string]any{"currentPin": testPIN, "newPin": "112233"})
	const hookKey = "cluster-webhook-once"
	hookBody, _ := json.Marshal(map[string]any{
		"event": "challenge.completed", "timestamp": time.Now().UTC().Format(time.RFC3339), "idempotencyKey": hookKey,
		"data": map[string]any{"customerId": hookCust.ID, "challengeId": f.ChallengeID, "task": "update-pin", "status": "verified"},
	})
	hooks := make([]rawResponse, 2)
	gate = make(chan struct{})
	for i := range hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			hooks[i] = postWebhook(clients[i].base, webhookSecret, hookKey, "challenge.completed", hookBody)
		}()
	}
	close(gate)
	wg.Wait()
	fresh := 0
	for i, r := range hooks {
		var got struct{ Received, Duplicate bool }
		if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil || !got.Received {
			t.Fatalf("webhook to api%d: got %d %s, want 200 received", i+1, r.status, r.body)
		}
		if !got.Duplicate {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("one webhook to both APIs at once: %d deliveries taken as new, want 1", fresh)
	}
	db, err := sql.Open("pgx", appDBWithPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows int
	if err := db.QueryRow(`SELECT count(*) FROM webhook_inbox WHERE idempotency_key = $1`, hookKey).Scan(&rows); err != nil {
		t.Fatalf("read webhook_inbox: %v", err)
	}
	mustEqual(t, "inbox rows of the webhook", rows, 1)
	clients[1].waitFlow(f.ID, flow.StatusCompleted, 60*time.Second)

	// 4. kill -9 of one worker while 10 flows await the user: all 10
	// complete on the other.
	var waiting []flow.Flow
	for i := 2; i < 12; i++ {
		began := time.Now()
		f, _ := clients[i%2].start(onboarded[i].ID, flow.KindUpdatePIN, body(), http.StatusCreated)
		startLatency = append(startLatency, time.Since(began))
		mustEqual(t, "status of a started flow", f.Status, flow.StatusAwaitingUser)
		waiting = append(waiting, f)
	}
	killed := time.Now()
	workers[0].kill(t)
	for _, f := range waiting {
		complete(f.ChallengeID, map[string]any{"currentPin": testPIN, "newPin": "112233"})
	}
	for i, f := range waiting {
		clients[i%2].waitFlow(f.ID, flow.StatusCompleted, 90*time.Second)
	}
	t.Logf("kill -9 of worker1 with %d flows awaiting the user: %d/%d completed on worker2, the last %v after the kill",
		len(waiting), len(waiting), len(waiting), time.Since(killed).Round(time.Millisecond))
	e, metrics := workerEnv()
	workers[0] = startProc(t, "worker1b", bins.custodyflows, []string{"worker"}, e)
	workers[0].waitHTTP(t, "http://"+metrics+"/readyz", http.StatusOK, 90*time.Second)
	t.Logf("start-to-ready worker1 (restarted) %v", workers[0].ready.Round(time.Millisecond))

	// 5. Temporal down for 20 s: starts answer 503 temporal_unavailable
	// with Retry-After at once, finished flows stay readable from the
	// database, and everything recovers with no restart of api or worker.
	finished := waiting[0].ID
	outageCust := clients[0].createCustomer("Cluster outage", "cluster-outage")
	temporal.stop(t, 30*time.Second)
	down := time.Now()
	var refusals []time.Duration
	for i := 0; time.Since(down) < outage-3*time.Second; i++ {
		c := clients[i%2]
		began := time.Now()
		r := post(c.base+"/v1/customers/"+outageCust.ID+"/initialize", apiKey, body())
		refusals = append(refusals, time.Since(began))
		var e struct{ Error struct{ Code string } }
		_ = json.Unmarshal(r.body, &e)
		if r.status != http.StatusServiceUnavailable || e.Error.Code != "temporal_unavailable" {
			t.Errorf("start while Temporal is down (api%d): got %d %s, want 503 temporal_unavailable", i%2+1, r.status, r.body)
		} else if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra <= 0 {
			t.Errorf("503 while Temporal is down: Retry-After %q, want positive seconds", r.header.Get("Retry-After"))
		}
		got := c.do(http.MethodGet, "/v1/flows/"+finished, nil)
		if got.Status != http.StatusOK {
			t.Errorf("finished flow while Temporal is down (api%d): got %d %s, want 200", i%2+1, got.Status, got.Body)
		}
		if r := get(c.base + "/readyz"); r.status != http.StatusServiceUnavailable {
			t.Errorf("api%d /readyz while Temporal is down: got %d, want 503", i%2+1, r.status)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(refusals) > 0 {
		t.Logf("Temporal down: %d starts refused with 503, latency p50 %v max %v", len(refusals), pct(refusals, 50), pct(refusals, 100))
		if worst := pct(refusals, 100); worst > 10*time.Second {
			t.Errorf("a start while Temporal is down took %v to be refused, want an answer at once", worst)
		}
	}
	time.Sleep(time.Until(down.Add(outage)))
	temporal = startProc(t, "temporal2", bins.devtemporal, temporalArgs, nil)
	// Cleanups run last-registered first: stop api and worker before this
	// Temporal, as an operator would, so they shut down against a server.
	t.Cleanup(func() {
		for _, p := range append(append([]*proc(nil), apis...), workers...) {
			p.stop(t, 15*time.Second)
		}
	})
	temporal.waitLine(t, "ready ", 3*time.Minute)
	up := time.Now()
	t.Logf("Temporal down %v; restart to ready %v", up.Sub(down).Round(time.Millisecond), temporal.ready.Round(time.Millisecond))
	var recovered flow.Flow
	for i := 0; ; i++ {
		r := post(clients[i%2].base+"/v1/customers/"+outageCust.ID+"/initialize", apiKey, body())
		// 200 is the flow an earlier start created whose answer was a 503
		// (the server took it as Temporal came back): API.md's "the same
		// kind again, while active".
		if r.status == http.StatusCreated || r.status == http.StatusOK {
			_ = json.Unmarshal(r.body, &recovered)
			t.Logf("start after Temporal came back (api%d): %d, flow %s", i%2+1, r.status, recovered.Status)
			break
		}
		if time.Since(up) > 90*time.Second {
			t.Fatalf("starts after Temporal came back: still %d %s after 90s", r.status, r.body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("first start accepted %v after Temporal was back", time.Since(up).Round(time.Millisecond))
	complete(recovered.ChallengeID, map[string]any{"pin": testPIN, "recovery": securityQuestions(testAnswers...)})
	clients[1].waitFlow(recovered.ID, flow.StatusCompleted, 90*time.Second)
	for i, a := range apis {
		a.waitHTTP(t, "http://"+apiAddrs[i]+"/readyz", http.StatusOK, 60*time.Second)
	}
	for _, p := range append(workers, apis...) {
		if p.exited() {
			t.Errorf("%s exited during the test: %s", p.name, p.logs.tail(20))
		}
	}
	t.Logf("all starts on the cluster: %d; p50 %v p99 %v", len(startLatency), pct(startLatency, 50), pct(startLatency, 99))
	t.Logf("Gateway-to-completed on the cluster: %d; p50 %v p99 %v", len(completeLatency), pct(completeLatency, 50), pct(completeLatency, 99))

	// Nothing secret reached any process's log.
	for _, p := range append(append([]*proc{sb}, workers...), apis...) {
		for _, secret := range []string{planbokKey, webhookSecret, apiKey, codecToken, pg.Password(), common["CUSTODYFLOWS_PAYLOAD_KEYS"]} {
			if strings.Contains(p.logs.String(), secret) {
				t.Errorf("%s logged a secret", p.name)
			}
		}
	}
}

func countKind(flows []flow.Flow, kind flow.Kind) int {
	n := 0
	for _, f := range flows {
		if f.Kind == kind {
			n++
		}
	}
	return n
}

// clusterBinaries are the programs the cluster test runs.
type clusterBinaries struct{ custodyflows, devtemporal string }

// buildClusterBinaries builds custodyflows and the Temporal helper once,
// into a directory of the test.
func buildClusterBinaries(t *testing.T) clusterBinaries {
	t.Helper()
	dir := t.TempDir()
	began := time.Now()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), ".", "../../devstack/devtemporal")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built custodyflows and devtemporal in %v", time.Since(began).Round(time.Millisecond))
	return clusterBinaries{custodyflows: filepath.Join(dir, "custodyflows"), devtemporal: filepath.Join(dir, "devtemporal")}
}

// lowFreePort is a free loopback port below 32768: the Temporal frontend's
// port is recorded in SMALLINT columns, and a restarted server must get
// the same one.
func lowFreePort(t *testing.T) int {
	t.Helper()
	var b [2]byte
	for range 200 {
		rand.Read(b[:])
		port := 10000 + (int(b[0])<<8|int(b[1]))%22000
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port below 32768")
	return 0
}

// proc is a process of the cluster. It is stopped (SIGTERM, then SIGKILL
// after 15 s) when the test ends; its output is kept and shown when the
// test fails.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logs    *procLog
	began   time.Time
	ready   time.Duration // start to ready
	elapsed time.Duration // start to exit, once exited
	done    chan struct{}
	err     error
	lines   chan string // stdout lines
}

func startProc(t *testing.T, name, bin string, args []string, environment map[string]string) *proc {
	t.Helper()
	p := &proc{name: name, logs: &procLog{}, done: make(chan struct{}), lines: make(chan string, 64)}
	p.cmd = exec.Command(bin, args...)
	// Only what the test gives: nothing from the developer's environment
	// may configure the processes.
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range environment {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stderr = p.logs
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.began = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.logs.Write([]byte(sc.Text() + "\n"))
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		p.elapsed = time.Since(p.began)
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t, 15*time.Second)
		if t.Failed() {
			t.Logf("--- %s output (last lines):\n%s", name, p.logs.tail(40))
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns its error.
func (p *proc) wait(limit time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		return fmt.Errorf("%s still running after %v", p.name, limit)
	}
}

// stop sends SIGTERM and waits; after limit it kills the process.
func (p *proc) stop(t *testing.T, limit time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Errorf("%s did not stop within %v of SIGTERM: killed", p.name, limit)
		p.kill(t)
	}
}

// kill is kill -9.
func (p *proc) kill(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s survived SIGKILL for 10s", p.name)
	}
}

// waitLine waits for a stdout line starting with prefix, which marks the
// process ready.
func (p *proc) waitLine(t *testing.T, prefix string, limit time.Duration) string {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case line := <-p.lines:
			if strings.HasPrefix(line, prefix) {
				p.ready = time.Since(p.began)
				return line
			}
		case <-p.done:
			t.Fatalf("%s exited before it was ready: %v\n%s", p.name, p.err, p.logs.tail(40))
		case <-deadline:
			t.Fatalf("%s not ready within %v:\n%s", p.name, limit, p.logs.tail(40))
		}
	}
}

// waitHTTP waits until url answers want, which marks the process ready.
func (p *proc) waitHTTP(t *testing.T, url string, want int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := ""
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("%s exited before it was ready: %v\n%s", p.name, p.err, p.logs.tail(40))
		}
		r := get(url)
		if r.status == want {
			p.ready = time.Since(p.began)
			return
		}
		last = fmt.Sprintf("%d %s %v", r.status, r.body, r.err)
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s did not answer %d within %v (last: %s)\n%s", p.name, url, want, limit, last, p.logs.tail(40))
}

// procLog collects a process's output.
type procLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *procLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *procLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *procLog) tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// rawResponse is an HTTP answer, or the error that stood for one; safe to
// produce from any goroutine (apiClient is not: it calls t.Fatal).
type rawResponse struct {
	status int
	header http.Header
	body   []byte
	err    error
}

var clusterHTTP = &http.Client{Timeout: 40 * time.Second}

func send(req *http.Request) rawResponse {
	resp, err := clusterHTTP.Do(req)
	if err != nil {
		return rawResponse{err: err, header: http.Header{}}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func get(url string) rawResponse {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return rawResponse{err: err, header: http.Header{}}
	}
	return send(req)
}

func post(url, key string, body any) rawResponse {
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return rawResponse{err: err, header: http.Header{}}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	return send(req)
}

// postWebhook delivers a webhook as Planbok signs it (API.md §3).
func postWebhook(base, secret, id, event string, body []byte) rawResponse {
	req, err := http.NewRequest(http.MethodPost, base+"/v1/webhooks/planbok", bytes.NewReader(body))
	if err != nil {
		return rawResponse{err: err, header: http.Header{}}
	}
	planbok.SetWebhookHeaders(req.Header, []byte(secret), id, event, time.Now(), body)
	req.Header.Set("Content-Type", "application/json")
	return send(req)
}

// pct is the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p/100+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i].Round(time.Millisecond)
}
