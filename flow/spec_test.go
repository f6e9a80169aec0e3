package flow

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every row of Specs is complete and its names are its own: a new kind is
// one row here (plus its Gateway page), and this test says what the row
// lacks.
func TestSpecs_Complete(t *testing.T) {
	seen := map[string]map[string]Kind{"route": {}, "task": {}, "workflow type": {}, "event": {}, "summary": {}}
	stamps := map[Stamp]bool{}
	blockchains := 0
	for _, s := range Specs {
		for name, v := range map[string]string{
			"route": s.Route, "task": s.PlanbokTask, "workflow type": s.WorkflowType,
			"event": string(s.Event), "summary": s.Summary,
		} {
			if v == "" {
				t.Errorf("%s: empty %s", s.Kind, name)
			}
			if other, ok := seen[name][v]; ok {
				t.Errorf("%s: %s %q also belongs to %s", s.Kind, name, v, other)
			}
			seen[name][v] = s.Kind
		}
		if !strings.HasPrefix(string(s.Event), "customer.") {
			t.Errorf("%s: event %q is not a customer.* event (API.md §4)", s.Kind, s.Event)
		}
		for _, st := range s.Stamps {
			stamps[st] = true
		}
		if s.Blockchains {
			blockchains++
		}
		if s.Needs == (Needs{}) {
			t.Errorf("%s: needs nothing of the customer; every Planbok challenge does", s.Kind)
		}
		if s.Needs.NoPIN && (s.Needs.PIN || s.Needs.Recovery || s.Needs.NotLockedOut) {
			t.Errorf("%s: needs no PIN and something only a PIN holder has: no customer can start it", s.Kind)
		}
		if s.HeldAfterReset && s.StartsHold {
			t.Errorf("%s: both starts an export hold and is held by it: it would refuse its own next start", s.Kind)
		}
	}
	wantStamps := []Stamp{StampPINSetAt, StampRecoverySetAt, StampPINUpdatedAt, StampLastPINResetAt, StampLastExportAt}
	for _, st := range wantStamps {
		if !stamps[st] {
			t.Errorf("no kind sets %s", st)
		}
	}
	if blockchains != 1 {
		t.Errorf("kinds that take blockchains: got %d, want 1 (wallets)", blockchains)
	}
	if len(Kinds) != len(Specs) {
		t.Fatalf("Kinds: got %d, want one per row (%d)", len(Kinds), len(Specs))
	}
	for i, k := range Kinds {
		spec, ok := SpecOf(k)
		if !ok || spec.Kind != k || Specs[i].Kind != k {
			t.Errorf("Kinds[%d] = %s: not Specs' order or not found", i, k)
		}
		if k.Route() != spec.Route || k.WorkflowType() != spec.WorkflowType || k.EventType() != spec.Event ||
			k.PlanbokTask() != spec.PlanbokTask || k.Summary() != spec.Summary {
			t.Errorf("%s: accessors disagree with its row", k)
		}
	}
	if _, ok := SpecOf("transfer"); ok || Kind("transfer").Route() != "" {
		t.Error("an unknown kind has a row")
	}
}

// What the rows fix for the outside world: Planbok's challenge routes
// (API.md §5) and the workflow types in recorded histories.
func TestSpecs_FixedNames(t *testing.T) {
	for k, want := range map[Kind][2]string{
		KindInitialize:        {"initialize", WorkflowInitialize},
		KindRecovery:          {"recovery", WorkflowRecovery},
		KindUpdatePIN:         {"update-pin", WorkflowUpdatePIN},
		KindResetPIN:          {"reset-pin", WorkflowResetPIN},
		KindExportPrivateKeys: {"export-private-keys", WorkflowExportPrivateKeys},
		KindCreateWallets:     {"wallet/create", WorkflowCreateWallets},
	} {
		if got := [2]string{k.PlanbokTask(), k.WorkflowType()}; got != want {
			t.Errorf("%s: got task, type %v, want %v", k, got, want)
		}
	}
	init, _ := SpecOf(KindInitialize)
	if !slices.Equal(init.Stamps, []Stamp{StampPINSetAt, StampRecoverySetAt}) {
		t.Errorf("initialize stamps: got %v (PIN setup may include recovery)", init.Stamps)
	}
}

