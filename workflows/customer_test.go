package workflows

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/custodyflows/custodyflows/flow"
)

// customerTest runs one customer workflow, with real flow workflows as its
// children and fake activities.
type customerTest struct {
	t      *testing.T
	env    *testsuite.TestWorkflowEnvironment
	fakes  *fakeActivities
	events *notified
	in     flow.CustomerInput
	seq    int
}

func newCustomerTest(t *testing.T) *customerTest {
	env, f := newEnv(t)
	ct := &customerTest{t: t, env: env, fakes: f, events: &notified{}, in: flow.CustomerInput{CustomerID: testCustomer}}
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: flow.CustomerWorkflowID(testCustomer)})
	ct.events.listen(t, env)
	return ct
}

// startOutcome is what a start-flow update answered.
type startOutcome struct {
	done     bool
	rejected error
	err      error
	res      flow.StartResult
}

// testQuota is the API's default start quota: 20 an hour, burst 20.
var testQuota = flow.Quota{Every: 3 * time.Minute, Burst: 20}

func request(kind flow.Kind, key, hash string) flow.StartRequest {
	return flow.StartRequest{
		Kind: kind, CustomerID: testCustomer, RedirectURL: "https://app.example/back",
		IdempotencyKey: key, RequestHash: hash, Actor: "apikey-1", Quota: testQuota,
	}
}

// start sends a start-flow update at offset d.
func (ct *customerTest) start(d time.Duration, req flow.StartRequest) *startOutcome {
	ct.seq++
	id := fmt.Sprintf("start-%d", ct.seq)
	out := &startOutcome{}
	ct.env.RegisterDelayedCallback(func() {
		ct.env.UpdateWorkflow(flow.UpdateStartFlow, id, &testsuite.TestUpdateCallback{
			OnReject: func(err error) { out.done = true; out.rejected = err },
			OnComplete: func(v any, err error) {
				out.done = true
				out.err = err
				if err == nil {
					decode(ct.t, v, &out.res)
				}
			},
		}, req)
	}, d)
	return out
}

// signalFlow sends a challenge event to a flow (a child) at offset d.
func (ct *customerTest) signalFlow(d time.Duration, flowID func() string, webhookID string) {
	ct.env.RegisterDelayedCallback(func() {
		id := flowID()
		err := ct.env.SignalWorkflowByID(id, flow.SignalChallengeEvent, flow.ChallengeEvent{
			ChallengeID: challengeIDFor(id), Event: "challenge.completed", WebhookID: webhookID, Received: at(d),
		})
		if err != nil {
			ct.t.Errorf("signal flow %s: %v", id, err)
		}
	}, d)
}

func (ct *customerTest) queryActive(d time.Duration) **flow.Flow {
	var got *flow.Flow
	ct.env.RegisterDelayedCallback(func() {
		v, err := ct.env.QueryWorkflow(flow.QueryActiveFlow)
		if err != nil {
			ct.t.Errorf("query active flow: %v", err)
			return
		}
		decode(ct.t, v, &got)
	}, d)
	return &got
}

// run runs the customer workflow until it completes (idle) and returns its
// error.
func (ct *customerTest) run() error {
	ct.t.Helper()
	ct.env.ExecuteWorkflow(flow.WorkflowCustomer, ct.in)
	if !ct.env.IsWorkflowCompleted() {
		ct.t.Fatalf("workflow completed: got false, want true")
	}
	return ct.env.GetWorkflowError()
}

func (o *startOutcome) created(t *testing.T) flow.Flow {
	t.Helper()
	if !o.done || o.rejected != nil || o.err != nil {
		t.Fatalf("start: got done=%v rejected=%v err=%v, want a result", o.done, o.rejected, o.err)
	}
	if o.res.Flow == nil {
		t.Fatalf("start: got refusal %v, want a flow", o.res.Refusal)
	}
	return *o.res.Flow
}

func (o *startOutcome) flowID() string {
	if o.res.Flow == nil {
		return ""
	}
	return o.res.Flow.ID
}

func (o *startOutcome) refusal(t *testing.T, code flow.Code) {
	t.Helper()
	if !o.done || o.rejected != nil || o.err != nil {
		t.Fatalf("start: got done=%v rejected=%v err=%v, want a result", o.done, o.rejected, o.err)
	}
	if o.res.Refusal == nil || o.res.Refusal.Code != code {
		t.Fatalf("refusal: got %v, want %s", o.res.Refusal, code)
	}
}

