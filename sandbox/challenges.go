package sandbox

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/custodyflows/custodyflows/planbok"
)

// challengeRoute is one POST /v2/customers/{id}/<task> route.
type challengeRoute struct {
	task    planbok.Task
	message string
}

// challengeRoutes lists the challenge routes with Planbok's messages.
var challengeRoutes = []challengeRoute{
	{planbok.TaskInitialize, "Initialization challenge created"},
	{planbok.TaskRecovery, "Recovery challenge created"},
	{planbok.TaskUpdatePIN, "PIN update challenge created"},
	{planbok.TaskResetPIN, "PIN reset challenge created"},
	{planbok.TaskExportPrivateKeys, "Private key export challenge created"},
	{planbok.TaskCreateWallets, "Wallet creation challenge created"},
}

// Recovery methods.
const (
	methodQuestions = "security_questions"
	methodEmail     = "email"
)

type challengeRequest struct {
	RedirectURL string   `json:"redirectUrl"`
	Blockchains []string `json:"blockchains"`
	AccountType string   `json:"accountType"`
}

// validRedirectURL reports why u is not an acceptable app return URL, or "".
func validRedirectURL(u string) string {
	if u == "" {
		return "redirectUrl is required"
	}
	if len(u) > 2048 {
		return "redirectUrl must be at most 2048 characters"
	}
	p, err := url.Parse(u)
	if err != nil || !p.IsAbs() || p.Host == "" || (p.Scheme != "https" && p.Scheme != "http") {
		return "redirectUrl must be an absolute http(s) URL"
	}
	if p.User != nil {
		return "redirectUrl must not contain credentials"
	}
	return ""
}

func (s *Sandbox) createChallenge(rt challengeRoute) bodyHandler {
	return func(w http.ResponseWriter, r *http.Request, body []byte) {
		var req challengeRequest
		if err := decodeBytes(body, &req, false); err != nil {
			s.writeErr(w, r, err)
			return
		}
		if msg := validRedirectURL(req.RedirectURL); msg != "" {
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		var chains []string
		if rt.task == planbok.TaskCreateWallets {
			if req.AccountType != "" && req.AccountType != "eoa" {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("accountType %q is not supported; only \"eoa\" is", req.AccountType))
				return
			}
			if len(req.Blockchains) == 0 {
				writeError(w, http.StatusBadRequest, "blockchains is required: list at least one blockchain")
				return
			}
			if len(req.Blockchains) > 20 {
				writeError(w, http.StatusBadRequest, "blockchains may list at most 20 blockchains")
				return
			}
			for _, b := range req.Blockchains {
				if _, ok := planbok.Blockchains[b]; !ok {
					writeError(w, http.StatusBadRequest, fmt.Sprintf("Unsupported blockchain %q", b))
					return
				}
			}
			chains = req.Blockchains
		}
		ch, err := s.newChallenge(r.PathValue("id"), rt.task, req.RedirectURL, chains)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeData(w, http.StatusCreated, rt.message, s.challengeWire(r, ch))
	}
}

// preconditions returns the error refusing a new challenge of task for c,
// or nil. Out-of-order calls are 400 (pin before recovery), then a locked
// customer is 403: only a PIN reset is open to a locked customer.
func preconditions(task planbok.Task, c *customer) *apiError {
	hasPIN, hasRecovery := c.Vault.Valid, c.RecoveryMethod != ""
	switch task {
	case planbok.TaskInitialize:
		if hasPIN {
			return errf(http.StatusBadRequest, "Customer has already set a PIN")
		}
	case planbok.TaskRecovery, planbok.TaskUpdatePIN:
		if !hasPIN {
			return errf(http.StatusBadRequest, "Customer has not set a PIN yet; initialize the customer first")
		}
	case planbok.TaskResetPIN:
		if !hasRecovery {
			return errf(http.StatusBadRequest, "Customer has not set up recovery, so the PIN cannot be reset")
		}
		return nil
	case planbok.TaskExportPrivateKeys, planbok.TaskCreateWallets:
		if !hasPIN {
			return errf(http.StatusBadRequest, "Customer has not set a PIN yet; initialize the customer first")
		}
		if !hasRecovery {
			return errf(http.StatusBadRequest, "Customer must set up recovery first")
		}
	}
	if c.Status == planbok.CustomerLocked {
		return errf(http.StatusForbidden, "Customer is locked after too many wrong PIN attempts; reset the PIN first")
	}
	return nil
}

