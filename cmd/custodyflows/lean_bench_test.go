package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/workflows"
)

// releaseCommit is today's release, measured against in the same run.
const releaseCommit = "d859712"

// BenchmarkDev_LeanVsRelease measures, on the whole dev stack (each binary
// run as `custodyflows dev` in its own process, the way a user runs it),
// this tree against the release (releaseCommit, built from a git worktree
// in a temp dir), one after the other in the same run:
//
//   - history events, workflow tasks and billable actions (Temporal Cloud's
//     definition, see actionsOf) over every workflow a flow touches (the
//     flow, its customer workflow, NotifyApp workflows), for a completed
//     initialize flow and for a flow whose challenge expires untouched: a
//     30 s challenge measured, then its polls replaced by a 15-minute
//     challenge's, computed from each release's poll schedule;
//   - flows/s end to end (create customer, start, complete at the sandbox,
//     read completed) with 8 concurrent users; start p99 with 1 and 8
//     users; webhook-to-completed p99 with 8 users;
//   - the sandbox's rate limits are off and its Argon2id is light (see
//     startDevProcess);
//   - with N flows waiting on 2-hour challenges (CUSTODYFLOWS_BENCH_WAITING,
//     default 300): CPU of the dev process over 30 s (from 30 s after the
//     last start), its RSS, and start p99 while they wait.
//
// Metrics are named old-… and new-…, ratios new/old as …-ratio.
// CUSTODYFLOWS_BENCH_OLD_BIN and CUSTODYFLOWS_BENCH_NEW_BIN reuse built
// binaries. It takes several minutes: run it alone, on a quiet machine.
func BenchmarkDev_LeanVsRelease(b *testing.B) {
	if testing.Short() {
		b.Skip("the dev-stack comparison takes minutes")
	}
	oldBin, newBin := benchBinaries(b)
	waiting := 300
	if v := os.Getenv("CUSTODYFLOWS_BENCH_WAITING"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			b.Fatalf("CUSTODYFLOWS_BENCH_WAITING: got %q, want a count", v)
		}
		waiting = n
	}
	for range b.N {
		old := measureRelease(b, "old", oldBin, waiting, true)
		lean := measureRelease(b, "new", newBin, waiting, false)
		for name, v := range old {
			b.ReportMetric(v, "old-"+name)
		}
		for name, v := range lean {
			b.ReportMetric(v, "new-"+name)
			if o := old[name]; o != 0 {
				b.ReportMetric(v/o, name+"-ratio")
			}
		}
	}
}

// benchBinaries builds this tree and the release, unless given.
func benchBinaries(b *testing.B) (oldBin, newBin string) {
	dir := b.TempDir()
	oldBin, newBin = os.Getenv("CUSTODYFLOWS_BENCH_OLD_BIN"), os.Getenv("CUSTODYFLOWS_BENCH_NEW_BIN")
	build := func(srcDir, out string) {
		cmd := exec.Command("go", "build", "-o", out, "./cmd/custodyflows")
		cmd.Dir = srcDir
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=1")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", srcDir, err, msg)
		}
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		b.Fatalf("git rev-parse: %v", err)
	}
	repo := strings.TrimSpace(string(root))
	if newBin == "" {
		newBin = filepath.Join(dir, "custodyflows-new")
		build(repo, newBin)
	}
	if oldBin == "" {
		wt := filepath.Join(dir, "release")
		if msg, err := exec.Command("git", "-C", repo, "worktree", "add", "--detach", wt, releaseCommit).CombinedOutput(); err != nil {
			b.Fatalf("git worktree add %s: %v\n%s", releaseCommit, err, msg)
		}
		defer func() {
			if msg, err := exec.Command("git", "-C", repo, "worktree", "remove", "--force", wt).CombinedOutput(); err != nil {
				b.Errorf("git worktree remove: %v\n%s", err, msg)
			}
		}()
		oldBin = filepath.Join(dir, "custodyflows-old")
		build(wt, oldBin)
	}
	return oldBin, newBin
}

