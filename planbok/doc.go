// Package planbok is a typed client for the Planbok v2 routes the Customer
// Custody security flows use, the wire types those routes exchange, and
// Planbok webhook signing and verification.
//
// The client never retries on its own: Temporal retries the activities that
// call it, guided by (*Error).Retryable. The API key never appears in an
// error, a log line or a String() result.
package planbok
