package activities

import (
	"context"
	"errors"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
)

// classify turns any activity error into the Temporal application error
// the workflows expect: the failure type is a flow.Code, and retryability
// is decided here once.
//
//	*planbok.Error        → flow.ClassifyPlanbok's verdict (the one table the API uses too)
//	*flow.Error           → its code, final (internal: retried)
//	anything else         → internal, retried (store and other local failures)
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
	v := planbokVerdict(pe)
	if v.Retryable {
		return temporal.NewApplicationError(v.Message, string(v.Code))
	}
	return temporal.NewNonRetryableApplicationError(v.Message, string(v.Code), nil)
}

// planbokVerdict classifies pe by the call it names.
func planbokVerdict(pe *planbok.Error) flow.PlanbokVerdict {
	return flow.ClassifyPlanbok(planbokCall(pe.Op), flow.PlanbokFailure{
		Status:    pe.StatusCode,
		Message:   pe.Message,
		Transient: pe.Retryable(),
		Cancelled: errors.Is(pe.Err, context.Canceled) && !errors.Is(pe.Err, context.DeadlineExceeded),
	})
}

// planbokCall names the call behind a planbok.Error's Op ("get customer",
// "create update-pin challenge", …); a test pins it against the client.
func planbokCall(op string) flow.PlanbokCall {
	switch {
	case op == "get customer":
		return flow.CallGetCustomer
	case op == "create customer":
		return flow.CallCreateCustomer
	case op == "get challenge":
		return flow.CallGetChallenge
	case strings.HasPrefix(op, "create ") && strings.HasSuffix(op, " challenge"):
		return flow.CallCreateChallenge
	}
	return 0
}