func TestCustomer_StartReturnsAwaitingUser(t *testing.T) {
	for _, kind := range flow.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			ct := newCustomerTest(t)
			first := ct.start(0, request(kind, "key-1", "hash-1"))
			active := ct.queryActive(10 * time.Second)
			ct.env.RegisterDelayedCallback(func() { ct.fakes.setStatus("verified") }, 30*time.Second)
			ct.signalFlow(30*time.Second, first.flowID, "wh-1")
			after := ct.queryActive(40 * time.Second)
			if err := ct.run(); err != nil {
				t.Fatalf("workflow error: got %v, want nil", err)
			}

			f := first.created(t)
			if !first.res.Created {
				t.Errorf("created: got false, want true")
			}
			wantStatus(t, f, flow.StatusAwaitingUser, "")
			if !flow.ValidFlowID(f.ID) {
				t.Errorf("flow id: got %q, want a valid flow id", f.ID)
			}
			wantEqual(t, "kind", f.Kind, kind)
			wantEqual(t, "challengeId", f.ChallengeID, challengeIDFor(f.ID))
			wantEqual(t, "createdAt", f.CreatedAt, t0)
			if *active == nil || (*active).ID != f.ID {
				t.Errorf("active flow at 10s: got %v, want %s", *active, f.ID)
			}
			if *after != nil {
				t.Errorf("active flow after completion: got %+v, want nil", *after)
			}
			wantEqual(t, "preflights", ct.fakes.preflights, []flow.PreflightInput{{CustomerID: testCustomer, Kind: kind}})
			wantEqual(t, "create key", ct.fakes.creates[0].IdempotencyKey, challengeKey(f.ID))
			wantEqual(t, "events", ct.fakes.deliveredTypes(), []flow.EventType{kind.EventType()})
			// The workflow completes after DefaultIdleTimeout of idleness.
			if got, want := ct.env.Now().Sub(t0), 30*time.Second+DefaultIdleTimeout; got != want {
				t.Errorf("completed after: got %v, want %v", got, want)
			}
		})
	}
}

func TestCustomer_SameKindReturnsActiveFlow(t *testing.T) {
	ct := newCustomerTest(t)
	first := ct.start(0, request(flow.KindUpdatePIN, "key-1", "hash-1"))
	second := ct.start(5*time.Second, request(flow.KindUpdatePIN, "key-2", "hash-2"))
	third := ct.start(6*time.Second, request(flow.KindUpdatePIN, "", ""))
	replay2 := ct.start(7*time.Second, request(flow.KindUpdatePIN, "key-2", "hash-2"))
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}

	f := first.created(t)
	for i, o := range []*startOutcome{second, third, replay2} {
		g := o.created(t)
		if g.ID != f.ID || o.res.Created {
			t.Errorf("start %d: got flow %s created=%v, want flow %s created=false", i+2, g.ID, o.res.Created, f.ID)
		}
	}
	wantEqual(t, "CreateChallenge calls", len(ct.fakes.creates), 1)
	wantEqual(t, "preflights", len(ct.fakes.preflights), 1)
}

func TestCustomer_OtherKindRefusedWhileActive(t *testing.T) {
	ct := newCustomerTest(t)
	first := ct.start(0, request(flow.KindUpdatePIN, "key-1", "hash-1"))
	other := ct.start(5*time.Second, request(flow.KindExportPrivateKeys, "key-2", "hash-2"))
	// Once the first flow has expired the slot is free again.
	later := ct.start(16*time.Minute, request(flow.KindExportPrivateKeys, "key-2", "hash-2"))
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}

	f := first.created(t)
	other.refusal(t, flow.CodeFlowInProgress)
	wantEqual(t, "activeFlowId", other.res.ActiveFlowID, f.ID)
	if other.res.Flow != nil {
		t.Errorf("refused flow: got %+v, want nil", other.res.Flow)
	}
	g := later.created(t)
	if g.ID == f.ID || !later.res.Created || g.Kind != flow.KindExportPrivateKeys {
		t.Errorf("later start: got %s %s created=%v, want a new export flow", g.ID, g.Kind, later.res.Created)
	}
}

