package sandbox

import (
	"context"
	"testing"

	"github.com/custodyflows/custodyflows/planbok"
)

// A flow run outside custodyflows changes the customer at once, through
// the same code as a challenge: PIN setup without recovery, then recovery
// set up elsewhere.
func TestExternalFlow_ChangesTheCustomer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.createCustomer()
	res, err := e.helper.ExternalFlow(ctx, c.ID, ExternalFlowInput{Task: planbok.TaskInitialize, CompleteInput: CompleteInput{PIN: pin1}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Customer.HasPIN || res.Customer.HasRecovery || res.Challenge.Status != planbok.ChallengeVerified {
		t.Fatalf("after initialize: got %+v", res)
	}
	res, err = e.helper.ExternalFlow(ctx, c.ID, ExternalFlowInput{Task: planbok.TaskRecovery,
		CompleteInput: CompleteInput{PIN: pin1, Recovery: &RecoveryInput{Method: methodQuestions, Answers: answers}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.customer(c.ID); !got.HasPIN || !got.HasRecovery {
		t.Fatalf("after recovery: got %+v, want PIN and recovery", got)
	}
	// The new recovery works: a reset with those answers succeeds.
	if _, err := e.helper.ExternalFlow(ctx, c.ID, ExternalFlowInput{Task: planbok.TaskResetPIN,
		CompleteInput: CompleteInput{NewPIN: pin2, Recovery: &RecoveryInput{Answers: answers}}}); err != nil {
		t.Fatalf("reset with the answers set elsewhere: %v", err)
	}
	if _, err := e.export(c.ID, pin2); err != nil {
		t.Fatalf("export with the reset PIN: %v", err)
	}
}

// Five wrong PINs through the helper lock the customer, as on the Gateway.
func TestExternalFlow_WrongPINsLock(t *testing.T) {
	e := newEnv(t)
	c := e.onboard()
	for _, want := range []int{4, 3, 2, 1, 0} {
		_, err := e.helper.ExternalFlow(context.Background(), c.ID, ExternalFlowInput{Task: planbok.TaskExportPrivateKeys,
			CompleteInput: CompleteInput{PIN: pin2}})
		wantAttempts(t, err, 422, want)
	}
	if got := e.customer(c.ID); got.Status != planbok.CustomerLocked {
		t.Fatalf("got status %q, want locked", got.Status)
	}
}

func TestExternalFlow_Refusals(t *testing.T) {
	e := newEnv(t)
	c := e.createCustomer()
	for _, tc := range []struct {
		name   string
		id     string
		body   any
		status int
	}{
		{"unknown task", c.ID, map[string]any{"task": "delete"}, 400},
		{"unknown field", c.ID, map[string]any{"task": "initialize", "pin": pin1, "extra": 1}, 400},
		{"wallets without chains", c.ID, map[string]any{"task": "wallet/create", "pin": pin1}, 400},
		{"out of order", c.ID, map[string]any{"task": "recovery", "pin": pin1}, 400},
		{"unknown customer", "66aa00000000000000000000", map[string]any{"task": "initialize", "pin": pin1}, 404},
		{"bad PIN shape", c.ID, map[string]any{"task": "initialize", "pin": "12"}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.req("POST", "/sandbox/v1/customers/"+tc.id+"/external-flow", tc.body).want(t, tc.status)
		})
	}
	if got := e.customer(c.ID); got.HasPIN {
		t.Fatalf("a refused call changed the customer: %+v", got)
	}
}
