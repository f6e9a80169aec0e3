package activities

import (
	"context"
	"errors"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
)

func TestAwaitChallenge(t *testing.T) {
	tests := []struct {
		name       string
		planbok    *fakePlanbok
		wantStatus string
		wantType   string
		retryable  bool
	}{
		{"pending is a retryable failure", &fakePlanbok{challenge: &planbok.Challenge{Status: "pending"}}, "", ChallengePending, true},
		{"verified", &fakePlanbok{challenge: &planbok.Challenge{Status: "verified"}}, "verified", "", false},
		{"failed", &fakePlanbok{challenge: &planbok.Challenge{Status: "failed"}}, "failed", "", false},
		{"pruned", &fakePlanbok{errChal: &planbok.Error{StatusCode: 404, Message: "Challenge not found"}}, flow.ChallengeGone, "", false},
		{"planbok down", &fakePlanbok{errChal: &planbok.Error{StatusCode: 502}}, "", string(flow.CodePlanbokUnavailable), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestActivities(tt.planbok, newFakeStore(), nil)
			got, err := a.AwaitChallenge(context.Background(), flow.GetChallengeInput{CustomerID: cusID, ChallengeID: "ch_1"})
			if tt.wantType != "" {
				wantAppError(t, err, tt.wantType, tt.retryable)
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if got.Status != tt.wantStatus {
				t.Errorf("status: got %q, want %q", got.Status, tt.wantStatus)
			}
		})
	}
}

// A pending answer is expected on most polls: benign, so the SDK neither
// logs it as an error nor counts it as a failure.
func TestAwaitChallenge_PendingIsBenign(t *testing.T) {
	a := newTestActivities(&fakePlanbok{challenge: &planbok.Challenge{Status: "pending"}}, newFakeStore(), nil)
	_, err := a.AwaitChallenge(context.Background(), flow.GetChallengeInput{CustomerID: cusID, ChallengeID: "ch_1"})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Category() != temporal.ApplicationErrorCategoryBenign {
		t.Fatalf("got %v, want a benign application error", err)
	}
}

// A Planbok blip is read again within the attempt (the next attempt may be
// minutes away); a 429 is not, and three failures in a row fail the attempt.
func TestAwaitChallenge_ReadsAgainWithinAnAttempt(t *testing.T) {
	down := &planbok.Error{StatusCode: 502}
	limited := &planbok.Error{StatusCode: 429}
	tests := []struct {
		name      string
		errs      []error
		wantCalls int
		wantType  string // "" = verified
	}{
		{"one blip", []error{down}, 2, ""},
		{"two blips", []error{down, down}, 3, ""},
		{"down throughout", []error{down, down, down, down}, 3, string(flow.CodePlanbokUnavailable)},
		{"rate limited", []error{limited}, 1, string(flow.CodePlanbokUnavailable)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb := &fakePlanbok{challenge: &planbok.Challenge{Status: "verified"}, chalErrs: tt.errs}
			a := newTestActivities(pb, newFakeStore(), nil)
			got, err := a.AwaitChallenge(context.Background(), flow.GetChallengeInput{CustomerID: cusID, ChallengeID: "ch_1"})
			if pb.chalCalls != tt.wantCalls {
				t.Errorf("reads: got %d, want %d", pb.chalCalls, tt.wantCalls)
			}
			if tt.wantType != "" {
				wantAppError(t, err, tt.wantType, true)
				return
			}
			if err != nil || got.Status != "verified" {
				t.Errorf("got %+v, %v; want verified", got, err)
			}
		})
	}
}