// measureRelease runs every measurement on one binary.
func measureRelease(b *testing.B, label, bin string, waiting int, legacy bool) map[string]float64 {
	m := map[string]float64{}
	ttl := 30 * time.Second
	d := startDevProcess(b, bin, ttl)

	// One completed initialize flow, alone on the stack.
	u := d.user(b, label+"-one")
	f := u.completedFlow(b)
	c := d.counts(b, f.ID, f.CustomerID, flow.KindInitialize.EventType())
	m["init-events"], m["init-wfts"], m["init-actions"] = float64(c.events), float64(c.wfts), float64(c.actions)
	b.Logf("%s: completed initialize: %+v", label, c)

	// One flow left alone until its 30 s challenge expires.
	exp := d.user(b, label+"-exp")
	ef := exp.start(b, flow.KindInitialize)
	exp.waitStatus(b, ef.ID, flow.StatusExpired, ttl+time.Minute)
	ce := d.counts(b, ef.ID, ef.CustomerID, flow.EventFlowExpired)
	m["expired30s-events"], m["expired30s-actions"] = float64(ce.events), float64(ce.actions)
	// The same flow with a 15-minute challenge: only its polls differ.
	fifteen := 15 * time.Minute
	if legacy {
		// Each poll is a timer and an activity: 2 actions and 11 events
		// (timer started and fired, activity scheduled, started and
		// completed, two workflow tasks of three events).
		extra := len(workflows.LegacyPolls(fifteen)) - len(workflows.LegacyPolls(ttl))
		m["expired15m-actions"] = float64(ce.actions + 2*extra)
		m["expired15m-events"] = float64(ce.events + 11*extra)
	} else {
		// Each poll is one more attempt of the same activity: 1 action,
		// no event.
		extra := len(workflows.PollAttempts(fifteen)) - len(workflows.PollAttempts(ttl))
		m["expired15m-actions"] = float64(ce.actions + extra)
		m["expired15m-events"] = float64(ce.events)
	}
	b.Logf("%s: expired (30 s challenge): %+v; 15 min computed: %v actions, %v events", label, ce, m["expired15m-actions"], m["expired15m-events"])

	// 1 user, then 8 users, each running whole flows.
	one := d.load(b, label+"-u1", 1, 20)
	m["start-p99-1user-ms"] = percentileMS(one.starts, 0.99)
	eight := d.load(b, label+"-u8", 8, 12)
	m["flows-per-s-8users"] = eight.rate
	m["start-p99-8users-ms"] = percentileMS(eight.starts, 0.99)
	m["complete-p99-8users-ms"] = percentileMS(eight.completes, 0.99)
	d.stop(b)

	if waiting > 0 {
		w := startDevProcess(b, bin, 2*time.Hour)
		u := w.user(b, label+"-wait")
		// Paced at 4 starts/s: two POSTs each, within the sandbox's 10
		// POST/s, so no start fails on Planbok's rate limit.
		for range waiting {
			next := time.Now().Add(250 * time.Millisecond)
			u.start(b, flow.KindInitialize)
			time.Sleep(time.Until(next))
		}
		time.Sleep(30 * time.Second)
		cpu := w.cpuOver(b, 30*time.Second)
		m[fmt.Sprintf("cpu-core-%dwaiting", waiting)] = cpu
		m[fmt.Sprintf("rss-mb-%dwaiting", waiting)] = w.rssMB(b)
		ws := w.load(b, label+"-w", 1, 10)
		m[fmt.Sprintf("start-p99-%dwaiting-ms", waiting)] = percentileMS(ws.starts, 0.99)
		b.Logf("%s: %d waiting: %.2f of a core, %.0f MB", label, waiting, cpu, m[fmt.Sprintf("rss-mb-%dwaiting", waiting)])
		w.stop(b)
	}
	return m
}

// devProcess is `custodyflows dev` running in its own process.
type devProcess struct {
	cmd                    *exec.Cmd
	api, sandbox, temporal string
	client                 client.Client
	done                   chan struct{}
}

var (
	bannerAPI      = regexp.MustCompile(`^\s+API\s+(\S+)`)
	bannerGateway  = regexp.MustCompile(`^\s+Gateway\s+(\S+)`)
	bannerTemporal = regexp.MustCompile(`^\s+Temporal\s+(\S+)\s+\(namespace`)
)

