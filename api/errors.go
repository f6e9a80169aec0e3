package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
)

// statusByCode is the one table from error code to HTTP status. A test keeps
// it complete over flow.Codes. Codes a flow ends with (challenge_failed, …)
// normally appear in a flow's "error" field, not as a response; should one
// ever be returned as a response it is an upstream failure (502) or a
// conflict with the flow's state (409).
var statusByCode = map[flow.Code]int{
	flow.CodeInvalidRequest:       http.StatusBadRequest,
	flow.CodeInvalidRedirectURL:   http.StatusBadRequest,
	flow.CodeUnauthorized:         http.StatusUnauthorized,
	flow.CodeCustomerNotFound:     http.StatusNotFound,
	flow.CodeFlowNotFound:         http.StatusNotFound,
	flow.CodePINAlreadySet:        http.StatusConflict,
	flow.CodePINRequired:          http.StatusConflict,
	flow.CodeRecoveryRequired:     http.StatusConflict,
	flow.CodeCustomerLockedOut:    http.StatusConflict,
	flow.CodeFlowInProgress:       http.StatusConflict,
	flow.CodeFlowFinished:         http.StatusConflict,
	flow.CodeIdempotencyKeyReused: http.StatusConflict,
	flow.CodeRateLimited:          http.StatusTooManyRequests,
	flow.CodePlanbokUnavailable:   http.StatusBadGateway,
	flow.CodeTemporalUnavailable:  http.StatusServiceUnavailable,
	flow.CodeInvalidSignature:     http.StatusUnauthorized,
	flow.CodePayloadTooLarge:      http.StatusRequestEntityTooLarge,
	flow.CodeNotFound:             http.StatusNotFound,
	flow.CodeInternal:             http.StatusInternalServerError,
	flow.CodeOverloaded:           http.StatusServiceUnavailable,
	flow.CodeChallengeFailed:      http.StatusConflict,
	flow.CodeChallengeExpired:     http.StatusConflict,
	flow.CodePlanbokRejected:      http.StatusBadGateway,
	flow.CodeCancelled:            http.StatusConflict,
	flow.CodeExportOnHold:         http.StatusConflict,
	flow.CodeFlowOutcomeUnknown:   http.StatusConflict,
}

// StatusForCode returns the HTTP status for an error code: 500 for codes it
// does not know.
func StatusForCode(c flow.Code) int {
	if s, ok := statusByCode[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Retry-After values (seconds) for the 502 and 503 answers.
const (
	retryAfterPlanbok  = 5
	retryAfterTemporal = 5
)

// errorBody is the wire shape of every error: {"error": {…}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code         flow.Code `json:"code"`
	Message      string    `json:"message"`
	ActiveFlowID string    `json:"activeFlowId,omitempty"`
	FlowID       string    `json:"flowId,omitempty"`
	// AvailableAt comes with export_on_hold.
	AvailableAt *time.Time `json:"availableAt,omitempty"`
}

// apiError is an error on its way to the client: a code, a message that is
// safe to show, and the extras some codes carry.
type apiError struct {
	code         flow.Code
	message      string
	activeFlowID string
	flowID       string
	availableAt  *time.Time
	retryAfter   int // seconds; 0 = no header
	status       int // overrides the table (only 405 needs it)
	cause        error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return string(e.code) + ": " + e.message + ": " + e.cause.Error()
	}
	return string(e.code) + ": " + e.message
}

func (e *apiError) Unwrap() error { return e.cause }

func newError(code flow.Code, message string) *apiError {
	return &apiError{code: code, message: message}
}

