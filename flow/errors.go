package flow

import (
	"errors"
	"fmt"
	"time"
)

// Code is a machine-readable error code. Codes appear in the HTTP API, in
// stored rows and as Temporal failure types: append only, never rename.
type Code string

// Error codes of the HTTP API (API.md §2-§3).
const (
	CodeInvalidRequest       Code = "invalid_request"
	CodeInvalidRedirectURL   Code = "invalid_redirect_url"
	CodeUnauthorized         Code = "unauthorized"
	CodeCustomerNotFound     Code = "customer_not_found"
	CodeFlowNotFound         Code = "flow_not_found"
	CodePINAlreadySet        Code = "pin_already_set"
	CodePINRequired          Code = "pin_required"
	CodeRecoveryRequired     Code = "recovery_required"
	CodeCustomerLockedOut    Code = "customer_locked_out"
	CodeFlowInProgress       Code = "flow_in_progress"
	CodeFlowFinished         Code = "flow_finished"
	CodeIdempotencyKeyReused Code = "idempotency_key_reused"
	CodeRateLimited          Code = "rate_limited"
	CodePlanbokUnavailable   Code = "planbok_unavailable"
	CodeTemporalUnavailable  Code = "temporal_unavailable"
	CodeInvalidSignature     Code = "invalid_signature"
	CodePayloadTooLarge      Code = "payload_too_large"
	CodeNotFound             Code = "not_found"
	CodeInternal             Code = "internal"
	// CodeExportOnHold: an export-private-keys start within the export
	// hold after the customer's last completed PIN reset; the error's
	// AvailableAt says when export opens again.
	CodeExportOnHold Code = "export_on_hold"
	// CodeOverloaded: the webhook intake already has its maximum of
	// requests in flight (503 with Retry-After).
	CodeOverloaded Code = "overloaded"
)

// Error codes a flow ends with (the flow's "error" field).
const (
	// CodeChallengeFailed: Planbok reports the challenge failed (for
	// example the fifth wrong PIN).
	CodeChallengeFailed Code = "challenge_failed"
	// CodeChallengeExpired: the challenge's expiresAt passed, or Planbok
	// pruned it, before the user completed it.
	CodeChallengeExpired Code = "challenge_expired"
	// CodePlanbokRejected: Planbok refused a request with a final 4xx that
	// no rule above explains.
	CodePlanbokRejected Code = "planbok_rejected"
	// CodeCancelled: the app cancelled the flow.
	CodeCancelled Code = "cancelled"
)

// Codes lists every code, for tests that keep tables complete.
var Codes = []Code{
	CodeInvalidRequest, CodeInvalidRedirectURL, CodeUnauthorized, CodeCustomerNotFound,
	CodeFlowNotFound, CodePINAlreadySet, CodePINRequired, CodeRecoveryRequired,
	CodeCustomerLockedOut, CodeFlowInProgress, CodeFlowFinished, CodeIdempotencyKeyReused,
	CodeRateLimited, CodePlanbokUnavailable, CodeTemporalUnavailable, CodeInvalidSignature,
	CodePayloadTooLarge, CodeNotFound, CodeInternal,
	CodeChallengeFailed, CodeChallengeExpired, CodePlanbokRejected, CodeCancelled,
	CodeExportOnHold, CodeOverloaded,
}

// Error is the one coded error type of custodyflows. Message is a sentence a
// person can read; it never holds secrets.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// AvailableAt is set with CodeExportOnHold: when the refused export
	// may start. It rides on the error so the refusal carries it from the
	// Preflight activity through the customer workflow to the API.
	AvailableAt *time.Time `json:"availableAt,omitempty"`
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, CodeInternal
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the message of the first *Error in err's chain, and a
// generic sentence for any other error so internal details never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred."
}
