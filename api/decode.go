package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/custodyflows/custodyflows/flow"
)

// Body size limits.
const (
	maxRequestBody = 64 << 10 // app API request bodies
	maxWebhookBody = 1 << 20  // Planbok webhooks
)

// readBody reads the request body up to limit bytes: over it is 413
// payload_too_large.
func readBody(c *gin.Context, limit int64) ([]byte, *apiError) {
	if c.Request.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, &apiError{code: flow.CodeInvalidRequest, message: "The request body could not be read.", cause: err}
	}
	return body, nil
}

func tooLarge(limit int64) *apiError {
	return newError(flow.CodePayloadTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", limit))
}

// decodeStrict decodes body, which must be exactly one JSON object, into
// dst. Unknown fields and wrong types are 400 invalid_request naming the
// field.
func decodeStrict(body []byte, dst any) *apiError {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return newError(flow.CodeInvalidRequest, "The request body must be a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return newError(flow.CodeInvalidRequest, "The request body must hold a single JSON object.")
	}
	return nil
}

func jsonError(err error) *apiError {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return newError(flow.CodeInvalidRequest, fmt.Sprintf("The request body is not valid JSON (at byte %d).", syntax.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newError(flow.CodeInvalidRequest, "The request body is not valid JSON (it ends too early).")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return newError(flow.CodeInvalidRequest, "The request body must be a JSON object.")
		}
		return newError(flow.CodeInvalidRequest, fmt.Sprintf("Field %q must be %s.", typ.Field, jsonTypeName(typ.Type.Kind().String())))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return newError(flow.CodeInvalidRequest, fmt.Sprintf("Unknown field %s.", name))
	}
	return newError(flow.CodeInvalidRequest, "The request body is not valid JSON.")
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "a " + kind
}

// validCustomerID reports whether id can be a Planbok customer id. Planbok's
// ids are 24 hex digits; any [A-Za-z0-9_-]{1,64} is accepted so customers
// created elsewhere work too. Anything else is 404 customer_not_found
// without asking Planbok.
func validCustomerID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			return false
		}
	}
	return true
}

// printable reports whether s holds only printable ASCII (no spaces at the
// ends is not required; control characters and non-ASCII are refused).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
