package workflows

import (
	"context"
	"errors"

	"github.com/stretchr/testify/mock"
	"testing"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

// legacy makes the flow run the shape recorded before versionLean, as a
// flow started by an older release and still running does.
func (ft *flowTest) legacy() *flowTest {
	ft.env.OnGetVersion(versionLean, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	return ft
}

func TestPollAttempts_Schedule(t *testing.T) {
	wantEqual(t, "attempts in 15 min", PollAttempts(15*time.Minute), secs(0, 2, 6, 14, 30, 62, 126, 254, 494, 734))
	// The worst-case detection delay without webhooks is the widest gap:
	// at most 32 s within the first minute, PollWorstDelay after.
	at := PollAttempts(2 * time.Hour)
	for i := 1; i < len(at); i++ {
		gap := at[i] - at[i-1]
		if gap > PollWorstDelay {
			t.Errorf("gap before attempt %d at %v: got %v, want <= %v", i, at[i], gap, PollWorstDelay)
		}
		if at[i] <= time.Minute && gap > 32*time.Second {
			t.Errorf("gap before attempt %d at %v: got %v, want <= 32s within the first minute", i, at[i], gap)
		}
	}
}

func TestFlowLean_VerifiedByWebhook(t *testing.T) {
	for _, kind := range flow.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ft := newFlowTest(t, kind)
			ft.statusAt(61*time.Second, "verified")
			ft.signal(61*time.Second, ft.challengeID(), "wh-1")
			got := ft.run()

			wantStatus(t, got, flow.StatusCompleted, "")
			wantEqual(t, "completedAt", got.CompletedAt, ptr(at(61*time.Second)))
			wantEqual(t, "challengeId", got.ChallengeID, ft.challengeID())
			wantEqual(t, "expiresAt", got.ExpiresAt, ptr(at(15*time.Minute)))
			wantEqual(t, "polls", ft.fakes.polls, secs(0, 2, 6, 14, 30))
			wantEqual(t, "webhook-triggered reads", ft.fakes.gets, secs(61))
			// No starting row: the API asks the workflow until the row exists.
			wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCompleted})
			for _, r := range ft.fakes.records {
				if r.IdempotencyKey != "key-1" || r.RequestHash != "hash-1" {
					t.Errorf("record key/hash: got %q/%q, want key-1/hash-1", r.IdempotencyKey, r.RequestHash)
				}
			}
			wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCompleted})
			// awaiting_user is signalled after it is recorded; completed
			// before (a reader who sees it completed finds the slot free).
			wantEqual(t, "rows recorded before each parent signal", ft.parent.recordedBefore, []int{1, 1})
			wantEqual(t, "syncs", ft.fakes.syncs, []flow.SyncCustomerInput{{CustomerID: testCustomer, Kind: kind, FlowID: ft.in.FlowID, At: at(61 * time.Second)}})
			wantEqual(t, "audits", ft.fakes.audits, []flow.AuditInput{{
				At: at(61 * time.Second), Actor: "apikey-1", Action: "flow." + string(kind),
				CustomerID: testCustomer, FlowID: ft.in.FlowID, Outcome: "completed",
			}})
			// Events go by activity, not by a NotifyApp workflow.
			wantEqual(t, "NotifyApp workflows", ft.events.types(), []flow.EventType(nil))
			wantEqual(t, "delivered", ft.fakes.deliveredTypes(), []flow.EventType{kind.EventType()})
			d := ft.fakes.deliveries[0]
			wantEqual(t, "event id", d.ID, ft.in.FlowID+"."+string(kind.EventType()))
			wantEqual(t, "event data", d.Event.Data, flow.AppEventData{
				CustomerID: testCustomer, FlowID: ft.in.FlowID, Kind: kind, Status: flow.StatusCompleted,
				Security: flow.Security{HasPIN: true, HasRecovery: true, CanTransact: true},
			})
		})
	}
}

// TestFlowLean_PollingDetectionDelay completes the challenge at several
// moments with no webhook and checks when the flow sees it: at the next
// poll attempt, never more than PollWorstDelay later.
func TestFlowLean_PollingDetectionDelay(t *testing.T) {
	for _, tt := range []struct{ verified, seen time.Duration }{
		{61 * time.Second, 62 * time.Second},
		{63 * time.Second, 126 * time.Second},
		{4*time.Minute + 15*time.Second, 8*time.Minute + 14*time.Second},
		{9 * time.Minute, 12*time.Minute + 14*time.Second},
	} {
		t.Run(tt.verified.String(), func(t *testing.T) {
			ft := newFlowTest(t, flow.KindRecovery)
			ft.statusAt(tt.verified, "verified")
			got := ft.run()

			wantStatus(t, got, flow.StatusCompleted, "")
			wantEqual(t, "completedAt", got.CompletedAt, ptr(at(tt.seen)))
			if delay := tt.seen - tt.verified; delay > PollWorstDelay {
				t.Errorf("detection delay: got %v, want <= %v", delay, PollWorstDelay)
			}
			wantEqual(t, "webhook-triggered reads", ft.fakes.gets, []time.Duration(nil))
			wantEqual(t, "delivered", ft.fakes.deliveredTypes(), []flow.EventType{flow.KindRecovery.EventType()})
		})
	}
}

