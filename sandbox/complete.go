package sandbox

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox/keys"
)

// maxRecoveryAttempts is how many wrong answers or codes fail a reset-pin
// challenge (the customer is not locked: there is no PIN to guess).
const maxRecoveryAttempts = 5

// SecurityQuestions are the sandbox's three recovery questions, asked in
// this order; the helper's answers answer them in the same order.
var SecurityQuestions = [3]string{
	"What was the name of your first pet?",
	"In which city were you born?",
	"What was the name of your first school?",
}

// CompleteInput is what the user enters on the Gateway, and the body of
// POST /sandbox/v1/challenges/{challengeId}/complete. Which fields a task
// reads is in API.md §5.
type CompleteInput struct {
	PIN        string         `json:"pin,omitempty"`
	CurrentPIN string         `json:"currentPin,omitempty"`
	NewPIN     string         `json:"newPin,omitempty"`
	Recovery   *RecoveryInput `json:"recovery,omitempty"`
	// IdempotencyKey is accepted and ignored: a completion is not replayed.
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
}

// RecoveryInput sets up recovery (Method with Answers or Email) or proves
// it for a reset (Answers or EmailCode).
type RecoveryInput struct {
	Method    string   `json:"method,omitempty"`
	Answers   []string `json:"answers,omitempty"`
	Email     string   `json:"email,omitempty"`
	EmailCode string   `json:"emailCode,omitempty"`
}

// outcome is a completed challenge: CSV only for an export.
type outcome struct {
	ch       *challenge
	customer *customer
	csv      []byte
}

type event struct {
	name string
	data planbok.WebhookData
}

// complete does what the user does on the Gateway. The Gateway form
// handler and the test helper both call it: one code path. Errors are
// *apiError with the status, message and form field to show.
func (s *Sandbox) complete(ctx context.Context, challengeID string, in CompleteInput) (*outcome, error) {
	ch, err := findChallenge(s.db.x, challengeID, s.now())
	if err != nil {
		return nil, err
	}
	if ch == nil {
		return nil, errf(http.StatusNotFound, "Challenge not found or expired")
	}
	unlock := s.lockCustomer(ch.CustomerID)
	defer unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Read again under the lock: another completion may have finished it.
	if ch, err = findChallenge(s.db.x, challengeID, s.now()); err != nil {
		return nil, err
	}
	if ch == nil {
		return nil, errf(http.StatusNotFound, "Challenge not found or expired")
	}
	if ch.Status != planbok.ChallengePending {
		return nil, errf(http.StatusConflict, "Challenge is already %s", ch.Status)
	}
	c, err := findCustomer(s.db.x, ch.CustomerID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errf(http.StatusNotFound, "Customer not found")
	}
	task := planbok.Task(ch.Task)
	if c.Status == planbok.CustomerLocked && task != planbok.TaskResetPIN {
		return nil, errf(http.StatusForbidden, "Customer is locked after too many wrong PIN attempts; reset the PIN first")
	}
	o := &outcome{ch: ch, customer: c}
	switch task {
	case planbok.TaskInitialize:
		err = s.completeInitialize(o, in)
	case planbok.TaskRecovery:
		err = s.completeRecovery(o, in)
	case planbok.TaskUpdatePIN:
		err = s.completeUpdatePIN(o, in)
	case planbok.TaskResetPIN:
		err = s.completeResetPIN(o, in)
	case planbok.TaskExportPrivateKeys:
		err = s.completeExport(o, in)
	case planbok.TaskCreateWallets:
		err = s.completeCreateWallets(o, in)
	default:
		err = fmt.Errorf("unknown task %q", ch.Task)
	}
	if err != nil {
		return nil, err
	}
	return o, nil
}

func checkPIN(field, pin, what string) *apiError {
	if pin == "" {
		return fieldErr(http.StatusBadRequest, field, "%s is required", what)
	}
	if !keys.ValidPIN(pin) {
		return fieldErr(http.StatusBadRequest, field, "%s must be exactly 6 digits", what)
	}
	return nil
}

// recoverySetup is a validated new recovery method.
type recoverySetup struct {
	method string
	email  string
	secret []byte
	escrow []byte // email recovery: the sandbox keeps the secret, wrapped
}

