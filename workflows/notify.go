package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

// NotifyApp delivers one event to the app's notify URL (registered as
// flow.WorkflowNotifyApp). It runs one DeliverEvent activity retried with
// backoff for deliverTimeout (at least three days, API.md §4); its workflow
// id comes from the event id, so an event is delivered by one workflow
// only. It fails only when the app never accepted the event.
func NotifyApp(ctx workflow.Context, in flow.DeliverEventInput) error {
	ctx = workflow.WithActivityOptions(ctx, deliverOptions())
	return workflow.ExecuteActivity(ctx, flow.ActivityDeliverEvent, in).Get(ctx, nil)
}