func TestCustomer_ConcurrentStartsStartOneFlow(t *testing.T) {
	ct := newCustomerTest(t)
	var outs []*startOutcome
	for i := range 3 {
		outs = append(outs, ct.start(0, request(flow.KindRecovery, fmt.Sprintf("key-%d", i), "h")))
	}
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	created := 0
	id := outs[0].created(t).ID
	for _, o := range outs {
		if o.created(t).ID != id {
			t.Errorf("flow: got %s, want %s", o.created(t).ID, id)
		}
		if o.res.Created {
			created++
		}
	}
	wantEqual(t, "created", created, 1)
	wantEqual(t, "CreateChallenge calls", len(ct.fakes.creates), 1)
}

func TestCustomer_PreflightRefusal(t *testing.T) {
	tests := []struct {
		name      string
		preflight func(flow.PreflightInput) (flow.PreflightResult, error)
		want      flow.Code
		calls     int
	}{
		{"rule", func(flow.PreflightInput) (flow.PreflightResult, error) {
			return flow.PreflightResult{Refusal: flow.Errorf(flow.CodePINRequired, "No PIN.")}, nil
		}, flow.CodePINRequired, 1},
		{"standing", func(flow.PreflightInput) (flow.PreflightResult, error) {
			return flow.PreflightResult{Standing: flow.Standing{HasPIN: true}}, nil
		}, flow.CodeRecoveryRequired, 1},
		{"locked out", func(flow.PreflightInput) (flow.PreflightResult, error) {
			return flow.PreflightResult{}, final(flow.CodeCustomerLockedOut, "The customer is locked out.")
		}, flow.CodeCustomerLockedOut, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := newCustomerTest(t)
			ct.fakes.preflight = tt.preflight
			// A quota of one start an hour: the refusal must not use it.
			one := flow.Quota{Every: time.Hour, Burst: 1}
			req := request(flow.KindCreateWallets, "key-1", "hash-1")
			req.Quota = one
			out := ct.start(0, req)
			active := ct.queryActive(time.Minute)
			ct.env.RegisterDelayedCallback(func() { ct.fakes.setPreflight(nil) }, 2*time.Minute)
			// The refused key was never taken: it starts afresh.
			next := ct.start(3*time.Minute, req)
			if err := ct.run(); err != nil {
				t.Fatalf("workflow error: got %v, want nil", err)
			}
			out.refusal(t, tt.want)
			if out.res.Flow != nil || out.res.Created {
				t.Errorf("flow: got %+v created=%v, want none", out.res.Flow, out.res.Created)
			}
			if next.created(t); !next.res.Created {
				t.Errorf("next start: got %+v, want a new flow within the quota", next.res)
			}
			wantEqual(t, "preflight calls", len(ct.fakes.preflights), tt.calls+1)
			wantEqual(t, "CreateChallenge calls", len(ct.fakes.creates), 1)
			if *active != nil {
				t.Errorf("active flow: got %+v, want nil", *active)
			}
		})
	}
}