// newRecovery validates a recovery method and makes its secret.
func (s *Sandbox) newRecovery(in *RecoveryInput) (*recoverySetup, error) {
	switch in.Method {
	case methodQuestions:
		if len(in.Answers) != len(SecurityQuestions) {
			return nil, fieldErr(http.StatusBadRequest, "answers", "Answer all %d security questions", len(SecurityQuestions))
		}
		for i, a := range in.Answers {
			if strings.TrimSpace(a) == "" {
				return nil, fieldErr(http.StatusBadRequest, fmt.Sprintf("answer%d", i+1), "Answer security question %d", i+1)
			}
			if len(a) > 200 {
				return nil, fieldErr(http.StatusBadRequest, fmt.Sprintf("answer%d", i+1), "Answer %d is longer than 200 characters", i+1)
			}
		}
		secret, err := keys.RecoverySecretFromAnswers(in.Answers)
		if err != nil {
			return nil, fieldErr(http.StatusBadRequest, "answers", "The answers cannot be used: %v", err)
		}
		return &recoverySetup{method: methodQuestions, secret: secret}, nil
	case methodEmail:
		addr, err := mail.ParseAddress(in.Email)
		if in.Email == "" || err != nil || addr.Address != strings.TrimSpace(in.Email) || len(in.Email) > 254 {
			return nil, fieldErr(http.StatusBadRequest, "email", "Enter a valid email address")
		}
		secret := make([]byte, 32)
		if _, err := io.ReadFull(s.opts.Rand, secret); err != nil {
			return nil, err
		}
		return &recoverySetup{method: methodEmail, email: addr.Address, secret: secret, escrow: secret}, nil
	case "":
		return nil, fieldErr(http.StatusBadRequest, "method", `recovery.method is required: "security_questions" or "email"`)
	default:
		return nil, fieldErr(http.StatusBadRequest, "method", `recovery.method must be "security_questions" or "email", not %q`, in.Method)
	}
}

// wipe clears the recovery secret once it is sealed (and, for email
// recovery, wrapped into the escrow).
func (rs *recoverySetup) wipe() {
	if rs != nil {
		clear(rs.secret)
	}
}

// applyRecovery records the method on the customer, the email secret
// wrapped (atrest.go).
func (s *Sandbox) applyRecovery(c *customer, rs *recoverySetup) error {
	c.RecoveryMethod, c.RecoveryEmail = rs.method, rs.email
	return s.setEscrow(c, rs.escrow)
}

func (s *Sandbox) completeInitialize(o *outcome, in CompleteInput) error {
	if e := checkPIN("pin", in.PIN, "PIN"); e != nil {
		return e
	}
	var rs *recoverySetup
	if in.Recovery != nil {
		var err error
		if rs, err = s.newRecovery(in.Recovery); err != nil {
			return err
		}
		defer rs.wipe()
	}
	c := o.customer
	if c.Vault.Valid {
		// Two initialize challenges raced; the first one won.
		return s.failChallenge(o, "pin_already_set", errf(http.StatusConflict, "Customer has already set a PIN"))
	}
	var secret []byte
	if rs != nil {
		secret = rs.secret
	}
	v, err := keys.NewVault(in.PIN, secret, s.opts.KDF, s.opts.Rand)
	if err != nil {
		return fmt.Errorf("new vault: %w", err)
	}
	if err := s.setVault(c, v); err != nil {
		return err
	}
	c.FailedPINs = 0
	events := []event{s.customerEvent(o, planbok.EventCustomerPINSetup)}
	if rs != nil {
		if err := s.applyRecovery(c, rs); err != nil {
			return err
		}
		events = append(events, s.customerEvent(o, planbok.EventCustomerRecoverySetup))
	}
	return s.verify(o, struct{}{}, events, nil)
}

