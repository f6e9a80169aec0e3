// Package workflows holds custodyflows' Temporal workflows: the customer
// workflow that serialises a customer's flow starts, the six security flows
// (one shared challenge loop, six thin definitions), and NotifyApp, which
// delivers one event to the app.
//
// Workflows do no I/O: they call activities by their registered names
// (flow.Activity*) with the flow package's types, so this package imports
// only flow and the Temporal SDK.
package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

// definition is what the shared loop in loop.go needs to know of a flow
// kind; it comes from the kind's row in flow.Specs, which every package
// reads.
type definition struct {
	Kind flow.Kind
	// Summary names the flow in logs and audit rows.
	Summary string
}

func definitionOf(k flow.Kind) definition {
	spec, ok := flow.SpecOf(k)
	if !ok {
		panic("workflows: no definition for flow kind " + string(k))
	}
	return definition{Kind: k, Summary: spec.Summary}
}

// Initialize runs a PIN setup flow (registered as flow.WorkflowInitialize).
func Initialize(ctx workflow.Context, in flow.FlowInput) (flow.Flow, error) {
	return runFlow(ctx, definitionOf(flow.KindInitialize), in)
}

// Recovery runs a recovery setup flow (registered as flow.WorkflowRecovery).
func Recovery(ctx workflow.Context, in flow.FlowInput) (flow.Flow, error) {
	return runFlow(ctx, definitionOf(flow.KindRecovery), in)
}

// UpdatePIN runs an update-PIN flow (registered as flow.WorkflowUpdatePIN).
func UpdatePIN(ctx workflow.Context, in flow.FlowInput) (flow.Flow, error) {
	return runFlow(ctx, definitionOf(flow.KindUpdatePIN), in)
}

// ResetPIN runs a reset-PIN flow (registered as flow.WorkflowResetPIN).
func ResetPIN(ctx workflow.Context, in flow.FlowInput) (flow.Flow, error) {
	return runFlow(ctx, definitionOf(flow.KindResetPIN), in)
}

// ExportPrivateKeys runs a private-key export flow (registered as
// flow.WorkflowExportPrivateKeys).
func ExportPrivateKeys(ctx workflow.Context, in flow.FlowInput) (flow.Flow, error) {
	return runFlow(ctx, definitionOf(flow.KindExportPrivateKeys), in)
}

// CreateWallets runs a wallet creation flow (registered as
// flow.WorkflowCreateWallets).
func CreateWallets(ctx workflow.Context, in flow.FlowInput) (flow.Flow, error) {
	return runFlow(ctx, definitionOf(flow.KindCreateWallets), in)
}

// Registration is a workflow function with the name it is registered
// under.
type Registration struct {
	Name string
	Fn   any
}

// All returns every workflow of the package with its registered name. The
// worker registers each with DisableRegistrationAliasing.
func All() []Registration {
	return []Registration{
		{Name: flow.WorkflowCustomer, Fn: Customer},
		{Name: flow.WorkflowInitialize, Fn: Initialize},
		{Name: flow.WorkflowRecovery, Fn: Recovery},
		{Name: flow.WorkflowUpdatePIN, Fn: UpdatePIN},
		{Name: flow.WorkflowResetPIN, Fn: ResetPIN},
		{Name: flow.WorkflowExportPrivateKeys, Fn: ExportPrivateKeys},
		{Name: flow.WorkflowCreateWallets, Fn: CreateWallets},
		{Name: flow.WorkflowNotifyApp, Fn: NotifyApp},
	}
}
