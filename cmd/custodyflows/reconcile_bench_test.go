package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox"
	"github.com/custodyflows/custodyflows/store"
)

// BenchmarkReconcile1000 measures one reconcile run over 1,000 stored
// customers against the sandbox with Planbok's rate limits on (20 GET/s):
// 50 got a PIN and 20 got locked out behind custodyflows' back, 10 are
// unknown at Planbok. Run it alone:
//
//	go test ./cmd/custodyflows -run '^$' -bench Reconcile1000 -benchtime 1x
//
// CUSTODYFLOWS_BENCH_RECONCILE_RATE sets --reconcile-rate (default 20,
// Planbok's whole GET budget; production defaults to 5).
//
// Measured on 2 shared cores: at 20/s, 50.0 s (20.0 reads/s), 1,000
// Planbok reads, 70 corrections, 10 missing, no failed attempt (no 429);
// at 5/s, 234.5 s (4.3 reads/s: the page boundaries cost a little). With
// 4 checks in flight instead of 8, 20/s reached only 8.9 reads/s.
func BenchmarkReconcile1000(b *testing.B) {
	rate := 20.0
	if v := os.Getenv("CUSTODYFLOWS_BENCH_RECONCILE_RATE"); v != "" {
		var err error
		if rate, err = strconv.ParseFloat(v, 64); err != nil {
			b.Fatal(err)
		}
	}
	s := startStack(b, func(c *devConfig) {
		c.SandboxRateLimit = true
		c.Reconcile = reconcileConfig{Rate: rate}
	})
	ctx := context.Background()
	const total, pinsElsewhere, lockedElsewhere, unknown = 1000, 50, 20, 10

	// 990 customers at Planbok (10 POST/s: about 100 s), all stored.
	ids := make([]string, 0, total)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range total - unknown {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for {
				c, err := s.planbok.CreateCustomer(ctx, planbok.CreateCustomerParams{Name: fmt.Sprintf("Bench %d", i), RefID: fmt.Sprintf("bench-%d", i)})
				if err != nil {
					var pe *planbok.Error
					if errors.As(err, &pe) && pe.StatusCode == http.StatusTooManyRequests {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					b.Error(err)
					return
				}
				if err := s.Store.UpsertCustomer(ctx, &store.Customer{ID: c.ID, Name: c.Name, RefID: c.RefID}); err != nil {
					b.Error(err)
				}
				mu.Lock()
				ids = append(ids, c.ID)
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	for i := range unknown {
		if err := s.Store.EnsureCustomer(ctx, fmt.Sprintf("ffff%020d", i)); err != nil {
			b.Fatal(err)
		}
	}
	// Changes behind custodyflows' back (sandbox helpers: not rate limited).
	if err := s.helper.SetFaults(ctx, sandbox.Faults{WebhookDropRate: 1}); err != nil {
		b.Fatal(err)
	}
	for _, id := range ids[:pinsElsewhere+lockedElsewhere] {
		if _, err := s.helper.ExternalFlow(ctx, id, sandbox.ExternalFlowInput{Task: planbok.TaskInitialize,
			CompleteInput: sandbox.CompleteInput{PIN: testPIN}}); err != nil {
			b.Fatal(err)
		}
	}
	// Customers already known with a PIN, then locked out elsewhere.
	for _, id := range ids[pinsElsewhere : pinsElsewhere+lockedElsewhere] {
		if _, err := s.Store.UpdateSecurity(ctx, id, store.SecurityUpdate{HasPIN: true, SyncedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
		for range 5 {
			_, _ = s.helper.ExternalFlow(ctx, id, sandbox.ExternalFlowInput{Task: planbok.TaskUpdatePIN,
				CompleteInput: sandbox.CompleteInput{CurrentPIN: "000000", NewPIN: "111111"}})
		}
	}
	failedBefore := metricValue(b, s.APIURL, `temporal_activity_execution_failed_total`, `activity_type="ReconcileCustomer"`)

	for b.Loop() {
		start := time.Now()
		rep := s.reconcileRun(30 * time.Minute)
		elapsed := time.Since(start)
		failed := metricValue(b, s.APIURL, `temporal_activity_execution_failed_total`, `activity_type="ReconcileCustomer"`) - failedBefore
		b.ReportMetric(elapsed.Seconds(), "s/run")
		b.ReportMetric(float64(rep.PlanbokCalls), "planbok-reads")
		b.ReportMetric(float64(rep.CorrectionsTotal), "corrections")
		b.ReportMetric(float64(rep.CustomersChecked), "customers")
		b.ReportMetric(float64(len(rep.MissingAtPlanbok)), "missing")
		b.ReportMetric(failed, "failed-attempts")
		b.Logf("rate %g/s: %d customers checked in %s (%.1f reads/s), %d Planbok reads, %d corrections, %d missing, %d failed, %g failed attempts",
			rate, rep.CustomersChecked, elapsed.Round(time.Millisecond), float64(rep.PlanbokCalls)/elapsed.Seconds(),
			rep.PlanbokCalls, rep.CorrectionsTotal, len(rep.MissingAtPlanbok), rep.CustomersFailed, failed)
		if rep.CustomersChecked != total || rep.CorrectionsTotal != pinsElsewhere+lockedElsewhere ||
			len(rep.MissingAtPlanbok) != unknown || rep.CustomersFailed != 0 {
			b.Fatalf("report: got %+v", rep)
		}
	}
}

// metricValue sums the samples of a metric whose labels contain match, as
// the /metrics of the API at apiURL shows them (0 when there are none).
func metricValue(tb testing.TB, apiURL, name, match string) float64 {
	tb.Helper()
	time.Sleep(1100 * time.Millisecond) // the SDK's metrics reach the registry every second
	resp, err := http.Get(apiURL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !(strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ")) || !strings.Contains(line, match) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}