// A customer Planbok does not know is 404 customer_not_found from the
// workflow, whether Preflight refuses or fails with the code; nothing is
// created or counted, and the run, holding nothing, completes at once
// instead of staying open an hour for an id nobody has.
func TestCustomer_CustomerNotFound(t *testing.T) {
	for name, preflight := range map[string]func(flow.PreflightInput) (flow.PreflightResult, error){
		"refusal": func(in flow.PreflightInput) (flow.PreflightResult, error) {
			return flow.PreflightResult{Refusal: flow.Errorf(flow.CodeCustomerNotFound, "Customer %q was not found at Planbok.", in.CustomerID)}, nil
		},
		"final error": func(flow.PreflightInput) (flow.PreflightResult, error) {
			return flow.PreflightResult{}, final(flow.CodeCustomerNotFound, "No such customer.")
		},
	} {
		t.Run(name, func(t *testing.T) {
			ct := newCustomerTest(t)
			ct.fakes.preflight = preflight
			out := ct.start(0, request(flow.KindUpdatePIN, "key-1", "hash-1"))
			if err := ct.run(); err != nil {
				t.Fatalf("workflow error: got %v, want nil", err)
			}
			out.refusal(t, flow.CodeCustomerNotFound)
			if out.res.Flow != nil || out.res.Created {
				t.Errorf("flow: got %+v created=%v, want none", out.res.Flow, out.res.Created)
			}
			wantEqual(t, "CreateChallenge calls", len(ct.fakes.creates), 0)
			wantEqual(t, "completed after", ct.env.Now().Sub(t0), time.Duration(0))
		})
	}
	t.Run("a known customer's run stays", func(t *testing.T) {
		ct := newCustomerTest(t)
		ct.start(0, request(flow.KindUpdatePIN, "", ""))
		ct.env.RegisterDelayedCallback(func() {
			ct.fakes.setPreflight(func(flow.PreflightInput) (flow.PreflightResult, error) {
				return flow.PreflightResult{Refusal: flow.Errorf(flow.CodeCustomerNotFound, "Gone.")}, nil
			})
		}, 20*time.Minute)
		ct.start(21*time.Minute, request(flow.KindUpdatePIN, "", ""))
		if err := ct.run(); err != nil {
			t.Fatalf("workflow error: got %v, want nil", err)
		}
		// It has had a flow: the refusal at 21m restarts its idle hour.
		wantEqual(t, "completed after", ct.env.Now().Sub(t0), 21*time.Minute+DefaultIdleTimeout)
	})
}

// A Planbok that keeps failing is retried for the whole Planbok budget,
// then the start answers planbok_unavailable: before the API's request
// times out, so the API never blames Temporal. A start that waited behind
// it for the customer finds the budget spent and answers at once, without
// asking Planbok again.
func TestCustomer_PreflightUnavailableForTheWholeBudget(t *testing.T) {
	ct := newCustomerTest(t)
	var lastCall time.Time
	ct.fakes.preflight = func(flow.PreflightInput) (flow.PreflightResult, error) {
		lastCall = ct.fakes.now()
		return flow.PreflightResult{}, retryable("Planbok answered 503.")
	}
	// The budget as the API sends it for a request with the whole
	// flow.StartTimeout left.
	req := request(flow.KindUpdatePIN, "", "")
	req.PlanbokBudget = flow.PlanbokBudget(flow.StartTimeout)
	out := ct.start(0, req)
	behind := ct.start(0, request(flow.KindRecovery, "", ""))
	var at20, atBudget bool
	ct.env.RegisterDelayedCallback(func() { at20 = out.done }, 20*time.Second)
	ct.env.RegisterDelayedCallback(func() { atBudget = out.done && behind.done }, flow.StartPlanbokBudget+time.Second)
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	out.refusal(t, flow.CodePlanbokUnavailable)
	behind.refusal(t, flow.CodePlanbokUnavailable)
	if at20 || !atBudget {
		t.Errorf("answered by 20s: %v, by the budget's end: %v; want false, true", at20, atBudget)
	}
	if n := len(ct.fakes.preflights); n < 8 {
		t.Errorf("preflight attempts: got %d, want the budget filled with retries (8 or more)", n)
	}
	if end := at(flow.StartPlanbokBudget); lastCall.After(end) {
		t.Errorf("last Planbok call at %s, after the budget's end %s", lastCall, end)
	}
	wantEqual(t, "CreateChallenge calls", len(ct.fakes.creates), 0)
}

// A flow that fails before its challenge exists releases its idempotency
// key: the same key again starts afresh instead of getting the failure
// back, and the slot is free at once.
func TestCustomer_FailedBeforeAwaitingUserReleasesKey(t *testing.T) {
	ct := newCustomerTest(t)
	ct.fakes.createErr = func(call int) error {
		if call == 1 {
			return final(flow.CodeCustomerLockedOut, "The customer is locked out.")
		}
		return nil
	}
	first := ct.start(0, request(flow.KindUpdatePIN, "key-1", "hash-1"))
	retry := ct.start(time.Second, request(flow.KindUpdatePIN, "key-1", "hash-1"))
	replay := ct.start(2*time.Second, request(flow.KindUpdatePIN, "key-1", "hash-1"))
	other := ct.start(3*time.Second, request(flow.KindResetPIN, "key-2", "hash-2"))
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}

	f := first.created(t)
	wantStatus(t, f, flow.StatusFailed, flow.CodeCustomerLockedOut)
	if !first.res.Created || first.res.Refusal == nil || first.res.Refusal.Code != flow.CodeCustomerLockedOut {
		t.Errorf("result: got created=%v refusal=%v, want created with refusal customer_locked_out", first.res.Created, first.res.Refusal)
	}
	if f.CompletedAt == nil {
		t.Error("completedAt of the failed flow: got nil, want its end")
	}
	r := retry.created(t)
	if r.ID == f.ID || !retry.res.Created {
		t.Errorf("retry with the key: got %s created=%v, want a new flow", r.ID, retry.res.Created)
	}
	wantStatus(t, r, flow.StatusAwaitingUser, "")
	// The new flow holds the key now.
	if g := replay.created(t); g.ID != r.ID || replay.res.Created {
		t.Errorf("replay: got %s created=%v, want %s created=false", g.ID, replay.res.Created, r.ID)
	}
	other.refusal(t, flow.CodeFlowInProgress)
}

