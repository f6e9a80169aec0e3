package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/custodyflows/custodyflows/flow"
	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/store"
)

const (
	maxIdempotencyKey = 255
	maxBlockchains    = 32
	auditTimeout      = 5 * time.Second
)

// startBody is the body of the five start routes other than wallets.
type startBody struct {
	RedirectURL    string  `json:"redirectUrl"`
	IdempotencyKey *string `json:"idempotencyKey"`
}

// walletsBody is the body of POST /v1/customers/{id}/wallets.
type walletsBody struct {
	RedirectURL    string   `json:"redirectUrl"`
	IdempotencyKey *string  `json:"idempotencyKey"`
	Blockchains    []string `json:"blockchains"`
}

// startInput is a validated start request.
type startInput struct {
	Kind           flow.Kind
	CustomerID     string
	RedirectURL    string
	IdempotencyKey string
	Blockchains    []string
}

// parseStart decodes and validates a start body for kind. It never calls a
// dependency, so it is the whole of the 400 stage of a start.
func parseStart(kind flow.Kind, body []byte, policy redirectPolicy) (startInput, *apiError) {
	in := startInput{Kind: kind}
	var key *string
	if spec, _ := flow.SpecOf(kind); spec.Blockchains {
		var b walletsBody
		if err := decodeStrict(body, &b); err != nil {
			return in, err
		}
		in.RedirectURL, key, in.Blockchains = b.RedirectURL, b.IdempotencyKey, b.Blockchains
		if b.Blockchains == nil {
			return in, newError(flow.CodeInvalidRequest, `Field "blockchains" is required.`)
		}
		if len(b.Blockchains) == 0 {
			return in, newError(flow.CodeInvalidRequest, `Field "blockchains" must name at least one blockchain.`)
		}
		if len(b.Blockchains) > maxBlockchains {
			return in, newError(flow.CodeInvalidRequest, fmt.Sprintf(`Field "blockchains" names more than %d blockchains.`, maxBlockchains))
		}
		seen := map[string]bool{}
		for _, bc := range b.Blockchains {
			if _, ok := planbok.Blockchains[bc]; !ok {
				return in, newError(flow.CodeInvalidRequest, fmt.Sprintf("Unknown blockchain %q; supported: %s.", clip(bc, 40), supportedBlockchains()))
			}
			if seen[bc] {
				return in, newError(flow.CodeInvalidRequest, fmt.Sprintf("Blockchain %q appears twice.", bc))
			}
			seen[bc] = true
		}
	} else {
		var b startBody
		if err := decodeStrict(body, &b); err != nil {
			return in, err
		}
		in.RedirectURL, key = b.RedirectURL, b.IdempotencyKey
	}
	if in.RedirectURL == "" {
		return in, newError(flow.CodeInvalidRequest, `Field "redirectUrl" is required.`)
	}
	if key != nil {
		if len(*key) == 0 || len(*key) > maxIdempotencyKey || !printable(*key) {
			return in, newError(flow.CodeInvalidRequest,
				fmt.Sprintf(`Field "idempotencyKey" must be 1 to %d printable ASCII characters.`, maxIdempotencyKey))
		}
		in.IdempotencyKey = *key
	}
	if err := policy.check(in.RedirectURL); err != nil {
		return in, err
	}
	return in, nil
}