// renderError is the one error renderer. A *flow.Error keeps its code and
// message; an *apiError keeps its extras; anything else is logged and sent
// as 500 internal with a generic message.
func (s *Server) renderError(c *gin.Context, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		var fe *flow.Error
		if errors.As(err, &fe) {
			ae = &apiError{code: fe.Code, message: fe.Message, availableAt: fe.AvailableAt}
		} else {
			ae = &apiError{code: flow.CodeInternal, message: flow.ErrorMessage(err), cause: err}
		}
	}
	status := StatusForCode(ae.code)
	if ae.status != 0 {
		status = ae.status
	}
	switch {
	case status >= 500:
		s.logger.ErrorContext(c.Request.Context(), "request failed",
			"request_id", requestID(c), "code", string(ae.code), "status", status, "err", errString(ae.cause))
	case ae.cause != nil:
		s.logger.InfoContext(c.Request.Context(), "request refused",
			"request_id", requestID(c), "code", string(ae.code), "status", status, "err", errString(ae.cause))
	}
	msg := ae.message
	if ae.code == flow.CodeInternal {
		msg = "An internal error occurred."
	}
	if ae.retryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	if ae.code == flow.CodeUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="custodyflows"`)
	}
	c.AbortWithStatusJSON(status, errorBody{Error: errorDetail{
		Code: ae.code, Message: msg, ActiveFlowID: ae.activeFlowID, FlowID: ae.flowID, AvailableAt: ae.availableAt,
	}})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// planbokError turns the error of a Planbok call the API makes itself
// (customer reads and creation) into a client error, by the one classifier
// the activities use too: e.g. a customer Planbok does not know, or whose
// id it cannot parse, is 404 customer_not_found; 429, 5xx and network
// errors are 502 planbok_unavailable with Retry-After.
func planbokError(call flow.PlanbokCall, err error) *apiError {
	f := flow.PlanbokFailure{Transient: true}
	var pe *planbok.Error
	if errors.As(err, &pe) {
		f = flow.PlanbokFailure{
			Status:    pe.StatusCode,
			Message:   pe.Message,
			Transient: pe.Retryable(),
			Cancelled: errors.Is(pe.Err, context.Canceled) && !errors.Is(pe.Err, context.DeadlineExceeded),
		}
	}
	v := flow.ClassifyPlanbok(call, f)
	ae := &apiError{code: v.Code, message: v.Message, cause: err}
	if v.Code == flow.CodePlanbokUnavailable {
		ae.retryAfter = retryAfterPlanbok
	}
	return ae
}

// retryAfterSeconds rounds d up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// temporalUnavailable reports whether err means Temporal could not be
// reached or did not answer in time.
func temporalUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var (
		unavailable *serviceerror.Unavailable
		deadline    *serviceerror.DeadlineExceeded
		exhausted   *serviceerror.ResourceExhausted
		nsNotFound  *serviceerror.NamespaceNotFound
		updTimeout  *client.WorkflowUpdateServiceTimeoutOrCanceledError
	)
	return errors.As(err, &unavailable) || errors.As(err, &deadline) || errors.As(err, &exhausted) ||
		errors.As(err, &nsNotFound) || errors.As(err, &updTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// temporalError turns an error of a Temporal call into a client error:
// unreachable or late → 503 temporal_unavailable; an application error
// whose type is one of flow's codes (a workflow refusing an update) → that
// code; anything else → 500 internal.
func temporalError(err error) *apiError {
	if temporalUnavailable(err) {
		return &apiError{code: flow.CodeTemporalUnavailable, message: "The workflow service is not answering; try again later.",
			retryAfter: retryAfterTemporal, cause: err}
	}
	if code, msg, ok := applicationCode(err); ok {
		return &apiError{code: code, message: msg, cause: err}
	}
	return &apiError{code: flow.CodeInternal, message: "An internal error occurred.", cause: err}
}

// applicationCode returns the flow code carried as the type of a Temporal
// application error in err's chain, when that type is a known code.
func applicationCode(err error) (flow.Code, string, bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return "", "", false
	}
	code := flow.Code(appErr.Type())
	if _, known := statusByCode[code]; !known || code == flow.CodeInternal {
		return "", "", false
	}
	msg := appErr.Message()
	if msg == "" {
		msg = string(code)
	}
	return code, msg, true
}

// isCode reports whether err carries a *flow.Error with code (the store's
// "not found" answers).
func isCode(err error, code flow.Code) bool {
	var fe *flow.Error
	return errors.As(err, &fe) && fe.Code == code
}