// newChallenge checks the rules and stores a pending challenge. A reset-pin
// challenge of an email-recovery customer "emails" a fresh code.
func (s *Sandbox) newChallenge(customerID string, task planbok.Task, redirectURL string, chains []string) (*challenge, error) {
	unlock := s.lockCustomer(customerID)
	defer unlock()
	c, err := findCustomer(s.db.x, customerID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errf(http.StatusNotFound, "Customer not found")
	}
	if e := preconditions(task, c); e != nil {
		return nil, e
	}
	now := s.now()
	if err := s.db.pruneChallenges(now); err != nil {
		s.log.Warn("sandbox: prune challenges", "err", err)
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	if chains == nil {
		chains = []string{}
	}
	chainsJSON, _ := json.Marshal(chains)
	ch := &challenge{
		ID: id, CustomerID: customerID, Task: string(task), Status: planbok.ChallengePending,
		RedirectURL: redirectURL, Blockchains: string(chainsJSON),
		CreatedAt: toNanos(now), ExpiresAt: toNanos(now.Add(s.opts.ChallengeTTL)),
	}
	var events []event
	if task == planbok.TaskResetPIN {
		if c.RecoveryMethod == methodEmail {
			code, err := randomDigits(s.opts.Rand, 6)
			if err != nil {
				return nil, err
			}
			if err := s.sendCode(c, ch, code); err != nil {
				return nil, err
			}
			c.UpdatedAt = toNanos(now)
		}
		events = append(events, event{planbok.EventCustomerRecoveryInitiated, planbok.WebhookData{
			CustomerID: customerID, ChallengeID: id, Task: task, Status: planbok.ChallengePending}})
	}
	err = s.db.inTx(func(tx *sqlx.Tx) error {
		if err := insertChallenge(tx, ch); err != nil {
			return err
		}
		if ch.EmailCodeMAC != "" {
			if err := updateCustomer(tx, c); err != nil {
				return err
			}
		}
		return s.enqueueAll(tx, events)
	})
	if err != nil {
		return nil, err
	}
	s.notifySender()
	s.log.Info("sandbox: challenge created", "customerId", customerID, "challengeId", id, "task", string(task))
	return ch, nil
}

func (s *Sandbox) getChallenge(w http.ResponseWriter, r *http.Request) {
	ch, err := findChallenge(s.db.x, r.PathValue("challengeId"), s.now())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if ch == nil || ch.CustomerID != r.PathValue("id") {
		writeError(w, http.StatusNotFound, "Challenge not found")
		return
	}
	writeData(w, http.StatusOK, "Challenge retrieved successfully", s.challengeWire(r, ch))
}

// challengeWire is the API form of ch. Result holds no key material.
func (s *Sandbox) challengeWire(r *http.Request, ch *challenge) planbok.Challenge {
	out := planbok.Challenge{
		ChallengeID: ch.ID,
		RedirectURL: s.gatewayURL(r, ch.ID),
		Status:      ch.Status,
		Task:        planbok.Task(ch.Task),
		ExpiresAt:   fromNanos(ch.ExpiresAt),
	}
	if ch.Result.Valid {
		out.Result = json.RawMessage(ch.Result.String)
	}
	return out
}

func (ch *challenge) blockchains() []string {
	var bs []string
	_ = json.Unmarshal([]byte(ch.Blockchains), &bs)
	return bs
}

// randomDigits returns n uniformly random decimal digits.
func randomDigits(rnd io.Reader, n int) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var b strings.Builder
	for range n {
		d, err := rand.Int(rnd, big.NewInt(10))
		if err != nil {
			return "", fmt.Errorf("random digits: %w", err)
		}
		b.WriteByte(byte('0' + d.Int64()))
	}
	return b.String(), nil
}
