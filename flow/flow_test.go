package flow

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The precondition rules of API.md §2, one row per kind and standing that
// matters, in the documented order: pin_required before recovery_required,
// both before customer_locked_out.
func TestCheck_Rules(t *testing.T) {
	none := Standing{}
	pinOnly := Standing{HasPIN: true}
	ready := Standing{HasPIN: true, HasRecovery: true}
	locked := Standing{HasPIN: true, HasRecovery: true, LockedOut: true}
	recoveryNoPIN := Standing{HasRecovery: true}
	for _, tc := range []struct {
		kind Kind
		s    Standing
		want Code
	}{
		{KindInitialize, none, ""},
		{KindInitialize, pinOnly, CodePINAlreadySet},
		{KindInitialize, locked, CodePINAlreadySet},

		{KindRecovery, none, CodePINRequired},
		{KindRecovery, pinOnly, ""},
		{KindRecovery, ready, ""},

		{KindUpdatePIN, none, CodePINRequired},
		{KindUpdatePIN, pinOnly, ""},
		{KindUpdatePIN, locked, CodeCustomerLockedOut},

		{KindResetPIN, none, CodeRecoveryRequired},
		{KindResetPIN, pinOnly, CodeRecoveryRequired},
		{KindResetPIN, ready, ""},
		{KindResetPIN, locked, ""}, // the way out of a lockout

		{KindExportPrivateKeys, none, CodePINRequired},
		{KindExportPrivateKeys, recoveryNoPIN, CodePINRequired},
		{KindExportPrivateKeys, pinOnly, CodeRecoveryRequired},
		{KindExportPrivateKeys, ready, ""},
		{KindExportPrivateKeys, locked, CodeCustomerLockedOut},
		{KindExportPrivateKeys, Standing{HasPIN: true, LockedOut: true}, CodeRecoveryRequired},

		{KindCreateWallets, none, CodePINRequired},
		{KindCreateWallets, pinOnly, CodeRecoveryRequired},
		{KindCreateWallets, ready, ""},
		{KindCreateWallets, locked, CodeCustomerLockedOut},

		{Kind("transfer"), ready, CodeInvalidRequest},
	} {
		t.Run(fmt.Sprintf("%s/%+v", tc.kind, tc.s), func(t *testing.T) {
			err := Check(tc.kind, tc.s)
			var got Code
			if err != nil {
				got = err.Code
				if err.Message == "" {
					t.Error("refusal without a message")
				}
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStanding_CanTransact(t *testing.T) {
	for _, tc := range []struct {
		s    Standing
		want bool
	}{
		{Standing{}, false},
		{Standing{HasPIN: true}, false},
		{Standing{HasRecovery: true}, false},
		{Standing{HasPIN: true, HasRecovery: true}, true},
		{Standing{HasPIN: true, HasRecovery: true, LockedOut: true}, false},
	} {
		if got := tc.s.CanTransact(); got != tc.want {
			t.Errorf("%+v: got %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestStatus_MovesOnlyForward(t *testing.T) {
	for _, from := range Statuses {
		for _, to := range Statuses {
			want := !from.Terminal() && rankOf(to) > rankOf(from)
			if got := from.CanMoveTo(to); got != want {
				t.Errorf("%s -> %s: got %v, want %v", from, to, got, want)
			}
		}
	}
	if StatusStarting.CanMoveTo(Status("bogus")) {
		t.Error("an unknown status was accepted")
	}
	for _, s := range Statuses {
		if s.Active() == s.Terminal() {
			t.Errorf("%s: active %v and terminal %v, want exactly one", s, s.Active(), s.Terminal())
		}
	}
}

func rankOf(s Status) int {
	switch s {
	case StatusStarting:
		return 0
	case StatusAwaitingUser:
		return 1
	}
	return 2
}

func TestKind_RoutesTypesAndEvents(t *testing.T) {
	routes, types, events := map[string]bool{}, map[string]bool{}, map[EventType]bool{}
	for _, k := range Kinds {
		if !k.Valid() {
			t.Errorf("%s: not valid", k)
		}
		got, err := ParseKind(string(k))
		if err != nil || got != k {
			t.Errorf("ParseKind(%q): got %q, %v", k, got, err)
		}
		back, ok := KindForRoute(k.Route())
		if !ok || back != k {
			t.Errorf("KindForRoute(%q): got %q, want %q", k.Route(), back, k)
		}
		for name, set := range map[string]map[string]bool{"route": routes, "workflow type": types} {
			v := k.Route()
			if name == "workflow type" {
				v = k.WorkflowType()
			}
			if v == "" || set[v] {
				t.Errorf("%s: %s %q empty or shared", k, name, v)
			}
			set[v] = true
		}
		if e := k.EventType(); e == "" || events[e] {
			t.Errorf("%s: event %q empty or shared", k, e)
		} else {
			events[e] = true
		}
	}
	if _, err := ParseKind("unknown"); err == nil {
		t.Error("ParseKind accepted an unknown kind")
	}
	if _, ok := KindForRoute("transfer"); ok {
		t.Error("KindForRoute accepted an unknown route")
	}
	// API.md §2 routes, fixed points.
	for route, kind := range map[string]Kind{"initialize": KindInitialize, "recovery": KindRecovery, "update-pin": KindUpdatePIN,
		"reset-pin": KindResetPIN, "export-private-keys": KindExportPrivateKeys, "wallets": KindCreateWallets} {
		if got, _ := KindForRoute(route); got != kind {
			t.Errorf("route %s: got %q, want %q", route, got, kind)
		}
	}
}

func TestTerminalEventType(t *testing.T) {
	for s, want := range map[Status]EventType{
		StatusFailed: EventFlowFailed, StatusExpired: EventFlowExpired, StatusCancelled: EventFlowCancelled,
		StatusCompleted: "", StatusAwaitingUser: "", StatusStarting: "",
	} {
		if got := TerminalEventType(s); got != want {
			t.Errorf("%s: got %q, want %q", s, got, want)
		}
	}
}

func TestFlowID_ShapeAndValidation(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := NewFlowID(nil)
		if !ValidFlowID(id) {
			t.Fatalf("NewFlowID made %q, which ValidFlowID refuses", id)
		}
		if seen[id] {
			t.Fatalf("NewFlowID repeated %q", id)
		}
		seen[id] = true
	}
	fixed := NewFlowID(bytes.NewReader(make([]byte, 15)))
	if fixed != "flow_aaaaaaaaaaaaaaaaaaaaaaaa" {
		t.Errorf("NewFlowID(zeros): got %q", fixed)
	}
	for _, bad := range []string{"", "flow_", "flow_AAAAAAAAAAAAAAAAAAAAAAAA", "flow_aaaaaaaaaaaaaaaaaaaaaaa", "flw_aaaaaaaaaaaaaaaaaaaaaaaa",
		"flow_aaaaaaaaaaaaaaaaaaaaaaaa/../x", "flow_aaaaaaaaaaaaaaaaaaaaaa18"} {
		if ValidFlowID(bad) {
			t.Errorf("ValidFlowID(%q): got true, want false", bad)
		}
	}
	if got := CustomerWorkflowID("abc"); got != "customer-abc" {
		t.Errorf("CustomerWorkflowID: got %q", got)
	}
}

func TestErrorCode_AndMessage(t *testing.T) {
	coded := fmt.Errorf("start: %w", Errorf(CodePINRequired, "No PIN yet."))
	if got := ErrorCode(coded); got != CodePINRequired {
		t.Errorf("ErrorCode(wrapped): got %q", got)
	}
	if got := ErrorMessage(coded); got != "No PIN yet." {
		t.Errorf("ErrorMessage(wrapped): got %q", got)
	}
	plain := errors.New("dial tcp 10.0.0.1:5432: secret detail")
	if got := ErrorCode(plain); got != CodeInternal {
		t.Errorf("ErrorCode(plain): got %q, want internal", got)
	}
	if got := ErrorMessage(plain); strings.Contains(got, "secret") {
		t.Errorf("ErrorMessage(plain) leaks: %q", got)
	}
	if ErrorCode(nil) != "" || ErrorMessage(nil) != "" {
		t.Error("nil error has a code or message")
	}
	// Codes are snake_case and unique: they are part of the API.
	seen := map[Code]bool{}
	for _, c := range Codes {
		if seen[c] || strings.ToLower(string(c)) != string(c) || strings.ContainsAny(string(c), " -") {
			t.Errorf("code %q: duplicate or not snake_case", c)
		}
		seen[c] = true
	}
}
