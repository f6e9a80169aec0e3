package activities

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
)

// ChallengePending is the failure type AwaitChallenge returns while the
// challenge is pending. It is retryable: the activity's retry policy is the
// flow's poll schedule.
const ChallengePending = "challenge_pending"

// awaitReads and awaitReadBackoff bound the reads of one AwaitChallenge
// attempt while Planbok is unavailable: 250 ms, then 500 ms apart.
const (
	awaitReads       = 3
	awaitReadBackoff = 250 * time.Millisecond
)

// AwaitChallenge reads a challenge's status like GetChallenge, but fails
// with the retryable ChallengePending while the challenge is pending. A flow
// runs it once with a retry policy shaped like its poll schedule, so Temporal
// retries it server-side: each poll costs one attempt, and neither a timer nor
// a history event (registered as flow.ActivityAwaitChallenge).
//
// A Planbok that fails now and then (a 5xx, a dropped connection) is read
// again within the attempt, up to awaitReads times: the next attempt may be
// minutes away, and a blip must not cost a person that long. A 429 is not
// read again: the poll queue's rate is what answers it.
func (a *Activities) AwaitChallenge(ctx context.Context, in flow.GetChallengeInput) (flow.ChallengeStatus, error) {
	ch, err := a.Planbok.GetChallenge(ctx, in.CustomerID, in.ChallengeID)
	for read := 1; read < awaitReads && blip(err); read++ {
		select {
		case <-ctx.Done():
			return a.challengeStatus(ctx, ch, err)
		case <-time.After(time.Duration(read) * awaitReadBackoff):
		}
		ch, err = a.Planbok.GetChallenge(ctx, in.CustomerID, in.ChallengeID)
	}
	st, err := a.challengeStatus(ctx, ch, err)
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

// blip reports whether err is a Planbok failure worth reading again at
// once: retryable, but not a 429.
func blip(err error) bool {
	var pe *planbok.Error
	return errors.As(err, &pe) && pe.Retryable() && pe.StatusCode != http.StatusTooManyRequests
}
