package store

import (
	"context"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

func TestRecordWebhook_DetectsDuplicates(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		received := time.Date(2026, 3, 1, 10, 0, 0, 42, time.UTC)
		first := &InboxEntry{
			IdempotencyKey: "idem-1", WebhookID: "wh-1", EventType: "customer.pin_setup",
			CustomerID: "c1", ChallengeID: "ch-1", ChallengeStatus: "verified", BodySHA256: "ab12", ReceivedAt: received,
		}
		dup, err := s.RecordWebhook(ctx, first)
		if err != nil || dup {
			t.Fatalf("first RecordWebhook: got duplicate=%v err=%v, want false, nil", dup, err)
		}
		if first.ID == 0 {
			t.Error("ID after insert: got 0, want the row id")
		}
		again := &InboxEntry{IdempotencyKey: "idem-1", WebhookID: "wh-2", EventType: "other", ChallengeStatus: "failed", ReceivedAt: received.Add(time.Minute)}
		dup, err = s.RecordWebhook(ctx, again)
		if err != nil || !dup {
			t.Fatalf("second RecordWebhook: got duplicate=%v err=%v, want true, nil", dup, err)
		}
		if again.ID != first.ID {
			t.Errorf("duplicate's ID: got %d, want the first row's %d", again.ID, first.ID)
		}
		got, err := s.FindWebhook(ctx, "idem-1")
		if err != nil {
			t.Fatal(err)
		}
		if *got != *first {
			t.Errorf("stored entry:\ngot  %+v\nwant %+v (the first delivery, unchanged)", *got, *first)
		}
		other := &InboxEntry{IdempotencyKey: "idem-2"}
		if dup, err := s.RecordWebhook(ctx, other); err != nil || dup {
			t.Fatalf("other key: got duplicate=%v err=%v, want false, nil", dup, err)
		}
		if other.ID <= first.ID {
			t.Errorf("second row id: got %d, want > %d", other.ID, first.ID)
		}
	})
}

func TestSetWebhookOutcome_RoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := &InboxEntry{IdempotencyKey: "idem-1", EventType: "challenge.completed"}
		if _, err := s.RecordWebhook(ctx, e); err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 3, 1, 10, 0, 1, 0, time.FixedZone("X", 3600))
		if err := s.SetWebhookOutcome(ctx, "idem-1", "signalled", at); err != nil {
			t.Fatalf("SetWebhookOutcome: %v", err)
		}
		got, err := s.FindWebhook(ctx, "idem-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Outcome != "signalled" || !sameTime(got.ProcessedAt, &at) {
			t.Errorf("outcome: got %q at %s, want %q at %s", got.Outcome, fmtPtr(got.ProcessedAt), "signalled", at)
		}
		if got.ReceivedAt.IsZero() {
			t.Error("receivedAt: got zero, want the insert time")
		}
	})
}

func TestWebhook_NotFoundAndInvalid(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		wantCode(t, s.SetWebhookOutcome(ctx, "nope", "ignored", time.Time{}), flow.CodeNotFound)
		_, err := s.FindWebhook(ctx, "nope")
		wantCode(t, err, flow.CodeNotFound)
		if _, err := s.RecordWebhook(ctx, &InboxEntry{}); err == nil {
			t.Error("RecordWebhook with empty key: got nil error, want one")
		}
	})
}

// ChallengeSignalled answers for other rows of the same challenge and
// status whose outcome is "signalled", and for nothing else: not the asking
// row, not another status, not a row still received or whose signal failed.
func TestChallengeSignalled_MatchesOnlySignalledRows(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, r := range []struct{ key, challenge, status, outcome string }{
			{"pin-setup", "ch-1", "verified", "signalled"},
			{"completed", "ch-1", "verified", "received"},
			{"failed-signal", "ch-2", "verified", "signal_failed"},
			{"no-status", "ch-3", "", "signalled"},
			{"no-challenge", "", "verified", "signalled"},
			{"pending", "ch-4", "pending", "signalled"},
		} {
			if _, err := s.RecordWebhook(ctx, &InboxEntry{IdempotencyKey: r.key, EventType: "challenge.completed",
				ChallengeID: r.challenge, ChallengeStatus: r.status}); err != nil {
				t.Fatal(err)
			}
			if r.outcome != "received" {
				if err := s.SetWebhookOutcome(ctx, r.key, r.outcome, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, tt := range []struct {
			name                      string
			challenge, status, except string
			want                      bool
		}{
			{"other row signalled", "ch-1", "verified", "completed", true},
			{"only the asking row signalled", "ch-1", "verified", "pin-setup", false},
			{"another status", "ch-1", "failed", "completed", false},
			{"signal failed", "ch-2", "verified", "again", false},
			{"earlier row had no status", "ch-3", "verified", "again", false},
			{"earlier row pending", "ch-4", "verified", "again", false},
			{"unknown challenge", "ch-9", "verified", "again", false},
			{"empty challenge", "", "verified", "again", false},
		} {
			got, err := s.ChallengeSignalled(ctx, tt.challenge, tt.status, tt.except)
			if err != nil || got != tt.want {
				t.Errorf("%s: ChallengeSignalled(%q, %q, except %q): got %v, %v; want %v, nil",
					tt.name, tt.challenge, tt.status, tt.except, got, err, tt.want)
			}
		}
		got, err := s.FindWebhook(ctx, "pin-setup")
		if err != nil || got.ChallengeStatus != "verified" {
			t.Errorf("stored status: got %+v (%v), want verified", got, err)
		}
	})
}
