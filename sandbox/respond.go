package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/custodyflows/custodyflows/planbok"
)

// envelope is Planbok's response body; Data is omitted on errors.
type envelope struct {
	Success bool   `json:"success"`
	Status  int    `json:"status"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"success":false,"status":500,"message":"Internal server error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte{'\n'})
}

// writeData writes a success envelope.
func writeData(w http.ResponseWriter, status int, message string, data any) {
	writeJSON(w, status, envelope{Success: true, Status: status, Message: message, Data: data})
}

// writeError writes an error envelope.
func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, envelope{Success: false, Status: status, Message: message})
}

// writeErrorData writes an error envelope that carries data (the helper's
// attemptsRemaining).
func writeErrorData(w http.ResponseWriter, status int, message string, data any) {
	writeJSON(w, status, envelope{Success: false, Status: status, Message: message, Data: data})
}

// apiError is an error with the HTTP status and message a client sees.
// Field names the form field it concerns (for the Gateway); Attempts is
// set for wrong PINs.
type apiError struct {
	Status   int
	Message  string
	Field    string
	Attempts *int
}

func (e *apiError) Error() string { return e.Message }

func errf(status int, format string, args ...any) *apiError {
	return &apiError{Status: status, Message: fmt.Sprintf(format, args...)}
}

func fieldErr(status int, field, format string, args ...any) *apiError {
	return &apiError{Status: status, Field: field, Message: fmt.Sprintf(format, args...)}
}

// writeErr renders err: an *apiError as itself, anything else as a 500
// whose text stays in the log.
func (s *Sandbox) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.Attempts != nil {
			writeErrorData(w, ae.Status, ae.Message, map[string]int{"attemptsRemaining": *ae.Attempts})
			return
		}
		writeError(w, ae.Status, ae.Message)
		return
	}
	s.log.Error("sandbox: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "Internal server error")
}

// decodeJSON reads a JSON object body into v. strict rejects unknown
// fields (test helpers); Planbok routes ignore them.
func decodeJSON(r *http.Request, v any, strict bool) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errf(http.StatusRequestEntityTooLarge, "Request body is larger than %d bytes", mbe.Limit)
		}
		return errf(http.StatusBadRequest, "Could not read the request body")
	}
	return decodeBytes(body, v, strict)
}

func decodeBytes(body []byte, v any, strict bool) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return errf(http.StatusBadRequest, "Request body must be a JSON object")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute) && ute.Field != "":
			return errf(http.StatusBadRequest, "Invalid JSON body: field %q must be a %s", ute.Field, jsonKind(ute.Type.Kind().String()))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return errf(http.StatusBadRequest, "Invalid JSON body: unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return errf(http.StatusBadRequest, "Invalid JSON body: %v", err)
		}
	}
	if dec.More() {
		return errf(http.StatusBadRequest, "Invalid JSON body: unexpected data after the object")
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "slice", "array":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	case "bool":
		return "boolean"
	case "string":
		return "string"
	}
	return "number"
}

// wire is the API form of a customer.
func (c *customer) wire() planbok.Customer {
	return planbok.Customer{
		ID:          c.ID,
		Name:        c.Name,
		RefID:       c.RefID,
		CustodyType: CustodyType,
		Status:      c.Status,
		HasPIN:      c.Vault.Valid,
		HasRecovery: c.RecoveryMethod != "",
		CreatedAt:   fromNanos(c.CreatedAt),
		UpdatedAt:   fromNanos(c.UpdatedAt),
	}
}
