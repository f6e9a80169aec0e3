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
