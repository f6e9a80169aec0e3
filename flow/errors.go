package flow

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
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
	// CodeFlowOutcomeUnknown: the reconciler found the flow's row active
	// while its workflow had ended without a result (terminated, timed
	// out) or was gone (past the namespace's retention), so how the flow
	// ended cannot be known; the row is marked failed with this code.
	CodeFlowOutcomeUnknown Code = "flow_outcome_unknown"
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
	CodeFlowOutcomeUnknown,
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

// PlanbokCall names the kind of Planbok call that failed: the same status
// means different things on a customer read and on a challenge request.
type PlanbokCall int

// The Planbok calls custodyflows makes.
const (
	CallGetCustomer PlanbokCall = iota + 1
	CallCreateCustomer
	CallCreateChallenge
	CallGetChallenge
)

// PlanbokFailure is what ClassifyPlanbok needs to know of a failed Planbok
// call (package planbok's *Error gives it).
type PlanbokFailure struct {
	// Status is the HTTP status, 0 when no answer arrived or the request
	// was refused before it was sent.
	Status int
	// Message is Planbok's message, if any.
	Message string
	// Transient is true when the same call may succeed later: 429, 408,
	// 5xx, network errors, timeouts, a body cut short.
	Transient bool
	// Cancelled is true when our side cancelled the call (a stopping
	// worker, a client that went away).
	Cancelled bool
}

// PlanbokVerdict is what a failed Planbok call means: the code it becomes,
// whether trying again may help, and a sentence for people (never a URL, a
// key or a request body).
type PlanbokVerdict struct {
	Code      Code
	Retryable bool
	Message   string
}

// ClassifyPlanbok is the one place that decides what a Planbok failure
// means, for the API's own calls and for activities alike:
//
//	transient (429, 408, 5xx, network, timeout) or cancelled → planbok_unavailable, retryable
//	401 (our API key)                                        → planbok_unavailable, final
//	403 on a challenge request, or a 4xx that says "locked"   → customer_locked_out, final
//	403 otherwise (a restricted key; a locked customer can
//	    still be read)                                       → planbok_unavailable, final
//	404 on a customer read or a challenge request           → customer_not_found, final
//	400/422 on a customer read (an id Planbok cannot parse)  → customer_not_found, final
//	refused before sending, on a customer read               → customer_not_found, final
//	404 on a challenge read (pruned after its lifetime)      → challenge_expired, final
//	4xx on customer creation                                 → invalid_request, with Planbok's message
//	404 on customer creation (no such route: a wrong URL)    → planbok_unavailable, final
//	other 4xx, or refused before sending                     → planbok_rejected, with Planbok's message
//	an unusable 2xx/3xx                                      → planbok_unavailable, final
func ClassifyPlanbok(call PlanbokCall, f PlanbokFailure) PlanbokVerdict {
	final := func(code Code, msg string) PlanbokVerdict { return PlanbokVerdict{Code: code, Message: msg} }
	client := f.Status >= 400 && f.Status < 500
	switch {
	case f.Transient || f.Cancelled:
		msg := "Planbok is unavailable."
		if f.Status != 0 {
			msg = fmt.Sprintf("Planbok is unavailable (HTTP %d).", f.Status)
		}
		if f.Cancelled {
			msg = "The call to Planbok was cancelled."
		}
		return PlanbokVerdict{Code: CodePlanbokUnavailable, Retryable: true, Message: msg}
	case f.Status == http.StatusUnauthorized:
		return final(CodePlanbokUnavailable, "Planbok refused the service's credentials.")
	case client && strings.Contains(strings.ToLower(f.Message), "locked"),
		f.Status == http.StatusForbidden && call == CallCreateChallenge:
		return final(CodeCustomerLockedOut, "The customer is locked out after too many wrong PINs; reset the PIN first.")
	case f.Status == http.StatusForbidden:
		return final(CodePlanbokUnavailable, "Planbok refused the service's request (HTTP 403): check the API key's permissions.")
	}
	switch call {
	case CallGetCustomer:
		if client || f.Status == 0 {
			return final(CodeCustomerNotFound, "No customer has this id at Planbok.")
		}
	case CallCreateChallenge:
		if f.Status == http.StatusNotFound {
			return final(CodeCustomerNotFound, "No customer has this id at Planbok.")
		}
	case CallGetChallenge:
		if f.Status == http.StatusNotFound {
			return final(CodeChallengeExpired, "Planbok no longer knows the challenge.")
		}
	case CallCreateCustomer:
		if f.Status == http.StatusNotFound {
			return final(CodePlanbokUnavailable, "Planbok answered 404 to customer creation: check the Planbok URL.")
		}
		if client || f.Status == 0 {
			return final(CodeInvalidRequest, refusedMessage("Planbok refused the customer", f.Message))
		}
	}
	if client || f.Status == 0 {
		return final(CodePlanbokRejected, refusedMessage("Planbok refused the request", f.Message))
	}
	return final(CodePlanbokUnavailable, fmt.Sprintf("Planbok gave an unexpected answer (HTTP %d).", f.Status))
}

// maxPlanbokMessage bounds Planbok's message inside ours.
const maxPlanbokMessage = 300

func refusedMessage(prefix, m string) string {
	m = strings.TrimSpace(m)
	if m == "" {
		return prefix + "."
	}
	if len(m) > maxPlanbokMessage {
		m = strings.ToValidUTF8(m[:maxPlanbokMessage], "") + "…"
	}
	return prefix + ": " + m
}
