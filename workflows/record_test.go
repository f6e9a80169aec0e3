//go:build record

package workflows

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/custodyflows/custodyflows/flow"
)

// TestRecordHistories runs every workflow type on a real in-memory Temporal
// server with fake activities and writes one history per type to
// testdata/<Type>.<label>.json (-label, e.g. v2 after a workflow.GetVersion
// change; older recordings stay), for TestReplay_RecordedHistories. Each flow kind
// takes a different path through the loop:
//
//	initialize           verified, told by webhook (its customer gets a lockout event too)
//	recovery             verified, found by polling
//	update_pin           failed (the customer locks out)
//	reset_pin            cancelled
//	export_private_keys  expired (a 3 s challenge)
//	create_wallets       create-challenge retried once, then verified by webhook
//
// and three more histories, named <Type>.<label>-<case>.json:
//
//	Recovery …-operator-cancel      a flow cancelled by an operator (not the API)
//	Initialize …-failed-starting    Planbok refuses the challenge: failed before awaiting_user
//	Customer …-continue-as-new      a customer workflow that continued as new
var recordLabel = flag.String("label", "", "recording label, e.g. v2: histories go to testdata/<Type>.<label>.json")

func TestRecordHistories(t *testing.T) {
	if *recordLabel == "" {
		t.Fatal("-label is required: go test -tags record -run TestRecordHistories ./workflows -args -label v2")
	}
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	c := ts.GetDefaultClient()
	acts := &recordingActivities{statuses: map[string]string{}}
	ts.NewWorkerWithOptions(flow.DefaultTaskQueue, func(r worker.Registry) {
		for _, reg := range All() {
			r.RegisterWorkflowWithOptions(reg.Fn, workflow.RegisterOptions{Name: reg.Name})
		}
		acts.register(r)
	}, worker.Options{DisableRegistrationAliasing: true})
	ts.NewWorkerWithOptions(flow.PollTaskQueue(flow.DefaultTaskQueue), func(r worker.Registry) {
		acts.register(r)
	}, worker.Options{DisableRegistrationAliasing: true, DisableWorkflowWorker: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	flowIDs := map[flow.Kind]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, kind := range flow.Kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := runRecordedFlow(ctx, t, c, acts, kind)
			mu.Lock()
			flowIDs[kind] = id
			mu.Unlock()
		}()
	}
	var cancelID, failedID, canCustomer string
	wg.Add(3)
	go func() {
		defer wg.Done()
		cancelID = runOperatorCancel(ctx, t, c)
	}()
	go func() {
		defer wg.Done()
		failedID = runFailedStarting(ctx, t, c)
	}()
	go func() {
		defer wg.Done()
		canCustomer = runContinueAsNew(ctx, t, c)
	}()
	wg.Wait()
	if t.Failed() {
		return
	}

	custWF := flow.CustomerWorkflowID(recordCustomer(flow.KindInitialize))
	if err := c.GetWorkflow(ctx, custWF, "").Get(ctx, nil); err != nil {
		t.Fatalf("customer workflow: %v", err)
	}

	write := func(name, workflowID string) { writeRun(name+"."+*recordLabel, workflowID, "") }
	// writeRun writes a run's history to testdata/<stem>.json.
	writeRun = func(stem, workflowID, runID string) {
		var events []*historypb.HistoryEvent
		iter := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				t.Fatalf("history of %s: %v", workflowID, err)
			}
			events = append(events, ev)
		}
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(&historypb.History{Events: events})
		if err != nil {
			t.Fatalf("marshal history of %s: %v", workflowID, err)
		}
		path := filepath.Join("testdata", stem+".json")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d events (%s)", path, len(events), workflowID)
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	write(flow.WorkflowCustomer, custWF)
	for _, kind := range flow.Kinds {
		write(kind.WorkflowType(), flowIDs[kind])
	}
	// Lean flows deliver their events themselves; the customer workflow
	// still starts NotifyApp for a lockout no flow reported.
	notifyID := flow.NotifyWorkflowID(custWF + ".wh-lock." + string(flow.EventLockedOut))
	if err := c.GetWorkflow(ctx, notifyID, "").Get(ctx, nil); err != nil {
		t.Fatalf("notify workflow: %v", err)
	}
	write(flow.WorkflowNotifyApp, notifyID)
	writeRun(flow.WorkflowRecovery+"."+*recordLabel+"-operator-cancel", cancelID, "")
	writeRun(flow.WorkflowInitialize+"."+*recordLabel+"-failed-starting", failedID, "")
	// The first run: the one that continued as new.
	d, err := c.DescribeWorkflowExecution(ctx, canCustomer, "")
	if err != nil {
		t.Fatalf("describe %s: %v", canCustomer, err)
	}
	first := d.GetWorkflowExecutionInfo().GetFirstRunId()
	writeRun(flow.WorkflowCustomer+"."+*recordLabel+"-continue-as-new", canCustomer, first)
}

