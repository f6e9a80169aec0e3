// Package flow is the domain of custodyflows: flow kinds and statuses, the
// precondition rules Planbok enforces, the error codes shared by the HTTP API
// and the workflows, the wire types of flows and customers, and every Temporal
// name (workflow, activity, signal, query, update) the service registers.
//
// It imports only the standard library so that every other package can
// depend on it, and so that the HTTP side never links workflow code.
package flow