func (s *Sandbox) completeRecovery(o *outcome, in CompleteInput) error {
	if e := checkPIN("pin", in.PIN, "PIN"); e != nil {
		return e
	}
	if in.Recovery == nil {
		return fieldErr(http.StatusBadRequest, "method", "recovery is required: choose security questions or email")
	}
	rs, err := s.newRecovery(in.Recovery)
	if err != nil {
		return err
	}
	defer rs.wipe()
	c := o.customer
	v, err := s.vaultOf(c)
	if err != nil {
		return err
	}
	if err := v.SetRecovery(in.PIN, rs.secret, s.opts.KDF, s.opts.Rand); err != nil {
		return s.pinFailure(o, "pin", err)
	}
	if err := s.setVault(c, v); err != nil {
		return err
	}
	if err := s.applyRecovery(c, rs); err != nil {
		return err
	}
	c.FailedPINs = 0
	return s.verify(o, struct{}{}, []event{s.customerEvent(o, planbok.EventCustomerRecoverySetup)}, nil)
}

func (s *Sandbox) completeUpdatePIN(o *outcome, in CompleteInput) error {
	if e := checkPIN("currentPin", in.CurrentPIN, "Current PIN"); e != nil {
		return e
	}
	if e := checkPIN("newPin", in.NewPIN, "New PIN"); e != nil {
		return e
	}
	c := o.customer
	v, err := s.vaultOf(c)
	if err != nil {
		return err
	}
	if err := v.ChangePIN(in.CurrentPIN, in.NewPIN, s.opts.KDF, s.opts.Rand); err != nil {
		return s.pinFailure(o, "currentPin", err)
	}
	if err := s.setVault(c, v); err != nil {
		return err
	}
	c.FailedPINs = 0
	return s.verify(o, struct{}{}, []event{s.customerEvent(o, planbok.EventCustomerPINUpdated)}, nil)
}

func (s *Sandbox) completeResetPIN(o *outcome, in CompleteInput) error {
	c := o.customer
	if in.Recovery == nil {
		if c.RecoveryMethod == methodEmail {
			return fieldErr(http.StatusBadRequest, "emailCode", "recovery.emailCode is required: enter the code emailed to the customer")
		}
		return fieldErr(http.StatusBadRequest, "answers", "recovery.answers is required: answer the security questions")
	}
	if e := checkPIN("newPin", in.NewPIN, "New PIN"); e != nil {
		return e
	}
	var secret []byte
	switch c.RecoveryMethod {
	case methodQuestions:
		if len(in.Recovery.Answers) != len(SecurityQuestions) {
			return fieldErr(http.StatusBadRequest, "answers", "This customer recovers with security questions: answer all %d", len(SecurityQuestions))
		}
		var err error
		if secret, err = keys.RecoverySecretFromAnswers(in.Recovery.Answers); err != nil {
			return fieldErr(http.StatusBadRequest, "answers", "The answers cannot be used: %v", err)
		}
		defer clear(secret)
	case methodEmail:
		code := strings.TrimSpace(in.Recovery.EmailCode)
		if code == "" {
			return fieldErr(http.StatusBadRequest, "emailCode", "This customer recovers by email: enter the emailed code")
		}
		if o.ch.EmailCodeMAC == "" {
			return fieldErr(http.StatusBadRequest, "emailCode", "No code was emailed for this challenge; start a new PIN reset")
		}
		if !s.codeMatches(o.ch, code) {
			return s.recoveryFailure(o, "emailCode", "The code does not match")
		}
		// Released only now that the code matched.
		var err error
		if secret, err = s.escrow(c); err != nil {
			return err
		}
		defer clear(secret)
	default:
		return errf(http.StatusBadRequest, "Customer has not set up recovery, so the PIN cannot be reset")
	}
	v, err := s.vaultOf(c)
	if err != nil {
		return err
	}
	if err := v.ResetPIN(secret, in.NewPIN, s.opts.KDF, s.opts.Rand); err != nil {
		switch {
		case errors.Is(err, keys.ErrWrongSecret):
			return s.recoveryFailure(o, "answers", "The answers do not match")
		case errors.Is(err, keys.ErrNoRecovery):
			return errf(http.StatusBadRequest, "Customer has not set up recovery, so the PIN cannot be reset")
		}
		return fmt.Errorf("reset pin: %w", err)
	}
	if err := s.setVault(c, v); err != nil {
		return err
	}
	c.Status, c.FailedPINs = planbok.CustomerActive, 0
	return s.verify(o, struct{}{}, []event{s.customerEvent(o, planbok.EventCustomerRecoveryCompleted)}, nil)
}

