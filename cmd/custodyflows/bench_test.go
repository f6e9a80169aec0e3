package main

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

// BenchmarkDev_FlowLatency measures, on the whole dev stack over real HTTP,
// the two latencies an app backend feels:
//
//   - start: POST …/initialize until the 201 with gatewayUrl (Update-with-
//     Start, preflight, challenge creation at the sandbox);
//   - complete: the user finishing the Gateway until GET /v1/flows/{id}
//     says completed (sandbox webhook → intake → signal → the flow reads
//     the challenge, syncs the customer and records).
//
// It reports p50 and p99 of each in milliseconds. For stable percentiles
// run it with a fixed count: go test -run '^$' -bench FlowLatency -benchtime 100x ./cmd/custodyflows
func BenchmarkDev_FlowLatency(b *testing.B) {
	s := startStack(b)
	var starts, completes []time.Duration
	b.ResetTimer()
	for i := range b.N {
		cust := s.api.createCustomer("Bench", fmt.Sprintf("bench-%d-%d", b.N, i))
		t0 := time.Now()
		f, _ := s.api.start(cust.ID, flow.KindInitialize, nil, http.StatusCreated)
		starts = append(starts, time.Since(t0))

		s.complete(f.ChallengeID, map[string]any{"pin": testPIN, "recovery": securityQuestions(testAnswers...)})
		t1 := time.Now()
		for s.api.flow(f.ID).Status != flow.StatusCompleted {
			if time.Since(t1) > 30*time.Second {
				b.Fatalf("flow %s not completed within 30s", f.ID)
			}
			time.Sleep(2 * time.Millisecond)
		}
		completes = append(completes, time.Since(t1))
	}
	b.StopTimer()
	report(b, "start", starts)
	report(b, "complete", completes)
}

func report(b *testing.B, name string, d []time.Duration) {
	slices.Sort(d)
	pct := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), name+"-p50-ms")
	b.ReportMetric(pct(0.99), name+"-p99-ms")
}