func startDevProcess(b *testing.B, bin string, ttl time.Duration, extraArgs ...string) *devProcess {
	b.Helper()
	args := []string{"dev", "--data-dir", b.TempDir(), "--http-addr", "127.0.0.1:0",
		"--sandbox-addr", "127.0.0.1:0", "--temporal-port", "0", "--ui-port", "0",
		"--challenge-ttl", ttl.String(),
		// The load here (several POSTs per flow, 8 users) is beyond the
		// sandbox's 10 POST/s: with the limit on, starts fail with 502
		// before anything about Temporal is measured.
		"--sandbox-rate-limit=false",
		// The sandbox stands in for Planbok, whose Gateway runs elsewhere:
		// its Argon2id at 64 MiB per derivation (two or three per
		// completed initialize) on the same two cores would measure the
		// sandbox's cryptography, not custodyflows.
		"--sandbox-kdf", "light"}
	cmd := exec.Command(bin, append(args, extraArgs...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", bin, err)
	}
	d := &devProcess{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if m := bannerAPI.FindStringSubmatch(line); m != nil {
				d.api = m[1]
			}
			if m := bannerGateway.FindStringSubmatch(line); m != nil {
				d.sandbox = m[1]
			}
			if m := bannerTemporal.FindStringSubmatch(line); m != nil {
				d.temporal = m[1]
			}
			if strings.HasPrefix(strings.TrimSpace(line), "Data") {
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(d.done)
	}()
	select {
	case <-ready:
	case <-d.done:
		b.Fatalf("%s dev exited before its banner", bin)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		b.Fatalf("%s dev: no banner within 60 s", bin)
	}
	c, err := client.Dial(client.Options{HostPort: strings.TrimPrefix(d.temporal, "http://"), Namespace: "default", Logger: quietSDKLogger{}})
	if err != nil {
		d.stop(b)
		b.Fatalf("dial temporal %s: %v", d.temporal, err)
	}
	d.client = c
	return d
}

func (d *devProcess) stop(b *testing.B) {
	b.Helper()
	if d.client != nil {
		d.client.Close()
	}
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
	}
	_ = d.cmd.Wait()
}

// freeze stops the dev process (SIGSTOP) so that it takes no CPU while
// another is measured; thaw resumes it.
func (d *devProcess) freeze(b *testing.B) {
	b.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		b.Fatalf("freeze dev: %v", err)
	}
}

func (d *devProcess) thaw(b *testing.B) {
	b.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		b.Fatalf("thaw dev: %v", err)
	}
}

// kill ends the dev process, frozen or not, if it still runs: a cleanup
// for a benchmark that failed before stopping it.
func (d *devProcess) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGCONT)
	_ = d.cmd.Process.Kill()
}

// historyCounts is what a flow cost over every workflow it touched.
type historyCounts struct {
	workflows, events, wfts, actions int
}

// counts waits for the flow workflow to close, then counts the histories
// of the flow, its customer workflow and the flow's NotifyApp workflows.
func (d *devProcess) counts(b *testing.B, flowID, customerID string, events ...flow.EventType) historyCounts {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.client.GetWorkflow(ctx, flowID, "").Get(ctx, nil); err != nil {
		b.Fatalf("flow workflow %s: %v", flowID, err)
	}
	// Let the customer workflow take the flow's last signal or result.
	time.Sleep(time.Second)
	ids := []string{flowID, flow.CustomerWorkflowID(customerID)}
	for _, ev := range events {
		ids = append(ids, flow.NotifyWorkflowID(flowID+"."+string(ev)))
	}
	var c historyCounts
	for _, id := range ids {
		evs, err := d.history(ctx, id)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue // no such workflow in this release
		}
		if err != nil {
			b.Fatalf("history of %s: %v", id, err)
		}
		c.workflows++
		b.Logf("  %s: %d events, %d actions", id, len(evs), actionsOf(evs))
		c.events += len(evs)
		for _, e := range evs {
			if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED {
				c.wfts++
			}
		}
		c.actions += actionsOf(evs)
	}
	return c
}

