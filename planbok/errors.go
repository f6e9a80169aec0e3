package planbok

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Error is every error the Client returns. Op names the call ("get
// customer"). StatusCode is the HTTP status (or the envelope's status
// when Planbok answered 2xx with success=false), 0 when no response
// arrived. Message is Planbok's message, else the status text. RequestID is
// the X-Request-Id response header, for support. Err is the underlying
// network, timeout or decoding error, if any.
//
// Error never holds the API key.
type Error struct {
	Op         string
	StatusCode int
	Message    string
	RequestID  string
	Err        error
}

// Error returns e.g. "planbok: get customer: 404 Customer not found".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("planbok: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	switch {
	case e.StatusCode != 0 && e.Err != nil:
		b.WriteString(strconv.Itoa(e.StatusCode) + " " + e.Message + ": " + e.Err.Error())
	case e.StatusCode != 0:
		b.WriteString(strconv.Itoa(e.StatusCode) + " " + e.Message)
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id " + e.RequestID + ")")
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// errInvalidArgument marks calls refused before any request was sent.
var errInvalidArgument = errors.New("invalid argument")

// Retryable reports whether the same call may succeed later, so that the
// activity calling it should be retried with backoff:
//   - 429, 408 and 5xx: yes (Planbok documents 429 for its rate limits and
//     sends no Retry-After);
//   - other 4xx: no, the request itself is wrong or refused;
//   - no response (connection refused or reset, DNS, TLS, timeouts,
//     including a context deadline): yes;
//   - a 2xx whose body was cut short or is not JSON: yes (a proxy or a
//     dropped connection; the POST idempotency keys make the retry safe);
//     a 2xx of the wrong shape: no, it will not change;
//   - the caller's own cancellation, or arguments refused before sending:
//     no.
func (e *Error) Retryable() bool {
	switch {
	case e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout:
		return true
	case e.StatusCode >= 500:
		return true
	case e.StatusCode >= 400:
		return false
	case e.StatusCode != 0: // 2xx that could not be used
		return truncated(e.Err)
	case e.Err == nil, errors.Is(e.Err, errInvalidArgument):
		return false
	case errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded):
		return false
	}
	return true
}

// truncated reports whether err says a body ended early or was not JSON,
// as opposed to well-formed JSON of the wrong shape.
func truncated(err error) bool {
	var syntax *json.SyntaxError
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &syntax) || errors.Is(err, errBodyRead)
}

// errBodyRead marks a failure while reading a response body.
var errBodyRead = errors.New("read response body")

// IsNotFound reports whether err is an *Error with status 404: an unknown
// customer, or a challenge Planbok pruned after its lifetime.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// StatusCode returns the HTTP status of the first *Error in err's chain, or
// 0 when there is none or no response arrived.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}