// The quota counts flows created, in workflow time: replays, the active
// flow again and refusals are free; an empty bucket refuses with the wait
// until it has a start again, before Planbok is asked anything.
func TestCustomer_QuotaCountsCreatedFlows(t *testing.T) {
	ct := newCustomerTest(t)
	q := flow.Quota{Every: time.Hour, Burst: 2}
	req := func(kind flow.Kind, key string) flow.StartRequest {
		r := request(kind, key, "hash-"+key)
		r.Quota = q
		return r
	}
	first := ct.start(0, req(flow.KindUpdatePIN, "k1"))
	again := ct.start(time.Second, req(flow.KindUpdatePIN, ""))
	busy := ct.start(2*time.Second, req(flow.KindExportPrivateKeys, ""))
	// The first flow expires at 15m.
	second := ct.start(16*time.Minute, req(flow.KindUpdatePIN, "k2"))
	// The second expires at 31m; at 32m the bucket lacks 2 - 32/60 starts.
	limited := ct.start(32*time.Minute, req(flow.KindUpdatePIN, ""))
	replay := ct.start(33*time.Minute, req(flow.KindUpdatePIN, "k1"))
	later := ct.start(60*time.Minute, req(flow.KindUpdatePIN, ""))
	var preflightsAt32 int
	ct.env.RegisterDelayedCallback(func() { preflightsAt32 = len(ct.fakes.preflights) }, 32*time.Minute+time.Second)
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}

	f := first.created(t)
	if g := again.created(t); g.ID != f.ID || again.res.Created {
		t.Errorf("same kind while active: got %s created=%v, want %s", g.ID, again.res.Created, f.ID)
	}
	busy.refusal(t, flow.CodeFlowInProgress)
	if !flow.ValidFlowID(second.created(t).ID) || !second.res.Created {
		t.Errorf("second flow: got %+v, want created", second.res)
	}
	limited.refusal(t, flow.CodeRateLimited)
	// Debt 1h at 0, 44m + 1h at 16m, 88m at 32m: a start is possible once
	// the debt is down to 1h (burst 2), 28 min away.
	wantEqual(t, "retryAfter", limited.res.RetryAfter, 28*time.Minute)
	wantEqual(t, "preflights by 32m (the limited start asked Planbok nothing)", preflightsAt32, 2)
	if g := replay.created(t); g.ID != f.ID || replay.res.Created {
		t.Errorf("replay over the quota: got %s created=%v, want %s", g.ID, replay.res.Created, f.ID)
	}
	if !later.res.Created {
		t.Errorf("at 60m: got %+v, want a new flow", later.res)
	}
}

