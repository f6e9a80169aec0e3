package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/custodyflows/custodyflows/flow"
)

// eachBackendBench runs bench once per backend on a fresh store.
func eachBackendBench(b *testing.B, bench func(b *testing.B, s *Store)) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) { bench(b, openPath(b, be.newDSN(b))) })
	}
}

// BenchmarkUpsertFlow measures the two writes every flow makes (start, then
// awaiting the user), each a write transaction (BEGIN IMMEDIATE on a WAL
// file; a locked read-modify-write on PostgreSQL).
func BenchmarkUpsertFlow(b *testing.B) {
	eachBackendBench(b, func(b *testing.B, s *Store) {
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			f := newFlow(fmt.Sprintf("f%d", i), fmt.Sprintf("c%d", i%100), flow.KindUpdatePIN, 0)
			if err := s.UpsertFlow(ctx, f, FlowMeta{}); err != nil {
				b.Fatal(err)
			}
			f.Status, f.ChallengeID = flow.StatusAwaitingUser, fmt.Sprintf("ch%d", i)
			if err := s.UpsertFlow(ctx, f, FlowMeta{}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkRecordWebhook measures the inbox insert of the webhook intake,
// one new key in two and one duplicate in two.
func BenchmarkRecordWebhook(b *testing.B) {
	eachBackendBench(b, func(b *testing.B, s *Store) {
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			e := &InboxEntry{IdempotencyKey: fmt.Sprintf("k%d", i/2), EventType: "challenge.completed", CustomerID: "c1"}
			if _, err := s.RecordWebhook(ctx, e); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkFindFlowByID measures the API's most common read.
func BenchmarkFindFlowByID(b *testing.B) {
	eachBackendBench(b, func(b *testing.B, s *Store) {
		ctx := context.Background()
		for i := range 1000 {
			if err := s.UpsertFlow(ctx, newFlow(fmt.Sprintf("f%d", i), "c1", flow.KindUpdatePIN, i), FlowMeta{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.FindFlowByID(ctx, fmt.Sprintf("f%d", i%1000)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