// unlockSeed rebuilds the customer's seed from the user share (sealed
// under pin) and the node share, as export and wallet creation do. A wrong
// PIN counts towards the lockout.
func (s *Sandbox) unlockSeed(o *outcome, pin string) ([]byte, error) {
	if e := checkPIN("pin", pin, "PIN"); e != nil {
		return nil, e
	}
	v, err := s.vaultOf(o.customer)
	if err != nil {
		return nil, err
	}
	seed, err := v.Seed(pin)
	if err != nil {
		return nil, s.pinFailure(o, "pin", err)
	}
	return seed, nil
}

func (s *Sandbox) completeExport(o *outcome, in CompleteInput) error {
	seed, err := s.unlockSeed(o, in.PIN)
	if err != nil {
		return err
	}
	defer clear(seed)
	c := o.customer
	ws, err := walletsOf(s.db.x, c.ID)
	if err != nil {
		return err
	}
	accounts := make([]keys.Account, 0, len(ws))
	for _, w := range ws {
		a, err := keys.Derive(seed, w.Blockchain, uint32(w.Idx))
		if err != nil {
			return fmt.Errorf("derive wallet %s: %w", w.ID, err)
		}
		if a.Address != w.Address {
			return fmt.Errorf("derive wallet %s: address does not match the stored one", w.ID)
		}
		accounts = append(accounts, a)
	}
	var buf bytes.Buffer
	if err := keys.WriteCSV(&buf, accounts); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	c.FailedPINs = 0
	if err := s.verify(o, struct{}{}, nil, nil); err != nil {
		return err
	}
	o.csv = buf.Bytes()
	return nil
}

