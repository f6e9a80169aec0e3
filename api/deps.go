package api

import (
	"context"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

// Store is what the API needs of the app database. *store.Store satisfies
// it. Lookups of missing rows return a *flow.Error with code
// customer_not_found or flow_not_found.
type Store interface {
	FindCustomerByID(ctx context.Context, id string) (*store.Customer, error)
	UpsertCustomer(ctx context.Context, c *store.Customer) error
	FindFlowByID(ctx context.Context, id string) (*flow.Flow, error)
	FindFlowByChallengeID(ctx context.Context, challengeID string) (*flow.Flow, error)
	FindFlowByIdempotencyKey(ctx context.Context, customerID, key string) (*flow.Flow, store.FlowMeta, error)
	FindFlows(ctx context.Context, f store.FlowFilter) ([]*flow.Flow, error)
	FindActiveFlow(ctx context.Context, customerID string) (*flow.Flow, error)
	RecordWebhook(ctx context.Context, e *store.InboxEntry) (duplicate bool, err error)
	SetWebhookOutcome(ctx context.Context, idempotencyKey, outcome string, at time.Time) error
	FindWebhook(ctx context.Context, idempotencyKey string) (*store.InboxEntry, error)
	ChallengeSignalled(ctx context.Context, challengeID, challengeStatus, exceptKey string) (bool, error)
	RecordAudit(ctx context.Context, a *store.AuditEntry) error
	Ping(ctx context.Context) error
}

// Planbok is what the API needs of Planbok. *planbok.Client satisfies it.
// Errors are *planbok.Error (see planbok.IsNotFound and Retryable).
type Planbok interface {
	CreateCustomer(ctx context.Context, p planbok.CreateCustomerParams) (*planbok.Customer, error)
	GetCustomer(ctx context.Context, id string) (*planbok.Customer, error)
}

// Temporal is the part of the Temporal client the API uses. client.Client
// satisfies it. NewWithStartWorkflowOperation is needed because the SDK
// builds the start half of an update-with-start only through the client.
type Temporal interface {
	NewWithStartWorkflowOperation(options client.StartWorkflowOptions, workflow any, args ...any) client.WithStartWorkflowOperation
	UpdateWithStartWorkflow(ctx context.Context, options client.UpdateWithStartWorkflowOptions) (client.WorkflowUpdateHandle, error)
	UpdateWorkflow(ctx context.Context, options client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error)
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
	SignalWorkflow(ctx context.Context, workflowID, runID, signalName string, arg any) error
	SignalWithStartWorkflow(ctx context.Context, workflowID, signalName string, signalArg any, options client.StartWorkflowOptions, workflow any, workflowArgs ...any) (client.WorkflowRun, error)
	CheckHealth(ctx context.Context, request *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
}

// The real dependencies satisfy the interfaces.
var (
	_ Store    = (*store.Store)(nil)
	_ Planbok  = (*planbok.Client)(nil)
	_ Temporal = client.Client(nil)
)
