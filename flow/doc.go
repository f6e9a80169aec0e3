// Package flow is the domain of custodyflows: flow kinds and statuses, the
// precondition rules Planbok enforces, the error codes shared by the HTTP API
// and the workflows, the wire types of flows and customers, and every Temporal
// name (workflow, activity, signal, query, update) the service registers.
//
// Each decision is made once, here: what differs per kind (Specs), what a
// Planbok failure means (ClassifyPlanbok), how long a start may take and
// how much of it Planbok gets (budget.go), and the start quota's arithmetic
// (QuotaBucket).
//
// It imports only the standard library so that every other package can
// depend on it, and so that the HTTP side never links workflow code.
package flow
