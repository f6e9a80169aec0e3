package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

// BenchmarkDev_WaitingFlows measures what flows waiting for their users
// cost the whole dev process (API, worker, sandbox and the embedded
// Temporal server), on this tree alone:
//
//   - N flows started on 2-hour challenges (CUSTODYFLOWS_BENCH_WAITING,
//     default 10000), by 16 users at once, and how long that took;
//   - five minutes later, CPU of the process over 60 s and its RSS. Polls
//     are then still at the poll queue's --poll-rate cap: 10,000 flows'
//     quick first polls take longer than that to work off;
//   - start p50 and p99 of one user running whole flows, with the N
//     waiting and, as the baseline, on a second dev process with none
//     waiting. The two are measured in turns of 50 flows, six each, and
//     the process not measured is frozen (SIGSTOP): this machine's speed
//     drifts by tens of percent over minutes (other tenants' CPU steal),
//     so a baseline taken ten minutes earlier could be off by more than
//     the difference measured. Latencies are pooled over the turns.
//
// CUSTODYFLOWS_BENCH_NEW_BIN reuses a built binary;
// CUSTODYFLOWS_BENCH_DEV_ARGS adds flags to `dev` (e.g. --workflow-cache
// 1000); CUSTODYFLOWS_BENCH_SETTLE replaces the 5-minute wait before the
// measurements. It takes about as many seconds as N/20 plus seven minutes:
// run it alone, on a quiet machine.
func BenchmarkDev_WaitingFlows(b *testing.B) {
	if testing.Short() {
		b.Skip("thousands of flows take minutes")
	}
	waiting := 10000
	if v := os.Getenv("CUSTODYFLOWS_BENCH_WAITING"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("CUSTODYFLOWS_BENCH_WAITING: got %q, want a positive count", v)
		}
		waiting = n
	}
	bin := os.Getenv("CUSTODYFLOWS_BENCH_NEW_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "custodyflows")
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=1")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build: %v\n%s", err, msg)
		}
	}
	for range b.N {
		devArgs := strings.Fields(os.Getenv("CUSTODYFLOWS_BENCH_DEV_ARGS"))
		base := startDevProcess(b, bin, 2*time.Hour, devArgs...)
		b.Cleanup(base.kill)
		base.load(b, "base-warm", 1, 20)
		base.freeze(b)
		d := startDevProcess(b, bin, 2*time.Hour, devArgs...)
		b.Cleanup(d.kill)
		d.load(b, "warm", 1, 20)

		began := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := d.user(b, fmt.Sprintf("wait-%d", i))
				for next.Add(1) <= int64(waiting) {
					u.start(b, flow.KindInitialize)
				}
			}()
		}
		wg.Wait()
		took := time.Since(began)
		b.Logf("%d flows waiting, started in %s (%.1f/s)", waiting, took.Round(time.Second), float64(waiting)/took.Seconds())

		// Past the quick polls of the first minutes (0 … 254 s) for the
		// last flows started.
		settle := 5 * time.Minute
		if v := os.Getenv("CUSTODYFLOWS_BENCH_SETTLE"); v != "" {
			var err error
			if settle, err = time.ParseDuration(v); err != nil {
				b.Fatalf("CUSTODYFLOWS_BENCH_SETTLE: %v", err)
			}
		}
		time.Sleep(settle)
		cpu := d.cpuOver(b, time.Minute)
		rss, anon := d.rssMB(b), d.anonMB(b)
		var during, none []time.Duration
		for turn := range 6 {
			// A prefix per turn: a refId used again names the same customer.
			during = append(during, d.load(b, fmt.Sprintf("during%d", turn), 1, 50).starts...)
			d.freeze(b)
			base.thaw(b)
			none = append(none, base.load(b, fmt.Sprintf("base%d", turn), 1, 50).starts...)
			base.freeze(b)
			d.thaw(b)
		}
		baseP50, baseP99 := percentileMS(none, 0.5), percentileMS(none, 0.99)
		duringP50, duringP99 := percentileMS(during, 0.5), percentileMS(during, 0.99)
		b.Logf("start p50 %.0f ms waiting, %.0f ms with none waiting", duringP50, baseP50)
		b.Logf("%d waiting: %.3f of a core, %.0f MB RSS (%.0f MB anonymous, %.0f MB the binary's mapped pages); start p99 %.0f ms (%.0f ms with none waiting)",
			waiting, cpu, rss, anon, rss-anon, duringP99, baseP99)
		b.ReportMetric(cpu, "cpu-core-waiting")
		b.ReportMetric(rss, "rss-mb-waiting")
		b.ReportMetric(anon, "rss-anon-mb-waiting")
		b.ReportMetric(float64(waiting)/took.Seconds(), "waiting-starts-per-s")
		b.ReportMetric(baseP99, "start-p99-none-waiting-ms")
		b.ReportMetric(duringP99, "start-p99-waiting-ms")
		b.ReportMetric(duringP99/baseP99, "start-p99-waiting-ratio")
		b.ReportMetric(duringP50/baseP50, "start-p50-waiting-ratio")
		d.stop(b)
		base.thaw(b)
		base.stop(b)
	}
}