func TestClassifyPlanbok(t *testing.T) {
	for _, tc := range []struct {
		name      string
		call      PlanbokCall
		f         PlanbokFailure
		want      Code
		retryable bool
	}{
		{"503 read", CallGetCustomer, PlanbokFailure{Status: 503, Transient: true}, CodePlanbokUnavailable, true},
		{"429 challenge", CallCreateChallenge, PlanbokFailure{Status: 429, Transient: true}, CodePlanbokUnavailable, true},
		{"network", CallGetCustomer, PlanbokFailure{Transient: true}, CodePlanbokUnavailable, true},
		{"cancelled", CallCreateChallenge, PlanbokFailure{Cancelled: true}, CodePlanbokUnavailable, true},
		{"401", CallGetCustomer, PlanbokFailure{Status: 401}, CodePlanbokUnavailable, false},
		{"403 read", CallGetCustomer, PlanbokFailure{Status: 403, Message: "Forbidden"}, CodePlanbokUnavailable, false},
		{"403 read says locked", CallGetCustomer, PlanbokFailure{Status: 403, Message: "Customer is locked"}, CodeCustomerLockedOut, false},
		{"403 challenge", CallCreateChallenge, PlanbokFailure{Status: 403, Message: "Forbidden"}, CodeCustomerLockedOut, false},
		{"403 create customer", CallCreateCustomer, PlanbokFailure{Status: 403}, CodePlanbokUnavailable, false},
		{"404 read", CallGetCustomer, PlanbokFailure{Status: 404}, CodeCustomerNotFound, false},
		{"400 read", CallGetCustomer, PlanbokFailure{Status: 400, Message: "Cast to ObjectId failed"}, CodeCustomerNotFound, false},
		{"unsent read", CallGetCustomer, PlanbokFailure{}, CodeCustomerNotFound, false},
		{"404 challenge", CallCreateChallenge, PlanbokFailure{Status: 404}, CodeCustomerNotFound, false},
		{"400 challenge", CallCreateChallenge, PlanbokFailure{Status: 400, Message: "Recovery is not set up"}, CodePlanbokRejected, false},
		{"400 says locked", CallCreateChallenge, PlanbokFailure{Status: 400, Message: "Customer is LOCKED"}, CodeCustomerLockedOut, false},
		{"404 challenge read", CallGetChallenge, PlanbokFailure{Status: 404}, CodeChallengeExpired, false},
		{"400 create customer", CallCreateCustomer, PlanbokFailure{Status: 400, Message: "refId too long"}, CodeInvalidRequest, false},
		{"404 create customer", CallCreateCustomer, PlanbokFailure{Status: 404}, CodePlanbokUnavailable, false},
		{"200 unusable", CallGetCustomer, PlanbokFailure{Status: 200}, CodePlanbokUnavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := ClassifyPlanbok(tc.call, tc.f)
			if v.Code != tc.want || v.Retryable != tc.retryable || v.Message == "" {
				t.Errorf("got %+v, want code %s retryable %v and a message", v, tc.want, tc.retryable)
			}
		})
	}
	long := ClassifyPlanbok(CallCreateChallenge, PlanbokFailure{Status: http.StatusBadRequest, Message: strings.Repeat("é", 400)})
	if len(long.Message) > 400 || !strings.HasSuffix(long.Message, "…") || !strings.Contains(long.Message, "é") {
		t.Errorf("long message: got %d bytes %q…, want it clipped on a rune boundary", len(long.Message), long.Message[:40])
	}
}

func TestBudget_DerivesFromTheStartTimeout(t *testing.T) {
	if StartPlanbokBudget+StartReserve != StartTimeout || StartReserve <= 0 {
		t.Fatalf("budget %s + reserve %s != start timeout %s", StartPlanbokBudget, StartReserve, StartTimeout)
	}
	if StartAdmitTimeout >= StartTimeout/2 || PlanbokAttemptTimeout >= StartPlanbokBudget/2 {
		t.Errorf("admit %s and attempt %s must be small parts of the budget", StartAdmitTimeout, PlanbokAttemptTimeout)
	}
	for remaining, want := range map[time.Duration]time.Duration{
		0:                StartPlanbokBudget, // unknown: the default
		StartTimeout:     StartPlanbokBudget,
		time.Minute:      StartPlanbokBudget, // never more than the budget
		10 * time.Second: 10*time.Second - StartReserve,
		2 * time.Second:  MinPlanbokBudget,
	} {
		if got := PlanbokBudget(remaining); got != want {
			t.Errorf("PlanbokBudget(%s): got %s, want %s", remaining, got, want)
		}
	}
}

func TestQuotaBucket(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	q := Quota{Every: time.Hour, Burst: 2}
	var b QuotaBucket
	if w := b.Wait(q, t0); w != 0 {
		t.Fatalf("new bucket: wait %s, want 0", w)
	}
	b = b.Take(q, t0)
	b = b.Take(q, t0.Add(30*time.Minute)) // debt 1h - 30m + 1h = 90m
	if w := b.Wait(q, t0.Add(30*time.Minute)); w != 30*time.Minute {
		t.Errorf("after two starts: wait %s, want 30m", w)
	}
	if w := b.Wait(q, t0.Add(time.Hour)); w != 0 {
		t.Errorf("30m later: wait %s, want 0 (exactly at the edge)", w)
	}
	if f := b.Full(t0.Add(time.Hour)); f != time.Hour {
		t.Errorf("full in: got %s, want 1h", f)
	}
	if f := b.Full(t0.Add(5 * time.Hour)); f != 0 {
		t.Errorf("long after: full in %s, want 0", f)
	}
	// Off is no quota at all.
	if w := b.Wait(Quota{}, t0); w != 0 || !(Quota{}).Off() || (b.Take(Quota{}, t0) != QuotaBucket{}) {
		t.Error("a zero quota limits something")
	}
}
