package activities

import (
	"context"

	"go.temporal.io/sdk/temporal"

	"github.com/custodyflows/custodyflows/flow"
)

// ChallengePending is the failure type AwaitChallenge returns while the
// challenge is pending. It is retryable: the activity's retry policy is the
// flow's poll schedule.
const ChallengePending = "challenge_pending"

// AwaitChallenge reads a challenge's status like GetChallenge, but fails
// with the retryable ChallengePending while the challenge is pending. A flow
// runs it once with a retry policy shaped like its poll schedule, so Temporal
// retries it server-side: each poll costs one attempt, and neither a timer nor
// a history event (registered as flow.ActivityAwaitChallenge).
func (a *Activities) AwaitChallenge(ctx context.Context, in flow.GetChallengeInput) (flow.ChallengeStatus, error) {
	st, err := a.GetChallenge(ctx, in)
	if err != nil {
		return st, err
	}
	if st.Status == "pending" {
		// Benign: expected on most attempts, so the SDK logs it at debug
		// level and counts no failure in its metrics.
		return st, temporal.NewApplicationErrorWithOptions("The challenge is still pending.", ChallengePending,
			temporal.ApplicationErrorOptions{Category: temporal.ApplicationErrorCategoryBenign})
	}
	return st, nil
}
