package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/custodyflows/custodyflows/flow"
)

// findFlow reads a flow: the store's row when it is current (see
// rowCurrent), else the flow workflow's own view (a query: CPU, and a
// billed action on Temporal Cloud), with the row as the fallback.
// Malformed ids are flow_not_found without asking anyone.
func (s *Server) findFlow(ctx context.Context, id string) (*flow.Flow, *apiError) {
	notFound := newError(flow.CodeFlowNotFound, "No flow has this id.")
	if !flow.ValidFlowID(id) {
		return nil, notFound
	}
	f, err := s.store.FindFlowByID(ctx, id)
	switch {
	case err == nil:
		if rowCurrent(f, s.now()) {
			return f, nil
		}
		return s.live(ctx, f), nil
	case isCode(err, flow.CodeFlowNotFound):
		// The workflow records its row by an activity; until then only the
		// workflow knows the flow.
		q, qerr := s.queryFlow(ctx, id)
		switch {
		case qerr == nil && q.ID == id:
			return q, nil
		case qerr != nil && temporalUnavailable(qerr):
			// Not "no such flow": the one who knows cannot be asked.
			return nil, temporalError(qerr)
		}
		return nil, notFound
	default:
		return nil, &apiError{code: flow.CodeInternal, cause: fmt.Errorf("find flow: %w", err)}
	}
}

// staleAfterExpiry is how long after its challenge's expiry an
// awaiting_user row is still believed: by then the flow has read the
// challenge one last time and recorded its end.
const staleAfterExpiry = time.Minute

// rowCurrent reports whether a stored flow row is what the flow workflow
// itself would answer. A flow records each status before anyone can learn
// it from the workflow: awaiting_user before the start answers, its end
// right after freeing the customer's slot, a few milliseconds before the
// workflow's own view turns terminal. So a terminal row is final, and an
// awaiting_user row is current until its challenge's expiry has passed by
// staleAfterExpiry (a row left behind by a flow an operator terminated, or
// whose end could not be recorded: then the workflow is asked). A starting
// row (written by flows of older releases) changes within a second: the
// workflow is asked.
func rowCurrent(f *flow.Flow, now time.Time) bool {
	switch {
	case f.Status.Terminal():
		return true
	case f.Status != flow.StatusAwaitingUser || f.ExpiresAt == nil:
		return false
	}
	return now.Before(f.ExpiresAt.Add(staleAfterExpiry))
}

func (s *Server) getFlow(c *gin.Context) {
	f, aerr := s.findFlow(c.Request.Context(), c.Param("flowId"))
	if aerr != nil {
		s.renderError(c, aerr)
		return
	}
	c.JSON(http.StatusOK, f)
}

// cancelFlow cancels an active flow through the flow workflow's cancel
// update and answers with the final flow.
func (s *Server) cancelFlow(c *gin.Context) {
	ctx := c.Request.Context()
	id := c.Param("flowId")
	f, aerr := s.findFlow(ctx, id)
	customerID := ""
	if f != nil {
		customerID = f.CustomerID
	}
	outcome := ""
	defer func() {
		if flow.ValidFlowID(id) {
			s.audit(c, "flow.cancel", customerID, id, outcome, "")
		}
	}()
	fail := func(e *apiError) {
		outcome = string(e.code)
		s.renderError(c, e)
	}
	if aerr != nil {
		fail(aerr)
		return
	}
	finished := func() *apiError {
		return newError(flow.CodeFlowFinished, fmt.Sprintf("The flow has already ended (%s).", f.Status))
	}
	if f.Status.Terminal() {
		fail(finished())
		return
	}

	final, err := s.cancelUpdate(ctx, id)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) || isFinishedError(err) {
			// The workflow ended meanwhile: answer with what it ended as.
			if g, gerr := s.findFlow(ctx, id); gerr == nil {
				f = g
			}
			fail(finished())
			return
		}
		fail(temporalError(err))
		return
	}
	if final.Status != flow.StatusCancelled && final.Status.Terminal() {
		f = final
		fail(finished())
		return
	}
	outcome = "cancelled"
	c.JSON(http.StatusOK, final)
}

func (s *Server) cancelUpdate(ctx context.Context, id string) (*flow.Flow, error) {
	h, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   flow.UpdateCancel,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return nil, fmt.Errorf("cancel update: %w", err)
	}
	var f flow.Flow
	if err := h.Get(ctx, &f); err != nil {
		return nil, fmt.Errorf("cancel result: %w", err)
	}
	return &f, nil
}

// isFinishedError reports whether a cancel update was refused because the
// flow had ended: the workflow refuses with a flow_finished application
// error.
func isFinishedError(err error) bool {
	code, _, ok := applicationCode(err)
	return ok && code == flow.CodeFlowFinished
}
