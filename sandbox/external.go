package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/custodyflows/custodyflows/planbok"
)

// A flow run outside custodyflows: another backend of the same Planbok
// organisation, or Planbok's own dashboard, changes a customer, and
// custodyflows hears of it only through webhooks (if they arrive) or by
// reading the customer again. The helper does it in one call, through the
// same code as a challenge created on /v2 and completed on the Gateway.

// externalRedirectURL is the app return URL of challenges the helper
// creates; nobody is sent there.
const externalRedirectURL = "https://elsewhere.invalid/return"

// ExternalFlowInput is the body of POST
// /sandbox/v1/customers/{id}/external-flow: the task, its blockchains for
// wallet/create, and what the user enters to complete it (the fields of
// the complete helper's body for that task).
type ExternalFlowInput struct {
	Task        planbok.Task `json:"task"`
	Blockchains []string     `json:"blockchains,omitempty"`
	CompleteInput
}

// ExternalFlowResult is the helper's data: the completed challenge and
// the customer after it (plus the CSV of an export).
type ExternalFlowResult struct {
	Challenge planbok.Challenge `json:"challenge"`
	Customer  planbok.Customer  `json:"customer"`
	CSV       string            `json:"csv,omitempty"`
}

// helperExternalFlow creates a challenge of the task for the customer and
// completes it at once. Webhooks go out as for any challenge (so
// webhookDropRate decides whether custodyflows hears of it). A reset-pin
// with email recovery cannot be done in one call (the code is emailed when
// the challenge is created): use the security questions, or the /v2 route
// and the complete helper.
func (s *Sandbox) helperExternalFlow(w http.ResponseWriter, r *http.Request) {
	var in ExternalFlowInput
	if err := decodeJSON(r, &in, true); err != nil {
		s.writeErr(w, r, err)
		return
	}
	known := false
	for _, rt := range challengeRoutes {
		known = known || rt.task == in.Task
	}
	if !known {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("task must be one of initialize, recovery, update-pin, reset-pin, export-private-keys, wallet/create; got %q", in.Task))
		return
	}
	var chains []string
	if in.Task == planbok.TaskCreateWallets {
		if len(in.Blockchains) == 0 {
			writeError(w, http.StatusBadRequest, "blockchains is required for wallet/create")
			return
		}
		for _, b := range in.Blockchains {
			if _, ok := planbok.Blockchains[b]; !ok {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("Unsupported blockchain %q", b))
				return
			}
		}
		chains = in.Blockchains
	}
	id := r.PathValue("id")
	ch, err := s.newChallenge(id, in.Task, externalRedirectURL, chains)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	o, err := s.complete(r.Context(), ch.ID, in.CompleteInput)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	c, err := findCustomer(s.db.x, id)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.log.Info("sandbox: external flow", "customerId", id, "task", string(in.Task), "status", o.ch.Status)
	writeData(w, http.StatusOK, "External "+string(in.Task)+" "+o.ch.Status, ExternalFlowResult{
		Challenge: s.challengeWire(r, o.ch), Customer: c.wire(), CSV: string(o.csv),
	})
}

// ExternalFlow runs a flow for the customer outside custodyflows (see
// POST /sandbox/v1/customers/{id}/external-flow) and returns the customer
// afterwards.
func (h *HelperClient) ExternalFlow(ctx context.Context, customerID string, in ExternalFlowInput) (*ExternalFlowResult, error) {
	data, err := h.do(ctx, http.MethodPost, "/sandbox/v1/customers/"+url.PathEscape(customerID)+"/external-flow", in)
	if err != nil {
		return nil, err
	}
	var out ExternalFlowResult
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("sandbox: decode external flow: %w", err)
	}
	return &out, nil
}
