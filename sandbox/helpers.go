package sandbox

import (
	"net/http"

	"github.com/custodyflows/custodyflows/planbok"
)

// completeData is the helper's answer: the challenge, plus the CSV of an
// export (which the real Planbok only ever gives to the Gateway page).
type completeData struct {
	planbok.Challenge
	CSV string `json:"csv,omitempty"`
}

// helperComplete is POST /sandbox/v1/challenges/{challengeId}/complete:
// what the user does on the Gateway, through the same code path.
func (s *Sandbox) helperComplete(w http.ResponseWriter, r *http.Request) {
	var in CompleteInput
	if err := decodeJSON(r, &in, true); err != nil {
		s.writeErr(w, r, err)
		return
	}
	o, err := s.complete(r.Context(), r.PathValue("challengeId"), in)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeData(w, http.StatusOK, "Challenge "+o.ch.Status, completeData{Challenge: s.challengeWire(r, o.ch), CSV: string(o.csv)})
}

// helperEmailCode is GET /sandbox/v1/customers/{id}/email-code: the last
// recovery code "emailed" to the customer.
func (s *Sandbox) helperEmailCode(w http.ResponseWriter, r *http.Request) {
	c, err := findCustomer(s.db.x, r.PathValue("id"))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if c == nil {
		writeError(w, http.StatusNotFound, "Customer not found")
		return
	}
	code, err := s.mailbox(c)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if code == "" {
		writeError(w, http.StatusNotFound, "No recovery code has been emailed to this customer")
		return
	}
	writeData(w, http.StatusOK, "Email code retrieved", map[string]string{"code": code})
}

func (s *Sandbox) helperSetFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := decodeJSON(r, &f, true); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := f.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.setFaults(f)
	s.log.Info("sandbox: faults set", "faults", f)
	writeData(w, http.StatusOK, "Faults updated", f)
}

func (s *Sandbox) helperGetFaults(w http.ResponseWriter, r *http.Request) {
	writeData(w, http.StatusOK, "Current faults", s.currentFaults())
}
