package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
)

// classify turns any activity error into the Temporal application error
// the workflows expect: the failure type is a flow.Code, and retryability
// is decided here once.
//
//	*planbok.Error, Retryable() (429, 5xx, network, timeout) → planbok_unavailable, retried
//	*planbok.Error 401                                       → planbok_unavailable, final (our API key is wrong; retrying will not fix it)
//	*planbok.Error 403, or a 4xx that says "locked"          → customer_locked_out, final
//	*planbok.Error 404                                       → customer_not_found, final
//	*planbok.Error other 4xx (400, 409, 422, …)              → planbok_rejected, final, with Planbok's message
//	*planbok.Error refused before sending                    → planbok_rejected, final
//	*planbok.Error unusable 2xx/3xx                           → planbok_unavailable, final
//	*planbok.Error cancelled                                 → planbok_unavailable, retried
//	*flow.Error (from the store or a check)                  → its code, final (internal: retried)
//	anything else (store, I/O)                               → internal, retried
//
// Messages are sentences for people (the workflows show them to API
// clients); they carry Planbok's message but never a URL, key or the
// request body. op names the step for the log line.
func (a *Activities) classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return err // already classified
	}
	out, attrs := classifyError(err)
	a.logger(ctx).Warn("activity failed", append([]any{"op", op}, attrs...)...)
	return out
}

// classifyError is classify without logging; it also returns the log
// attributes describing err (status and request id, never secrets).
func classifyError(err error) (error, []any) {
	var pe *planbok.Error
	if errors.As(err, &pe) {
		attrs := []any{"planbokOp", pe.Op, "status", pe.StatusCode, "requestId", pe.RequestID, "retryable", pe.Retryable()}
		return planbokError(pe), attrs
	}
	var fe *flow.Error
	if errors.As(err, &fe) {
		attrs := []any{"code", fe.Code}
		if fe.Code == flow.CodeInternal {
			return temporal.NewApplicationError(fe.Message, string(flow.CodeInternal)), attrs
		}
		return temporal.NewNonRetryableApplicationError(fe.Message, string(fe.Code), nil), attrs
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The activity's own deadline or the worker stopping: try again.
		return temporal.NewApplicationError(err.Error(), string(flow.CodeInternal)), []any{"err", err}
	}
	// Store and other local failures: the database may be busy or
	// restarting, and the workflows hide internal messages from clients.
	return temporal.NewApplicationError(err.Error(), string(flow.CodeInternal)), []any{"err", err}
}

func planbokError(pe *planbok.Error) error {
	if pe.Retryable() {
		msg := "Planbok is unavailable."
		if pe.StatusCode != 0 {
			msg = fmt.Sprintf("Planbok is unavailable (HTTP %d).", pe.StatusCode)
		}
		return temporal.NewApplicationError(msg, string(flow.CodePlanbokUnavailable))
	}
	final := func(code flow.Code, msg string) error {
		return temporal.NewNonRetryableApplicationError(msg, string(code), nil)
	}
	switch {
	case pe.StatusCode == http.StatusUnauthorized:
		return final(flow.CodePlanbokUnavailable, "Planbok refused the service's credentials.")
	case pe.StatusCode == http.StatusForbidden,
		pe.StatusCode >= 400 && pe.StatusCode < 500 && strings.Contains(strings.ToLower(pe.Message), "locked"):
		return final(flow.CodeCustomerLockedOut, "The customer is locked out after too many wrong PINs; reset the PIN first.")
	case pe.StatusCode == http.StatusNotFound:
		return final(flow.CodeCustomerNotFound, "The customer was not found at Planbok.")
	case pe.StatusCode >= 400 && pe.StatusCode < 500:
		return final(flow.CodePlanbokRejected, rejectedMessage(pe.Message))
	case errors.Is(pe.Err, context.Canceled):
		// The activity was cancelled or the worker is stopping: a final
		// error here would end the flow for a reason that is not Planbok's.
		return temporal.NewApplicationError("The call to Planbok was cancelled.", string(flow.CodePlanbokUnavailable))
	case pe.StatusCode == 0:
		// Refused before sending (an argument the client rejects): the
		// same call will be refused again.
		return final(flow.CodePlanbokRejected, "The request to Planbok was invalid.")
	}
	// A 2xx of the wrong shape (or an unexpected 3xx): it will not change
	// on retry, and for a caller it means Planbok is not usable.
	return final(flow.CodePlanbokUnavailable, fmt.Sprintf("Planbok gave an unexpected answer (HTTP %d).", pe.StatusCode))
}

// maxMessage bounds Planbok's message in a flow error.
const maxMessage = 300

func rejectedMessage(m string) string {
	m = strings.TrimSpace(m)
	if m == "" {
		return "Planbok refused the request."
	}
	if len(m) > maxMessage {
		m = m[:maxMessage] + "…"
	}
	return "Planbok refused the request: " + m
}