func supportedBlockchains() string {
	names := make([]string, 0, len(planbok.Blockchains))
	for n := range planbok.Blockchains {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// requestHash identifies what an idempotency key was first used for: the
// flow kind (so the route), the customer and the body without the key.
// Blockchains are sorted, so the same set in another order is the same
// request.
func requestHash(in startInput) string {
	bcs := slices.Clone(in.Blockchains)
	slices.Sort(bcs)
	canon, _ := json.Marshal(struct {
		Kind        flow.Kind `json:"kind"`
		CustomerID  string    `json:"customerId"`
		RedirectURL string    `json:"redirectUrl"`
		Blockchains []string  `json:"blockchains"`
	}{in.Kind, in.CustomerID, in.RedirectURL, bcs})
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// startFlow handles POST /v1/customers/{id}/<route> for kind. The API
// decides only what needs no dependency: auth (middleware), then the body
// and URL (400). An idempotency key the store already holds for this
// customer is answered from there (the customer workflow forgets keys when
// it completes idle). Everything else is decided in the customer workflow,
// reached by one Update-with-Start, in API.md's order: the customer at
// Planbok (404), idempotency replay (200/409), the active flow (200/409),
// the per-customer quota (429), the rules (409), then the challenge (201),
// with Planbok calls retried within one budget (flow.StartPlanbokBudget).
func (s *Server) startFlow(kind flow.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		customerID := c.Param("customerId")
		outcome, flowID := "", ""
		defer func() {
			s.audit(c, "flow.start", customerID, flowID, outcome, "kind="+string(kind))
		}()
		fail := func(err *apiError) {
			outcome = string(err.code)
			if err.flowID != "" {
				flowID = err.flowID
			}
			s.renderError(c, err)
		}

		body, aerr := readBody(c, maxRequestBody)
		if aerr != nil {
			fail(aerr)
			return
		}
		in, aerr := parseStart(kind, body, s.redirect)
		if aerr != nil {
			fail(aerr)
			return
		}
		if !validCustomerID(customerID) {
			customerID = clip(customerID, 64)
			fail(newError(flow.CodeCustomerNotFound, "No customer has this id."))
			return
		}
		in.CustomerID = customerID

		hash := requestHash(in)
		if in.IdempotencyKey != "" {
			// A stored flow of this customer exists, so the customer does:
			// answering here keeps API.md's order.
			f, meta, err := s.store.FindFlowByIdempotencyKey(ctx, customerID, in.IdempotencyKey)
			switch {
			case err == nil && meta.RequestHash == hash:
				live := s.live(ctx, f)
				if live.Status != flow.StatusStarting && !failedBeforeChallenge(live) {
					outcome, flowID = "replayed", f.ID
					c.JSON(http.StatusOK, live)
					return
				}
				// Still starting: the customer workflow answers once the
				// challenge exists. Failed before its challenge existed
				// (its row does not say so yet): the key is released and
				// the workflow starts afresh.
			case err == nil:
				fail(newError(flow.CodeIdempotencyKeyReused, "This idempotencyKey was already used with another route or body."))
				return
			case isCode(err, flow.CodeFlowNotFound):
				// Not stored: the customer workflow may still know it.
			default:
				fail(&apiError{code: flow.CodeInternal, cause: fmt.Errorf("find flow by idempotency key: %w", err)})
				return
			}
		}

		res, err := s.updateWithStart(c, in, hash)
		if err != nil {
			fail(temporalError(err))
			return
		}
		switch {
		case res.Refusal != nil:
			ae := &apiError{code: res.Refusal.Code, message: res.Refusal.Message, activeFlowID: res.ActiveFlowID,
				availableAt: res.Refusal.AvailableAt}
			if res.Flow != nil {
				ae.flowID = res.Flow.ID
			}
			switch ae.code {
			case flow.CodeRateLimited:
				ae.retryAfter = retryAfterSeconds(res.RetryAfter)
			case flow.CodePlanbokUnavailable:
				ae.retryAfter = retryAfterPlanbok
			case flow.CodeTemporalUnavailable:
				ae.retryAfter = retryAfterTemporal
			}
			fail(ae)
		case res.Flow == nil:
			fail(&apiError{code: flow.CodeInternal, cause: fmt.Errorf("start-flow update returned neither a flow nor a refusal")})
		case res.Created:
			outcome, flowID = "created", res.Flow.ID
			c.JSON(http.StatusCreated, res.Flow)
		default:
			outcome, flowID = "existing", res.Flow.ID
			c.JSON(http.StatusOK, res.Flow)
		}
	}
}

// failedBeforeChallenge reports whether f failed before Planbok's
// challenge existed: its idempotency key is released.
func failedBeforeChallenge(f *flow.Flow) bool {
	return f != nil && f.Status == flow.StatusFailed && f.ChallengeID == ""
}

// updateWithStartAttempts bounds how often a start is sent when the
// customer workflow completed (idle) in the very task that admitted the
// update: the next attempt starts a new run, so two attempts suffice; a
// third covers a second such race.
const updateWithStartAttempts = 3

// updateWithStart sends the start-flow update to the customer's workflow,
// starting that workflow if it is not running, and waits for its result.
func (s *Server) updateWithStart(c *gin.Context, in startInput, hash string) (flow.StartResult, error) {
	var err error
	for range updateWithStartAttempts {
		var res flow.StartResult
		res, err = s.updateWithStartOnce(c, in, hash)
		var notFound *serviceerror.NotFound
		if !errors.As(err, &notFound) {
			return res, err
		}
		// The run ended under the update ("workflow execution already
		// completed"); a new attempt starts a fresh run.
	}
	return flow.StartResult{}, err
}

// updateWithStartOnce sends the update and waits in two steps: first until
// the customer workflow has accepted it, within flow.StartAdmitTimeout, so
// an unreachable Temporal (or a task queue no worker polls) answers 503 in
// seconds; then for its result, within the request's time, which the
// workflow's Planbok budget leaves room for.
func (s *Server) updateWithStartOnce(c *gin.Context, in startInput, hash string) (flow.StartResult, error) {
	ctx := c.Request.Context()
	var remaining time.Duration
	if d, ok := ctx.Deadline(); ok {
		remaining = time.Until(d)
	}
	startOp := s.temporal.NewWithStartWorkflowOperation(s.customerWorkflowOptions(in.CustomerID),
		flow.WorkflowCustomer, flow.CustomerInput{CustomerID: in.CustomerID})
	admitCtx, cancel := context.WithTimeout(ctx, flow.StartAdmitTimeout)
	defer cancel()
	updateID := rand.Text()
	handle, err := s.temporal.UpdateWithStartWorkflow(admitCtx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: startOp,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateID:   updateID,
			UpdateName: flow.UpdateStartFlow,
			Args: []any{flow.StartRequest{
				Kind:           in.Kind,
				CustomerID:     in.CustomerID,
				RedirectURL:    in.RedirectURL,
				Blockchains:    in.Blockchains,
				IdempotencyKey: in.IdempotencyKey,
				RequestHash:    hash,
				Actor:          actor(c),
				Quota:          s.startQuota,
				PlanbokBudget:  flow.PlanbokBudget(remaining),
			}},
			WaitForStage: client.WorkflowUpdateStageAccepted,
		},
	})
	if notAcceptedInTime(err, admitCtx) && ctx.Err() == nil {
		handle, err = s.reattach(ctx, flow.CustomerWorkflowID(in.CustomerID), updateID, err)
	}
	if err != nil {
		return flow.StartResult{}, fmt.Errorf("update-with-start %s: %w", flow.CustomerWorkflowID(in.CustomerID), err)
	}
	var res flow.StartResult
	if err := handle.Get(ctx, &res); err != nil {
		return flow.StartResult{}, fmt.Errorf("start-flow result: %w", err)
	}
	return res, nil
}