// startFlow makes one update-with-start on customer's workflow, the way the
// API does.
func startFlow(ctx context.Context, c client.Client, customer string, req flow.StartRequest) (flow.StartResult, error) {
	op := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       flow.CustomerWorkflowID(customer),
		TaskQueue:                flow.DefaultTaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, flow.WorkflowCustomer, flow.CustomerInput{CustomerID: customer, IdleTimeout: 3 * time.Second})
	h, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: op,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName: flow.UpdateStartFlow, Args: []any{req}, WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	var res flow.StartResult
	if err == nil {
		err = h.Get(ctx, &res)
	}
	return res, err
}

// runOperatorCancel starts a recovery flow and cancels its workflow as an
// operator would (temporal workflow cancel), and returns the flow's id.
func runOperatorCancel(ctx context.Context, t *testing.T, c client.Client) string {
	customer := "rec-operator-cancel"
	res, err := startFlow(ctx, c, customer, flow.StartRequest{Kind: flow.KindRecovery, CustomerID: customer, RedirectURL: "https://app.example/back"})
	if err != nil || res.Flow == nil {
		t.Errorf("operator cancel: start: %+v, %v", res, err)
		return ""
	}
	if err := c.CancelWorkflow(ctx, res.Flow.ID, ""); err != nil {
		t.Errorf("operator cancel: %v", err)
	}
	var final flow.Flow
	if err := c.GetWorkflow(ctx, res.Flow.ID, "").Get(ctx, &final); err != nil || final.Status != flow.StatusCancelled {
		t.Errorf("operator cancel: got %s, %v; want cancelled", final.Status, err)
	}
	return res.Flow.ID
}

// runFailedStarting starts an initialize flow whose challenge Planbok
// refuses, and returns the flow's id.
func runFailedStarting(ctx context.Context, t *testing.T, c client.Client) string {
	customer := failingCustomer
	res, err := startFlow(ctx, c, customer, flow.StartRequest{Kind: flow.KindInitialize, CustomerID: customer, RedirectURL: "https://app.example/back"})
	if err != nil || res.Flow == nil || res.Flow.Status != flow.StatusFailed {
		t.Errorf("failed starting: got %+v, %v; want a failed flow", res, err)
		return ""
	}
	var final flow.Flow
	if err := c.GetWorkflow(ctx, res.Flow.ID, "").Get(ctx, &final); err != nil {
		t.Errorf("failed starting: %v", err)
	}
	return res.Flow.ID
}

// failingCustomer is the customer whose challenges Planbok refuses.
const failingCustomer = "rec-failed-starting"

// runContinueAsNew makes a customer workflow handle maxStartsPerRun starts
// (refused by Preflight: the customer is unknown, so no flow starts), so it
// continues as new once idle, and returns its workflow id.
func runContinueAsNew(ctx context.Context, t *testing.T, c client.Client) string {
	customer := unknownCustomer
	req := flow.StartRequest{Kind: flow.KindRecovery, CustomerID: customer, RedirectURL: "https://app.example/back"}
	for i := range maxStartsPerRun {
		res, err := startFlow(ctx, c, customer, req)
		if err != nil || res.Refusal == nil || res.Refusal.Code != flow.CodeCustomerNotFound {
			t.Errorf("continue-as-new: start %d: got %+v, %v; want customer_not_found", i, res, err)
			return ""
		}
	}
	id := flow.CustomerWorkflowID(customer)
	// The next run completes after its idle timeout.
	if err := c.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
		t.Errorf("continue-as-new: customer workflow: %v", err)
	}
	return id
}

