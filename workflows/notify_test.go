package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/custodyflows/custodyflows/flow"
)

func TestNotifyApp_RetriesUntilDelivered(t *testing.T) {
	env, _ := newEnv(t)
	calls := 0
	var got []flow.DeliverEventInput
	env.OnActivity(flow.ActivityDeliverEvent, mock.Anything, mock.Anything).Return(func(_ context.Context, in flow.DeliverEventInput) error {
		calls++
		got = append(got, in)
		if calls <= 3 {
			return retryable("The app answered 500.")
		}
		return nil
	})
	in := flow.DeliverEventInput{ID: "flow_x.customer.pin_setup", Event: flow.AppEvent{Type: flow.EventPINSetup, Timestamp: t0}}
	env.ExecuteWorkflow(flow.WorkflowNotifyApp, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	wantEqual(t, "attempts", calls, 4)
	for _, g := range got {
		wantEqual(t, "event id", g.ID, in.ID)
	}
	// Backoff 1, 2, 4 s.
	wantEqual(t, "delivered after", env.Now().Sub(t0), 7*time.Second)
}

func TestNotifyApp_RetryPolicy(t *testing.T) {
	o := deliverOptions()
	if o.ScheduleToCloseTimeout < 72*time.Hour {
		t.Errorf("schedule-to-close: got %v, want at least 3 days", o.ScheduleToCloseTimeout)
	}
	p := o.RetryPolicy
	if p.InitialInterval != time.Second || p.BackoffCoefficient != 2 || p.MaximumInterval != time.Hour || p.MaximumAttempts != 0 {
		t.Errorf("retry policy: got %+v, want 1s doubling to 1h, unlimited attempts", p)
	}
	wantEqual(t, "start-to-close", o.StartToCloseTimeout, 30*time.Second)
}

func TestAll_RegisteredNames(t *testing.T) {
	var got []string
	for _, r := range All() {
		got = append(got, r.Name)
		if r.Fn == nil {
			t.Errorf("%s: got nil function, want one", r.Name)
		}
	}
	want := []string{
		flow.WorkflowCustomer, flow.WorkflowInitialize, flow.WorkflowRecovery, flow.WorkflowUpdatePIN,
		flow.WorkflowResetPIN, flow.WorkflowExportPrivateKeys, flow.WorkflowCreateWallets, flow.WorkflowNotifyApp,
	}
	wantEqual(t, "names", got, want)
	for _, k := range flow.Kinds {
		if definitionOf(k).Kind != k {
			t.Errorf("definition of %s: got %+v", k, definitionOf(k))
		}
	}
}