// The bucket outlives the run: continue-as-new carries it, and the run
// does not complete idle before the bucket has refilled, so a new run
// (which starts full) forgets nothing.
func TestCustomer_QuotaOutlivesTheRun(t *testing.T) {
	q := flow.Quota{Every: time.Hour, Burst: 1}
	t.Run("carried bucket refuses", func(t *testing.T) {
		ct := newCustomerTest(t)
		ct.in.Quota = flow.QuotaBucket{Debt: time.Hour, At: t0, Limit: q}
		r := request(flow.KindUpdatePIN, "", "")
		r.Quota = q
		out := ct.start(0, r)
		if err := ct.run(); err != nil {
			t.Fatalf("workflow error: got %v, want nil", err)
		}
		out.refusal(t, flow.CodeRateLimited)
		wantEqual(t, "retryAfter", out.res.RetryAfter, time.Hour)
	})
	t.Run("idle completion waits for the refill", func(t *testing.T) {
		ct := newCustomerTest(t)
		ct.in.IdleTimeout = 10 * time.Minute
		r := request(flow.KindUpdatePIN, "", "")
		r.Quota = q
		ct.start(0, r)
		if err := ct.run(); err != nil {
			t.Fatalf("workflow error: got %v, want nil", err)
		}
		// The flow expires at 15m; the bucket is full at 60m, not 25m.
		wantEqual(t, "completed after", ct.env.Now().Sub(t0), time.Hour)
	})
}

func TestCustomer_IdempotencyReplayAndReuse(t *testing.T) {
	ct := newCustomerTest(t)
	first := ct.start(0, request(flow.KindUpdatePIN, "key-1", "hash-1"))
	ct.env.RegisterDelayedCallback(func() { ct.fakes.setStatus("verified") }, 20*time.Second)
	ct.signalFlow(20*time.Second, first.flowID, "wh-1")
	replay := ct.start(time.Minute, request(flow.KindUpdatePIN, "key-1", "hash-1"))
	reused := ct.start(time.Minute, request(flow.KindUpdatePIN, "key-1", "hash-other"))
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}

	f := first.created(t)
	r := replay.created(t)
	if r.ID != f.ID || replay.res.Created {
		t.Errorf("replay: got %s created=%v, want %s created=false", r.ID, replay.res.Created, f.ID)
	}
	wantStatus(t, r, flow.StatusCompleted, "")
	reused.refusal(t, flow.CodeIdempotencyKeyReused)
	wantEqual(t, "CreateChallenge calls", len(ct.fakes.creates), 1)
}

func TestCustomer_CarriedKeysReplay(t *testing.T) {
	ct := newCustomerTest(t)
	old := flow.Flow{ID: "flow_old", CustomerID: testCustomer, Kind: flow.KindInitialize, Status: flow.StatusCompleted}
	ct.in.RecentKeys = []flow.IdempotencyRecord{{Key: "key-old", RequestHash: "hash-old", Flow: old}}
	replay := ct.start(0, request(flow.KindInitialize, "key-old", "hash-old"))
	reused := ct.start(time.Second, request(flow.KindInitialize, "key-old", "hash-new"))
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	wantEqual(t, "replayed flow", replay.created(t), old)
	reused.refusal(t, flow.CodeIdempotencyKeyReused)
}

func TestCustomer_ValidatorRejects(t *testing.T) {
	bad := []flow.StartRequest{
		{Kind: "bogus", CustomerID: testCustomer, RedirectURL: "https://app.example/back"},
		{Kind: flow.KindUpdatePIN, CustomerID: "someone-else", RedirectURL: "https://app.example/back"},
		{Kind: flow.KindUpdatePIN, CustomerID: testCustomer},
	}
	ct := newCustomerTest(t)
	var outs []*startOutcome
	for _, req := range bad {
		outs = append(outs, ct.start(0, req))
	}
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	for i, o := range outs {
		var appErr *temporal.ApplicationError
		if !errors.As(o.rejected, &appErr) || appErr.Type() != string(flow.CodeInvalidRequest) {
			t.Errorf("request %d: got rejected=%v result=%+v, want rejected invalid_request", i, o.rejected, o.res)
		}
	}
	wantEqual(t, "preflights", len(ct.fakes.preflights), 0)
}

