package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/custodyflows/custodyflows/flow"
)

// unavailable is the error of a Planbok call that kept failing.
func unavailable() *flow.Error {
	return flow.Errorf(flow.CodePlanbokUnavailable, "Planbok did not answer after several attempts; try again later.")
}

// activityError turns the error of a Planbok activity into the flow error it
// means. Activities fail with an application error whose type is a
// flow.Code: a final code (customer_locked_out, planbok_rejected, …) is
// kept with its message; anything else (retries exhausted, timeouts,
// untyped errors) means Planbok is unavailable.
func activityError(err error) *flow.Error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		code, ok := knownCode(appErr.Type())
		if ok && code == flow.CodeInternal {
			// Never show an internal error's text to clients.
			return flow.Errorf(flow.CodeInternal, "An internal error occurred.")
		}
		if ok && code != flow.CodePlanbokUnavailable {
			msg := appErr.Message()
			if msg == "" {
				msg = "Planbok refused the request."
			}
			return &flow.Error{Code: code, Message: msg}
		}
	}
	return unavailable()
}

func knownCode(s string) (flow.Code, bool) {
	for _, c := range flow.Codes {
		if string(c) == s {
			return c, true
		}
	}
	return "", false
}

// codedError turns a flow error into the application error a validator or
// handler returns to the client: its type is the code and its message the
// sentence, as the API renders them.
func codedError(e *flow.Error) error {
	return temporal.NewApplicationErrorWithOptions(e.Message, string(e.Code), temporal.ApplicationErrorOptions{NonRetryable: true})
}