func TestFlowLean_Expired(t *testing.T) {
	ft := newFlowTest(t, flow.KindExportPrivateKeys)
	got := ft.run()

	wantStatus(t, got, flow.StatusExpired, flow.CodeChallengeExpired)
	wantEqual(t, "updatedAt", got.UpdatedAt, at(15*time.Minute))
	wantEqual(t, "polls", ft.fakes.polls, PollAttempts(15*time.Minute))
	// The poll times out at the expiry; one last read lets a late
	// completion count.
	wantEqual(t, "final read", ft.fakes.gets, secs(15*60))
	wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusExpired})
	wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusExpired})
	wantEqual(t, "delivered", ft.fakes.deliveredTypes(), []flow.EventType{flow.EventFlowExpired})
}

func TestFlowLean_FailedLocksOut(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	locked := flow.Security{HasPIN: true, HasRecovery: true, LockedOut: true}
	ft.fakes.syncResult = func(int) flow.SyncCustomerResult {
		return flow.SyncCustomerResult{Security: locked, LockedOutNow: true}
	}
	ft.statusAt(20*time.Second, "failed")
	ft.signal(20*time.Second, ft.challengeID(), "wh-1")
	got := ft.run()

	wantStatus(t, got, flow.StatusFailed, flow.CodeChallengeFailed)
	wantEqual(t, "syncs", ft.fakes.syncs, []flow.SyncCustomerInput{{CustomerID: testCustomer, FlowID: ft.in.FlowID, At: at(20 * time.Second)}})
	wantEqual(t, "delivered", ft.fakes.deliveredTypes(), []flow.EventType{flow.EventLockedOut, flow.EventFlowFailed})
	for _, d := range ft.fakes.deliveries {
		wantEqual(t, "event id", d.ID, ft.in.FlowID+"."+string(d.Event.Type))
		wantEqual(t, "security", d.Event.Data.Security, locked)
	}
}

// TestFlowLean_DeliveryOutlivesTheEnd checks that a notify URL that keeps
// failing holds neither the customer's slot nor the recorded end: the flow
// frees and records first, then keeps the delivery retrying.
func TestFlowLean_DeliveryOutlivesTheEnd(t *testing.T) {
	ft := newFlowTest(t, flow.KindInitialize)
	failures := 0
	ft.env.OnActivity(flow.ActivityDeliverEvent, mock.Anything, mock.Anything).Return(func(_ context.Context, in flow.DeliverEventInput) error {
		if failures < 5 {
			failures++
			return errors.New("app answered 503")
		}
		return nil
	})
	ft.statusAt(10*time.Second, "verified")
	ft.signal(10*time.Second, ft.challengeID(), "wh-1")
	got := ft.run()

	wantStatus(t, got, flow.StatusCompleted, "")
	wantEqual(t, "delivery failures before success", failures, 5)
	wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCompleted})
	wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCompleted})
}

func TestDeliverOptions_ThreeDays(t *testing.T) {
	o := deliverOptions()
	if o.ScheduleToCloseTimeout < 72*time.Hour || o.RetryPolicy.MaximumAttempts != 0 {
		t.Errorf("deliver options: got %v and %d attempts, want >= 72h and unlimited attempts", o.ScheduleToCloseTimeout, o.RetryPolicy.MaximumAttempts)
	}
}

func TestFlowLean_Cancelled(t *testing.T) {
	ft := newFlowTest(t, flow.KindResetPIN)
	out := ft.cancel(10*time.Second, "cancel-1")
	got := ft.run()

	wantStatus(t, got, flow.StatusCancelled, flow.CodeCancelled)
	wantEqual(t, "updatedAt", got.UpdatedAt, at(10*time.Second))
	if !out.done || out.rejected != nil || out.err != nil {
		t.Fatalf("cancel update: got done=%v rejected=%v err=%v, want a result", out.done, out.rejected, out.err)
	}
	wantStatus(t, out.result, flow.StatusCancelled, flow.CodeCancelled)
	wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCancelled})
	wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCancelled})
	wantEqual(t, "delivered", ft.fakes.deliveredTypes(), []flow.EventType{flow.EventFlowCancelled})
	// The poll stops with the flow: no attempt after the cancel.
	wantEqual(t, "polls", ft.fakes.polls, secs(0, 2, 6))
}