func TestCustomer_CustomerEventLockout(t *testing.T) {
	ct := newCustomerTest(t)
	locked := flow.Security{HasPIN: true, HasRecovery: true, LockedOut: true}
	ct.fakes.syncResult = func(call int) flow.SyncCustomerResult {
		return flow.SyncCustomerResult{Security: locked, LockedOutNow: call == 1}
	}
	for i, d := range []time.Duration{time.Second, 2 * time.Second} {
		ct.env.RegisterDelayedCallback(func() {
			ct.env.SignalWorkflow(flow.SignalCustomerEvent, flow.CustomerEvent{
				CustomerID: testCustomer, Event: "customer.locked_out", WebhookID: fmt.Sprintf("wh-%d", i), Received: at(d),
			})
		}, d)
	}
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	wantEqual(t, "syncs", ct.fakes.syncs, []flow.SyncCustomerInput{
		{CustomerID: testCustomer, Event: "customer.locked_out", At: at(time.Second), WebhookID: "wh-0"},
		{CustomerID: testCustomer, Event: "customer.locked_out", At: at(2 * time.Second), WebhookID: "wh-1"},
	})
	wantEqual(t, "events", ct.events.types(), []flow.EventType{flow.EventLockedOut})
	ev, id, _ := ct.events.byType(flow.EventLockedOut)
	wantEqual(t, "event data", ev.Event.Data, flow.AppEventData{CustomerID: testCustomer, Security: locked})
	wantEqual(t, "notify id", id, flow.NotifyWorkflowID(flow.CustomerWorkflowID(testCustomer)+".wh-0.customer.locked_out"))
	// Idle for an hour after the last event.
	wantEqual(t, "completed after", ct.env.Now().Sub(t0), 2*time.Second+DefaultIdleTimeout)
}

func TestCustomer_IdleCompletion(t *testing.T) {
	ct := newCustomerTest(t)
	ct.in.IdleTimeout = 10 * time.Minute
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	wantEqual(t, "completed after", ct.env.Now().Sub(t0), 10*time.Minute)
}

func TestCustomer_StaysOpenWhileFlowActive(t *testing.T) {
	ct := newCustomerTest(t)
	ct.in.IdleTimeout = time.Minute
	ct.start(0, request(flow.KindUpdatePIN, "", ""))
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	// The flow expires at 15m; the customer workflow is idle from then.
	wantEqual(t, "completed after", ct.env.Now().Sub(t0), 16*time.Minute)
}

func TestCustomer_StaleSignalDoesNotMoveBack(t *testing.T) {
	ct := newCustomerTest(t)
	first := ct.start(0, request(flow.KindUpdatePIN, "key-1", "hash-1"))
	ct.env.RegisterDelayedCallback(func() { ct.fakes.setStatus("failed") }, 10*time.Second)
	ct.signalFlow(10*time.Second, first.flowID, "wh-1")
	ct.env.RegisterDelayedCallback(func() {
		stale := *first.res.Flow // awaiting_user
		ct.env.SignalWorkflow(flow.SignalFlowChanged, stale)
	}, 20*time.Second)
	active := ct.queryActive(30 * time.Second)
	replay := ct.start(40*time.Second, request(flow.KindUpdatePIN, "key-1", "hash-1"))
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	if *active != nil {
		t.Errorf("active flow: got %+v, want nil", *active)
	}
	wantStatus(t, replay.created(t), flow.StatusFailed, flow.CodeChallengeFailed)
}

// A start sent right after a flow ended (a client starting again once its
// cancel answered) must see the slot free and create a new flow. When the
// end and the start reach the customer workflow in one workflow task, the
// SDK runs the update handler first and applyPendingFlowChanges is what
// frees the slot; the test environment delivers the signal first, so this
// test guards the outcome, not that ordering.
func TestCustomer_StartRightAfterFlowEndSeesSlotFree(t *testing.T) {
	ct := newCustomerTest(t)
	first := ct.start(0, request(flow.KindUpdatePIN, "key-1", "hash-1"))
	second := &startOutcome{}
	ct.env.RegisterDelayedCallback(func() {
		ended := *first.res.Flow
		ended.Status = flow.StatusCancelled
		ct.env.SignalWorkflow(flow.SignalFlowChanged, ended)
		ct.env.UpdateWorkflow(flow.UpdateStartFlow, "start-after-end", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { second.done = true; second.rejected = err },
			OnComplete: func(v any, err error) {
				second.done = true
				second.err = err
				if err == nil {
					decode(t, v, &second.res)
				}
			},
		}, request(flow.KindUpdatePIN, "key-2", "hash-2"))
	}, 10*time.Second)
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	f := first.created(t)
	g := second.created(t)
	if g.ID == f.ID || !second.res.Created {
		t.Errorf("start after the end: got flow %s created=%v, want a new flow (first was %s)", g.ID, second.res.Created, f.ID)
	}
}