// unknownCustomer is the customer Planbok does not know.
const unknownCustomer = "rec-continue-as-new"

var writeRun func(name, workflowID, runID string)

func recordCustomer(kind flow.Kind) string { return "rec-" + string(kind) }

// runRecordedFlow starts a flow of kind the way the API does
// (update-with-start on the customer workflow), drives it to its end and
// returns its id.
func runRecordedFlow(ctx context.Context, t *testing.T, c client.Client, acts *recordingActivities, kind flow.Kind) string {
	customer := recordCustomer(kind)
	op := c.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       flow.CustomerWorkflowID(customer),
		TaskQueue:                flow.DefaultTaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, flow.WorkflowCustomer, flow.CustomerInput{CustomerID: customer, IdleTimeout: 3 * time.Second})
	req := flow.StartRequest{
		Kind: kind, CustomerID: customer, RedirectURL: "https://app.example/back",
		IdempotencyKey: "key-" + string(kind), RequestHash: "hash", Actor: "apikey-1",
	}
	if kind == flow.KindCreateWallets {
		req.Blockchains = []string{"ETH-SEPOLIA", "SOL-DEVNET"}
	}
	h, err := c.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: op,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName: flow.UpdateStartFlow, Args: []any{req}, WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		t.Errorf("%s: update with start: %v", kind, err)
		return ""
	}
	var res flow.StartResult
	if err := h.Get(ctx, &res); err != nil || res.Flow == nil {
		t.Errorf("%s: start result: %+v, %v", kind, res, err)
		return ""
	}
	f := *res.Flow
	webhook := func() {
		err := c.SignalWorkflow(ctx, f.ID, "", flow.SignalChallengeEvent, flow.ChallengeEvent{
			ChallengeID: f.ChallengeID, Event: "challenge.completed", WebhookID: "wh-" + f.ID, Received: time.Now().UTC(),
		})
		if err != nil {
			t.Errorf("%s: signal: %v", kind, err)
		}
	}
	switch kind {
	case flow.KindInitialize, flow.KindCreateWallets:
		acts.setStatus(f.ChallengeID, "verified")
		webhook()
		webhook() // a duplicate changes nothing
	case flow.KindRecovery:
		acts.setStatus(f.ChallengeID, "verified")
	case flow.KindUpdatePIN:
		acts.setStatus(customer+"/sync", "locked")
		acts.setStatus(f.ChallengeID, "failed")
		webhook()
	case flow.KindResetPIN:
		uh, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: f.ID, UpdateName: flow.UpdateCancel, WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			var got flow.Flow
			err = uh.Get(ctx, &got)
		}
		if err != nil {
			t.Errorf("%s: cancel: %v", kind, err)
		}
	case flow.KindExportPrivateKeys:
		// Pending until its 3 s challenge expires.
	}
	var final flow.Flow
	if err := c.GetWorkflow(ctx, f.ID, "").Get(ctx, &final); err != nil {
		t.Errorf("%s: flow result: %v", kind, err)
	}
	t.Logf("%s: %s ended %s", kind, f.ID, final.Status)
	if kind == flow.KindInitialize {
		// The customer workflow also handles a customer-level lockout
		// event, then completes after its idle timeout.
		acts.setStatus(customer+"/sync", "locked")
		err := c.SignalWorkflow(ctx, flow.CustomerWorkflowID(customer), "", flow.SignalCustomerEvent, flow.CustomerEvent{
			CustomerID: customer, Event: "customer.locked_out", WebhookID: "wh-lock", Received: time.Now().UTC(),
		})
		if err != nil {
			t.Errorf("signal customer event: %v", err)
		}
	}
	return f.ID
}

