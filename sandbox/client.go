package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// HelperClient calls the sandbox's test helpers (/sandbox/v1), so tests of
// other packages can play the user's part of a challenge.
type HelperClient struct {
	baseURL string
	apiKey  string
	hc      *http.Client
}

// NewHelperClient returns a client for the sandbox at baseURL; hc nil
// means http.DefaultClient.
func NewHelperClient(baseURL, apiKey string, hc *http.Client) *HelperClient {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &HelperClient{baseURL: strings.TrimRight(baseURL, "/"), apiKey: apiKey, hc: hc}
}

// HelperError is a helper call the sandbox refused. Data is the error's
// data, e.g. {"attemptsRemaining": 3} after a wrong PIN.
type HelperError struct {
	Status  int
	Message string
	Data    json.RawMessage
}

func (e *HelperError) Error() string {
	return fmt.Sprintf("sandbox: %d %s", e.Status, e.Message)
}

// AttemptsRemaining returns data.attemptsRemaining of a wrong-PIN error.
func (e *HelperError) AttemptsRemaining() (int, bool) {
	var d struct {
		AttemptsRemaining *int `json:"attemptsRemaining"`
	}
	if json.Unmarshal(e.Data, &d) != nil || d.AttemptsRemaining == nil {
		return 0, false
	}
	return *d.AttemptsRemaining, true
}

// Complete does what the user does on the Gateway for the challenge; body
// is the task's input (API.md §5), e.g. map[string]any{"pin": "123456"}
// or a CompleteInput. It returns the response's data: the challenge, plus
// "csv" for an export.
func (h *HelperClient) Complete(ctx context.Context, challengeID string, body any) (json.RawMessage, error) {
	return h.do(ctx, http.MethodPost, "/sandbox/v1/challenges/"+url.PathEscape(challengeID)+"/complete", body)
}

// EmailCode returns the last recovery code "emailed" to the customer.
func (h *HelperClient) EmailCode(ctx context.Context, customerID string) (string, error) {
	data, err := h.do(ctx, http.MethodGet, "/sandbox/v1/customers/"+url.PathEscape(customerID)+"/email-code", nil)
	if err != nil {
		return "", err
	}
	var d struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return "", fmt.Errorf("sandbox: decode email code: %w", err)
	}
	return d.Code, nil
}

// SetFaults replaces the injected faults; Faults{} clears them.
func (h *HelperClient) SetFaults(ctx context.Context, f Faults) error {
	_, err := h.do(ctx, http.MethodPut, "/sandbox/v1/faults", f)
	return err
}

func (h *HelperClient) do(ctx context.Context, method, path string, body any) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("sandbox: encode body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.baseURL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	req.Header.Set(HeaderAPIKey, h.apiKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("sandbox: read response: %w", err)
	}
	var env struct {
		Success bool            `json:"success"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, &HelperError{Status: resp.StatusCode, Message: strings.TrimSpace(string(raw))}
	}
	if resp.StatusCode >= 300 || !env.Success {
		return nil, &HelperError{Status: resp.StatusCode, Message: env.Message, Data: env.Data}
	}
	return env.Data, nil
}

// IsHelperError reports whether err is a *HelperError with the status.
func IsHelperError(err error, status int) bool {
	var he *HelperError
	return errors.As(err, &he) && he.Status == status
}
