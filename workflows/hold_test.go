package workflows

import (
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

// A completed reset under an export hold tells the app twice: the reset,
// then the hold with its exportAvailableAt.
func TestFlow_ResetUnderHoldSendsExportHoldStarted(t *testing.T) {
	availableAt := at(24*time.Hour + 61*time.Second)
	sec := flow.Security{HasPIN: true, HasRecovery: true, CanTransact: true, LastPINResetAt: ptr(at(61 * time.Second)), ExportAvailableAt: &availableAt}
	ft := newFlowTest(t, flow.KindResetPIN)
	ft.fakes.syncResult = func(int) flow.SyncCustomerResult { return flow.SyncCustomerResult{Security: sec} }
	ft.statusAt(61*time.Second, "verified")
	ft.signal(61*time.Second, ft.challengeID(), "wh-1")
	got := ft.run()

	wantStatus(t, got, flow.StatusCompleted, "")
	wantEqual(t, "events", ft.events.types(), []flow.EventType{flow.EventPINReset, flow.EventExportHoldStarted})
	ev, id, _ := ft.events.byType(flow.EventExportHoldStarted)
	wantEqual(t, "event id", ev.ID, ft.in.FlowID+"."+string(flow.EventExportHoldStarted))
	wantEqual(t, "notify workflow id", id, flow.NotifyWorkflowID(ev.ID))
	wantEqual(t, "event data", ev.Event.Data, flow.AppEventData{
		CustomerID: testCustomer, FlowID: ft.in.FlowID, Kind: flow.KindResetPIN, Status: flow.StatusCompleted, Security: sec,
	})
}

// No hold (exportAvailableAt null), a failed reset, or another kind under
// a hold: no export_hold_started.
func TestFlow_NoExportHoldStartedWithoutHold(t *testing.T) {
	held := flow.Security{HasPIN: true, HasRecovery: true, ExportAvailableAt: ptr(at(24 * time.Hour))}
	for _, tc := range []struct {
		name   string
		kind   flow.Kind
		sec    flow.Security
		status string
		want   []flow.EventType
	}{
		{"reset, hold off", flow.KindResetPIN, flow.Security{HasPIN: true, HasRecovery: true}, "verified", []flow.EventType{flow.EventPINReset}},
		{"failed reset", flow.KindResetPIN, held, "failed", []flow.EventType{flow.EventFlowFailed}},
		{"update during a hold", flow.KindUpdatePIN, held, "verified", []flow.EventType{flow.EventPINUpdated}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := newFlowTest(t, tc.kind)
			ft.fakes.syncResult = func(int) flow.SyncCustomerResult { return flow.SyncCustomerResult{Security: tc.sec} }
			ft.statusAt(20*time.Second, tc.status)
			ft.signal(20*time.Second, ft.challengeID(), "wh-1")
			ft.run()
			wantEqual(t, "events", ft.events.types(), tc.want)
		})
	}
}

// The customer workflow answers an export start that Preflight holds with
// the refusal as it came, availableAt included, and starts no flow.
func TestCustomer_ExportOnHoldKeepsAvailableAt(t *testing.T) {
	availableAt := at(23 * time.Hour)
	ct := newCustomerTest(t)
	ct.fakes.preflight = func(in flow.PreflightInput) (flow.PreflightResult, error) {
		st := flow.Standing{HasPIN: true, HasRecovery: true}
		return flow.PreflightResult{Standing: st, Refusal: flow.CheckExportHold(in.Kind, ptr(at(-time.Hour)), 24*time.Hour, t0)}, nil
	}
	out := ct.start(0, request(flow.KindExportPrivateKeys, "", ""))
	if err := ct.run(); err != nil {
		t.Fatalf("workflow error: got %v, want nil", err)
	}
	out.refusal(t, flow.CodeExportOnHold)
	if got := out.res.Refusal.AvailableAt; got == nil || !got.Equal(availableAt) {
		t.Fatalf("availableAt: got %v, want %v", got, availableAt)
	}
	if out.res.Flow != nil || len(ct.fakes.creates) != 0 {
		t.Fatalf("a held export started a flow: %+v, %d challenges", out.res.Flow, len(ct.fakes.creates))
	}
}