func (s *Sandbox) completeCreateWallets(o *outcome, in CompleteInput) error {
	seed, err := s.unlockSeed(o, in.PIN)
	if err != nil {
		return err
	}
	defer clear(seed)
	c := o.customer
	now := s.now()
	next := map[string]int64{}
	var ws []wallet
	for _, b := range o.ch.blockchains() {
		kt := planbok.Blockchains[b]
		idx, ok := next[kt]
		if !ok {
			if idx, err = nextIndex(s.db.x, c.ID, kt); err != nil {
				return err
			}
		}
		next[kt] = idx + 1
		a, err := keys.Derive(seed, b, uint32(idx))
		if err != nil {
			return fmt.Errorf("derive %s wallet: %w", b, err)
		}
		id, err := s.newID()
		if err != nil {
			return err
		}
		ws = append(ws, wallet{ID: id, CustomerID: c.ID, Blockchain: b, Address: a.Address,
			DerivationPath: a.DerivationPath, KeyType: a.KeyType, Idx: idx, ChallengeID: o.ch.ID, CreatedAt: toNanos(now)})
	}
	result := struct {
		Wallets []planbok.Wallet `json:"wallets"`
	}{Wallets: []planbok.Wallet{}}
	var events []event
	for i := range ws {
		result.Wallets = append(result.Wallets, ws[i].wire())
		events = append(events, event{planbok.EventWalletCreated, planbok.WebhookData{
			CustomerID: c.ID, ChallengeID: o.ch.ID, Task: planbok.TaskCreateWallets, Status: planbok.ChallengeVerified,
			WalletID: ws[i].ID, Blockchain: ws[i].Blockchain, Address: ws[i].Address}})
	}
	c.FailedPINs = 0
	return s.verify(o, result, events, func(tx *sqlx.Tx) error {
		for i := range ws {
			if err := insertWallet(tx, &ws[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// customerEvent is a customer.* event about o's verified challenge.
func (s *Sandbox) customerEvent(o *outcome, name string) event {
	return event{name, planbok.WebhookData{CustomerID: o.customer.ID, ChallengeID: o.ch.ID,
		Task: planbok.Task(o.ch.Task), Status: planbok.ChallengeVerified}}
}

// verify stores o's customer and marks its challenge verified with result,
// with the events and challenge.completed, in one transaction.
func (s *Sandbox) verify(o *outcome, result any, events []event, extra func(*sqlx.Tx) error) error {
	return s.finish(o, planbok.ChallengeVerified, result, events, extra)
}

func (s *Sandbox) finish(o *outcome, status string, result any, events []event, extra func(*sqlx.Tx) error) error {
	now := s.now()
	b, err := json.Marshal(result)
	if err != nil {
		return err
	}
	o.ch.Status = status
	o.ch.Result = sql.NullString{String: string(b), Valid: true}
	o.ch.CompletedAt = sql.NullInt64{Int64: toNanos(now), Valid: true}
	o.customer.UpdatedAt = toNanos(now)
	name := planbok.EventChallengeCompleted
	if status != planbok.ChallengeVerified {
		name = planbok.EventChallengeFailed
	}
	events = append(events, event{name, planbok.WebhookData{CustomerID: o.customer.ID, ChallengeID: o.ch.ID,
		Task: planbok.Task(o.ch.Task), Status: status}})
	err = s.db.inTx(func(tx *sqlx.Tx) error {
		if err := updateCustomer(tx, o.customer); err != nil {
			return err
		}
		if err := updateChallenge(tx, o.ch); err != nil {
			return err
		}
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return s.enqueueAll(tx, events)
	})
	if err != nil {
		return err
	}
	s.notifySender()
	s.log.Info("sandbox: challenge "+status, "customerId", o.customer.ID, "challengeId", o.ch.ID, "task", o.ch.Task)
	return nil
}

// failChallenge ends o's challenge as failed and returns ae.
func (s *Sandbox) failChallenge(o *outcome, reason string, ae *apiError, events ...event) error {
	if err := s.finish(o, planbok.ChallengeFailed, map[string]string{"reason": reason}, events, nil); err != nil {
		return err
	}
	return ae
}

// pinFailure handles an error of a PIN check: a wrong PIN counts towards
// the lockout; anything else is internal.
func (s *Sandbox) pinFailure(o *outcome, field string, err error) error {
	if !errors.Is(err, keys.ErrWrongSecret) {
		return fmt.Errorf("check pin: %w", err)
	}
	c := o.customer
	c.FailedPINs++
	left := max(MaxPINAttempts-c.FailedPINs, 0)
	if left == 0 {
		c.Status = planbok.CustomerLocked
		ae := &apiError{Status: http.StatusUnprocessableEntity, Field: field, Attempts: &left,
			Message: "Wrong PIN. Too many wrong attempts: the customer is locked out until the PIN is reset"}
		s.log.Warn("sandbox: customer locked out", "customerId", c.ID)
		return s.failChallenge(o, "locked_out", ae, event{planbok.EventCustomerLockedOut, planbok.WebhookData{
			CustomerID: c.ID, ChallengeID: o.ch.ID, Task: planbok.Task(o.ch.Task), Status: planbok.CustomerLocked}})
	}
	c.UpdatedAt = toNanos(s.now())
	if err := updateCustomer(s.db.x, c); err != nil {
		return err
	}
	word := "attempts"
	if left == 1 {
		word = "attempt"
	}
	return &apiError{Status: http.StatusUnprocessableEntity, Field: field, Attempts: &left,
		Message: fmt.Sprintf("Wrong PIN. %d %s remaining", left, word)}
}

// recoveryFailure counts a wrong recovery answer or code against the
// challenge; the last allowed one fails it.
func (s *Sandbox) recoveryFailure(o *outcome, field, msg string) error {
	o.ch.RecoveryAttempts++
	left := max(maxRecoveryAttempts-o.ch.RecoveryAttempts, 0)
	if left == 0 {
		ae := &apiError{Status: http.StatusUnprocessableEntity, Field: field, Attempts: &left,
			Message: msg + ". Too many wrong attempts: this PIN reset failed; start a new one"}
		return s.failChallenge(o, "too_many_recovery_attempts", ae)
	}
	if err := updateChallenge(s.db.x, o.ch); err != nil {
		return err
	}
	return &apiError{Status: http.StatusUnprocessableEntity, Field: field, Attempts: &left,
		Message: fmt.Sprintf("%s. %d attempts remaining", msg, left)}
}