// notAcceptedInTime reports whether the update-with-start failed because
// its admit time ran out: the context ended, or the SDK's call ended as
// timed out or cancelled (the server may give up on the call a moment
// before the context's own timer fires).
func notAcceptedInTime(err error, admitCtx context.Context) bool {
	if err == nil {
		return false
	}
	var timedOut *client.WorkflowUpdateServiceTimeoutOrCanceledError
	return admitCtx.Err() != nil || errors.As(err, &timedOut)
}

// updateHandleGetter is the part of the Temporal client that finds an
// update again by its id; client.Client has it, test fakes may not.
type updateHandleGetter interface {
	GetWorkflowUpdateHandle(ref client.GetWorkflowUpdateHandleOptions) client.WorkflowUpdateHandle
}

// reattach decides about a start-flow update that was not accepted within
// flow.StartAdmitTimeout. A worker accepts an update when the workflow
// task that runs it completes, and that task also runs the start's first
// Planbok calls (local activities): while Planbok is slow, acceptance
// comes only when they end or the task heartbeats. So when a worker polls
// the task queue the start goes on, found again by its update id, within
// the request's time; when none does, or Temporal does not answer, admitErr
// stands and the start answers 503 at once.
func (s *Server) reattach(ctx context.Context, workflowID, updateID string, admitErr error) (client.WorkflowUpdateHandle, error) {
	getter, ok := s.temporal.(updateHandleGetter)
	if !ok {
		return nil, admitErr
	}
	if err := s.workerPolls(ctx); err != nil {
		s.logger.WarnContext(ctx, "start not accepted in time and no worker seen", "workflowId", workflowID, "err", err.Error())
		return nil, admitErr
	}
	return getter.GetWorkflowUpdateHandle(client.GetWorkflowUpdateHandleOptions{WorkflowID: workflowID, UpdateID: updateID}), nil
}

// customerWorkflowOptions starts (or joins) the customer's workflow.
func (s *Server) customerWorkflowOptions(customerID string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       flow.CustomerWorkflowID(customerID),
		TaskQueue:                s.cfg.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}
}

// audit records one audit row; a failure is logged, never shown.
// It runs on its own deadline so a request that ran out of time is still
// audited.
func (s *Server) audit(c *gin.Context, action, customerID, flowID, outcome, detail string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), auditTimeout)
	defer cancel()
	err := s.store.RecordAudit(ctx, &store.AuditEntry{
		At: s.now().UTC(), Actor: actor(c), Action: action, CustomerID: customerID,
		FlowID: flowID, Outcome: outcome, Detail: detail,
	})
	if err != nil {
		s.logger.WarnContext(c.Request.Context(), "record audit", "request_id", requestID(c), "action", action, "err", err.Error())
	}
}