func (d *devProcess) history(ctx context.Context, id string) ([]*historypb.HistoryEvent, error) {
	var out []*historypb.HistoryEvent
	it := d.client.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// actionsOf counts the billable actions of one workflow history, following
// Temporal Cloud's list (docs.temporal.io/cloud/actions):
//
//   - a workflow started by a client: 1; a child workflow: 2, counted in the
//     parent (start and execution), not again in the child;
//   - a timer started, a signal received (whoever sent it), an update
//     accepted, a side effect or local activities (all markers of one
//     workflow task together): 1 each;
//   - an activity: 1 per attempt. Attempts in retry backoff leave no event:
//     for AwaitChallenge they are computed from its retry policy over the
//     time it ran (workflows.PollAttempts), which is what the server does;
//   - a search-attribute upsert: 1, except TemporalChangeVersion alone.
//
// Queries (not in history) are not counted: the release answered every
// GET of an active flow with one; this tree answers from the store.
func actionsOf(evs []*historypb.HistoryEvent) int {
	n := 0
	scheduled := map[int64]*historypb.HistoryEvent{}
	markerTasks := map[int64]bool{}
	var lastWFT int64
	for _, e := range evs {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			if e.GetWorkflowExecutionStartedEventAttributes().GetParentWorkflowExecution() == nil {
				n++
			}
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			n += 2
		case enumspb.EVENT_TYPE_TIMER_STARTED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED:
			n++
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			lastWFT = e.GetEventId()
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if !markerTasks[lastWFT] {
				markerTasks[lastWFT] = true
				n++
			}
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			fields := e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
			if _, ok := fields["TemporalChangeVersion"]; !ok || len(fields) > 1 {
				n++
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			scheduled[e.GetEventId()] = e
		}
	}
	for _, e := range evs {
		var schedID int64
		attempts := 0
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := e.GetActivityTaskStartedEventAttributes()
			schedID, attempts = a.GetScheduledEventId(), int(a.GetAttempt())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			schedID = e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
			schedID = e.GetActivityTaskFailedEventAttributes().GetScheduledEventId()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			schedID = e.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
			schedID = e.GetActivityTaskCanceledEventAttributes().GetScheduledEventId()
		default:
			continue
		}
		s := scheduled[schedID]
		if s == nil {
			continue
		}
		if s.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == flow.ActivityAwaitChallenge {
			if e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED {
				continue // counted at its close
			}
			ran := e.GetEventTime().AsTime().Sub(s.GetEventTime().AsTime())
			n += len(workflows.PollAttempts(ran + time.Second))
			delete(scheduled, schedID)
			continue
		}
		if e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED {
			n += attempts
			delete(scheduled, schedID)
		}
	}
	return n
}

// benchUser is an app backend talking to one dev process.
type benchUser struct {
	d      *devProcess
	prefix string
	seq    int
	http   *http.Client
}

func (d *devProcess) user(_ *testing.B, prefix string) *benchUser {
	return &benchUser{d: d, prefix: prefix, http: &http.Client{Timeout: 60 * time.Second}}
}

func (u *benchUser) call(b *testing.B, method, url, key, keyHeader string, body any, want int, out any) {
	b.Helper()
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			b.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(keyHeader, key)
	resp, err := u.http.Do(req)
	if err != nil {
		b.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatalf("%s %s: read: %v", method, url, err)
	}
	if resp.StatusCode != want {
		b.Fatalf("%s %s: got %d %s, want %d", method, url, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.Fatalf("%s %s: decode %s: %v", method, url, raw, err)
		}
	}
}

func (u *benchUser) api(b *testing.B, method, path string, body any, want int, out any) {
	b.Helper()
	u.call(b, method, u.d.api+path, "Bearer dev-api-key", "Authorization", body, want, out)
}

// start creates a customer and starts a flow of kind for it.
func (u *benchUser) start(b *testing.B, kind flow.Kind) flow.Flow {
	b.Helper()
	u.seq++
	var c flow.Customer
	u.api(b, http.MethodPost, "/v1/customers", map[string]string{"name": "Bench", "refId": fmt.Sprintf("%s-%d", u.prefix, u.seq)}, http.StatusCreated, &c)
	var f flow.Flow
	u.api(b, http.MethodPost, "/v1/customers/"+c.ID+"/"+kind.Route(), map[string]string{"redirectUrl": "http://localhost/back"}, http.StatusCreated, &f)
	return f
}