func TestFlowLean_CancelledByOperator(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	ft.at(10*time.Second, func() { ft.env.CancelWorkflow() })
	got := ft.run()

	wantStatus(t, got, flow.StatusCancelled, flow.CodeCancelled)
	wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCancelled})
	wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusAwaitingUser, flow.StatusCancelled})
	wantEqual(t, "delivered", ft.fakes.deliveredTypes(), []flow.EventType{flow.EventFlowCancelled})
}

func TestFlowLean_FailedBeforeAwaitingUser(t *testing.T) {
	ft := newFlowTest(t, flow.KindInitialize)
	ft.fakes.createErr = func(int) error { return retryable("Planbok answered 503.") }
	got := ft.run()

	wantStatus(t, got, flow.StatusFailed, flow.CodePlanbokUnavailable)
	wantEqual(t, "CreateChallenge calls", len(ft.fakes.creates), 5)
	wantEqual(t, "updatedAt", got.UpdatedAt, at(7500*time.Millisecond))
	wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusFailed})
	wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusFailed})
	wantEqual(t, "polls", len(ft.fakes.polls), 0)
	wantEqual(t, "delivered", ft.fakes.deliveredTypes(), []flow.EventType{flow.EventFlowFailed})
}

func TestFlowLean_CancelWhileStarting(t *testing.T) {
	ft := newFlowTest(t, flow.KindResetPIN)
	ft.fakes.createErr = func(call int) error {
		if call == 1 {
			return retryable("Planbok answered 503.")
		}
		return nil
	}
	out := ft.cancel(100*time.Millisecond, "cancel-1")
	got := ft.run()

	wantStatus(t, got, flow.StatusCancelled, flow.CodeCancelled)
	wantStatus(t, out.result, flow.StatusCancelled, flow.CodeCancelled)
	wantEqual(t, "recorded", ft.fakes.recordedStatuses(), []flow.Status{flow.StatusCancelled})
	wantEqual(t, "parent signals", ft.parent.statuses(), []flow.Status{flow.StatusCancelled})
}

func TestFlowLean_IgnoresOtherAndDuplicateSignals(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	ft.signal(20*time.Second, "ch-someone-else", "wh-0")
	ft.signal(21*time.Second, ft.challengeID(), "wh-1")
	ft.signal(22*time.Second, ft.challengeID(), "wh-1")
	ft.signal(23*time.Second, "ch-someone-else", "wh-2")
	ft.statusAt(40*time.Second, "verified")
	ft.signal(40*time.Second, ft.challengeID(), "wh-3")
	ft.signal(40*time.Second, ft.challengeID(), "wh-3")
	got := ft.run()

	wantStatus(t, got, flow.StatusCompleted, "")
	wantEqual(t, "webhook-triggered reads", ft.fakes.gets, secs(21, 40))
	wantEqual(t, "delivered", ft.fakes.deliveredTypes(), []flow.EventType{flow.EventPINUpdated})
}

// TestFlowLean_PollErrorsKeepPolling: Planbok failing for a while only
// costs attempts of the same poll; the flow sees the completion at the
// first attempt after Planbok answers again.
func TestFlowLean_PollErrorsKeepPolling(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	ft.fakes.getErr = func(now time.Time) error {
		if now.Before(at(100 * time.Second)) {
			return retryable("Planbok answered 502.")
		}
		return nil
	}
	ft.statusAt(30*time.Second, "verified")
	got := ft.run()

	wantStatus(t, got, flow.StatusCompleted, "")
	wantEqual(t, "completedAt", got.CompletedAt, ptr(at(126*time.Second)))
	wantEqual(t, "polls", ft.fakes.polls, secs(0, 2, 6, 14, 30, 62, 126))
}

// TestFlowLean_PollFinalErrorWaitsForExpiry: a poll that stops on a final
// error leaves the flow waiting for webhooks until the expiry.
func TestFlowLean_PollFinalErrorWaitsForExpiry(t *testing.T) {
	ft := newFlowTest(t, flow.KindUpdatePIN)
	ft.fakes.getErr = func(now time.Time) error {
		if now.Before(at(5 * time.Second)) {
			return final(flow.CodePlanbokRejected, "Planbok answered 400.")
		}
		return nil
	}
	ft.statusAt(5*time.Minute, "verified")
	ft.signal(5*time.Minute, ft.challengeID(), "wh-1")
	got := ft.run()

	wantStatus(t, got, flow.StatusCompleted, "")
	wantEqual(t, "completedAt", got.CompletedAt, ptr(at(5*time.Minute)))
	wantEqual(t, "polls", ft.fakes.polls, secs(0))
}

func TestLegacyPolls_Schedule(t *testing.T) {
	wantEqual(t, "legacy polls in 2 min", LegacyPolls(2*time.Minute), secs(2, 6, 14, 30, 60, 90))
	wantEqual(t, "legacy polls in 15 min", len(LegacyPolls(15*time.Minute)), 32)
}