// recordingActivities are fakes for recording. statuses holds, by
// challenge id, what GetChallenge answers, and by "<customer>/sync" whether
// the next sync sees a lockout.
type recordingActivities struct {
	mu       sync.Mutex
	statuses map[string]string
	creates  map[string]int
}

func (a *recordingActivities) setStatus(key, status string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.statuses[key] = status
}

func (a *recordingActivities) register(r worker.Registry) {
	for name, fn := range map[string]any{
		flow.ActivityPreflight:       a.Preflight,
		flow.ActivityCreateChallenge: a.CreateChallenge,
		flow.ActivityGetChallenge:    a.GetChallenge,
		flow.ActivityRecordFlow:      func(context.Context, flow.RecordFlowInput) error { return nil },
		flow.ActivitySyncCustomer:    a.SyncCustomer,
		flow.ActivityRecordAudit:     func(context.Context, flow.AuditInput) error { return nil },
		flow.ActivityDeliverEvent:    func(context.Context, flow.DeliverEventInput) error { return nil },
		flow.ActivityAwaitChallenge:  a.AwaitChallenge,
	} {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

func (a *recordingActivities) Preflight(_ context.Context, in flow.PreflightInput) (flow.PreflightResult, error) {
	if in.CustomerID == unknownCustomer {
		return flow.PreflightResult{Refusal: flow.Errorf(flow.CodeCustomerNotFound, "No customer has this id.")}, nil
	}
	s := flow.Standing{HasPIN: in.Kind != flow.KindInitialize, HasRecovery: in.Kind != flow.KindInitialize && in.Kind != flow.KindRecovery}
	return flow.PreflightResult{Standing: s}, nil
}

func (a *recordingActivities) CreateChallenge(_ context.Context, in flow.CreateChallengeInput) (flow.Challenge, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.creates == nil {
		a.creates = map[string]int{}
	}
	a.creates[in.FlowID]++
	if in.CustomerID == failingCustomer {
		return flow.Challenge{}, temporal.NewNonRetryableApplicationError("Planbok answered 400.", string(flow.CodePlanbokRejected), nil)
	}
	if in.Kind == flow.KindCreateWallets && a.creates[in.FlowID] == 1 {
		return flow.Challenge{}, retryable("Planbok answered 429.")
	}
	ttl := 15 * time.Minute
	if in.Kind == flow.KindExportPrivateKeys {
		ttl = 3 * time.Second
	}
	id := challengeIDFor(in.FlowID)
	return flow.Challenge{ID: id, GatewayURL: "https://gateway.example/c/" + id, ExpiresAt: time.Now().UTC().Add(ttl).Truncate(time.Millisecond)}, nil
}

func (a *recordingActivities) AwaitChallenge(ctx context.Context, in flow.GetChallengeInput) (flow.ChallengeStatus, error) {
	st, err := a.GetChallenge(ctx, in)
	if err == nil && st.Status == "pending" {
		return st, temporal.NewApplicationError("The challenge is still pending.", "challenge_pending")
	}
	return st, err
}

func (a *recordingActivities) GetChallenge(_ context.Context, in flow.GetChallengeInput) (flow.ChallengeStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.statuses[in.ChallengeID]; s != "" {
		return flow.ChallengeStatus{Status: s}, nil
	}
	return flow.ChallengeStatus{Status: "pending"}, nil
}

func (a *recordingActivities) SyncCustomer(_ context.Context, in flow.SyncCustomerInput) (flow.SyncCustomerResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := in.CustomerID + "/sync"
	if a.statuses[key] == "locked" {
		a.statuses[key] = "seen"
		return flow.SyncCustomerResult{Security: flow.Security{HasPIN: true, HasRecovery: true, LockedOut: true}, LockedOutNow: true}, nil
	}
	return flow.SyncCustomerResult{Security: flow.Security{HasPIN: true, HasRecovery: true, CanTransact: true}}, nil
}