// complete does on the sandbox what the person does on the Gateway.
func (u *benchUser) complete(b *testing.B, challengeID string) {
	b.Helper()
	body := map[string]any{"pin": testPIN, "recovery": securityQuestions(testAnswers...)}
	u.call(b, http.MethodPost, u.d.sandbox+"/sandbox/v1/challenges/"+challengeID+"/complete", "dev-planbok-key", "PLANBOK-X-API-KEY", body, http.StatusOK, nil)
}

// waitStatus reads the flow until it has status: an app that polls its
// flow after the redirect.
func (u *benchUser) waitStatus(b *testing.B, id string, status flow.Status, limit time.Duration) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for {
		var f flow.Flow
		u.api(b, http.MethodGet, "/v1/flows/"+id, nil, http.StatusOK, &f)
		if f.Status == status {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("flow %s: got %s after %v, want %s", id, f.Status, limit, status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (u *benchUser) completedFlow(b *testing.B) flow.Flow {
	b.Helper()
	f := u.start(b, flow.KindInitialize)
	u.complete(b, f.ChallengeID)
	u.waitStatus(b, f.ID, flow.StatusCompleted, 30*time.Second)
	return f
}

type loadResult struct {
	starts, completes []time.Duration
	rate              float64
}

// load runs users concurrent users, each running flows whole flows, and
// times each start and each completion (sandbox completion answered until
// the API reads completed).
func (d *devProcess) load(b *testing.B, prefix string, users, flows int) loadResult {
	var mu sync.Mutex
	var res loadResult
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := d.user(b, fmt.Sprintf("%s-%d", prefix, i))
			for range flows {
				u.seq++
				var c flow.Customer
				u.api(b, http.MethodPost, "/v1/customers", map[string]string{"name": "Bench", "refId": fmt.Sprintf("%s-%d", u.prefix, u.seq)}, http.StatusCreated, &c)
				s := time.Now()
				var f flow.Flow
				u.api(b, http.MethodPost, "/v1/customers/"+c.ID+"/initialize", map[string]string{"redirectUrl": "http://localhost/back"}, http.StatusCreated, &f)
				started := time.Since(s)
				u.complete(b, f.ChallengeID)
				s = time.Now()
				u.waitStatus(b, f.ID, flow.StatusCompleted, 30*time.Second)
				completed := time.Since(s)
				mu.Lock()
				res.starts = append(res.starts, started)
				res.completes = append(res.completes, completed)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.rate = float64(users*flows) / time.Since(t0).Seconds()
	return res
}

// cpuOver returns the dev process's CPU use over d, in cores.
func (d *devProcess) cpuOver(b *testing.B, window time.Duration) float64 {
	b.Helper()
	ticks := func() float64 {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
		if err != nil {
			b.Fatalf("read stat: %v", err)
		}
		// Fields after the command name: utime and stime are 14 and 15.
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return u + s
	}
	t0, c0 := time.Now(), ticks()
	time.Sleep(window)
	const clockTicks = 100 // USER_HZ on Linux
	return (ticks() - c0) / clockTicks / time.Since(t0).Seconds()
}

func (d *devProcess) rssMB(b *testing.B) float64 {
	return d.statusMB(b, "VmRSS")
}

// anonMB is the part of RSS that is the process's own memory (heap,
// stacks, C allocations); the rest is pages of the binary mapped from its
// file, shared and reclaimable, which grow with the code a run touched, not
// with the flows it holds.
func (d *devProcess) anonMB(b *testing.B) float64 {
	return d.statusMB(b, "RssAnon")
}

// statusMB reads a kB field of /proc/<pid>/status in MB.
func (d *devProcess) statusMB(b *testing.B, field string) float64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("read status: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("%s %q: %v", field, rest, err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/<pid>/status", field)
	return 0
}

// percentileMS returns the p-th percentile of d in milliseconds.
func percentileMS(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()) / 1000
}

// quietSDKLogger drops the SDK client's logs.
type quietSDKLogger struct{}

func (quietSDKLogger) Debug(string, ...any) {}
func (quietSDKLogger) Info(string, ...any)  {}
func (quietSDKLogger) Warn(string, ...any)  {}
func (quietSDKLogger) Error(string, ...any) {}