func TestCustomer_ContinueAsNew(t *testing.T) {
	ct := newCustomerTest(t)
	ct.fakes.preflight = func(flow.PreflightInput) (flow.PreflightResult, error) {
		return flow.PreflightResult{Refusal: flow.Errorf(flow.CodePINRequired, "No PIN.")}, nil
	}
	ct.start(0, request(flow.KindRecovery, "key-0", "hash-0"))
	ct.env.RegisterDelayedCallback(func() { ct.fakes.setPreflight(nil) }, time.Second)
	first := ct.start(2*time.Second, request(flow.KindRecovery, "key-1", "hash-1"))
	ct.cancelFlow(3*time.Second, first.flowID)
	ct.env.RegisterDelayedCallback(func() {
		ct.fakes.setPreflight(func(flow.PreflightInput) (flow.PreflightResult, error) {
			return flow.PreflightResult{Refusal: flow.Errorf(flow.CodePINRequired, "No PIN.")}, nil
		})
	}, 4*time.Second)
	for i := 2; i < maxStartsPerRun; i++ {
		ct.start(time.Minute, request(flow.KindRecovery, "", ""))
	}
	err := ct.run()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("workflow error: got %v, want continue-as-new", err)
	}
	wantEqual(t, "next type", can.WorkflowType.Name, flow.WorkflowCustomer)
	var next flow.CustomerInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatalf("decode next input: %v", err)
	}
	if next.CustomerID != testCustomer || len(next.RecentKeys) != 1 || next.RecentKeys[0].Key != "key-1" {
		t.Fatalf("next input: got %+v, want customer %s with key-1 only", next, testCustomer)
	}
	wantStatus(t, next.RecentKeys[0].Flow, flow.StatusCancelled, flow.CodeCancelled)
	wantEqual(t, "continued at", ct.env.Now().Sub(t0), time.Minute)
	// One flow created at 2s: the bucket carries it.
	wantEqual(t, "carried quota", next.Quota, flow.QuotaBucket{Debt: testQuota.Every, At: at(2 * time.Second), Limit: testQuota})
}

// cancelFlow cancels a child flow by update at offset d.
func (ct *customerTest) cancelFlow(d time.Duration, flowID func() string) {
	ct.env.RegisterDelayedCallback(func() {
		err := ct.env.UpdateWorkflowByID(flowID(), flow.UpdateCancel, "cancel-1", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { ct.t.Errorf("cancel rejected: %v", err) },
			OnComplete: func(_ any, err error) {},
		})
		if err != nil {
			ct.t.Errorf("cancel: %v", err)
		}
	}, d)
}

func TestCustomer_FlowEndedWithoutStatusFreesSlot(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			ct := newCustomerTest(t)
			// A flow workflow that fails (a bug) without reporting a status.
			ct.env.RegisterWorkflowWithOptions(func(workflow.Context, flow.FlowInput) (flow.Flow, error) {
				return flow.Flow{}, errors.New("boom")
			}, workflow.RegisterOptions{Name: flow.WorkflowRecovery, DisableAlreadyRegisteredCheck: true})
			if legacy {
				ct.legacy()
			}
			first := ct.start(0, request(flow.KindRecovery, "key-1", "hash-1"))
			second := ct.start(time.Second, request(flow.KindUpdatePIN, "key-2", "hash-2"))
			if err := ct.run(); err != nil {
				t.Fatalf("workflow error: got %v, want nil", err)
			}
			f := first.created(t)
			if legacy {
				// The start waited for the flow's first signal, which never came.
				wantStatus(t, f, flow.StatusFailed, flow.CodeInternal)
				if first.res.Refusal == nil || first.res.Refusal.Code != flow.CodeInternal {
					t.Errorf("refusal: got %v, want internal", first.res.Refusal)
				}
			} else {
				// The challenge existed before the flow workflow ran.
				wantStatus(t, f, flow.StatusAwaitingUser, "")
			}
			// Either way the slot was freed when the workflow ended.
			wantStatus(t, second.created(t), flow.StatusAwaitingUser, "")
		})
	}
}

// legacy makes the customer workflow run the shape recorded before
// versionLeanCustomer, as a run started by an older release does.
func (ct *customerTest) legacy() *customerTest {
	ct.env.OnGetVersion(versionLeanCustomer, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	return ct
}
