package flow

import (
	"testing"
	"time"
)

var (
	holdReset = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	holdDay   = 24 * time.Hour
)

func TestExportAvailableAt_OnOffAndBoundary(t *testing.T) {
	end := holdReset.Add(holdDay)
	for _, tc := range []struct {
		name      string
		lastReset *time.Time
		hold      time.Duration
		now       time.Time
		want      *time.Time
	}{
		{"hold off", &holdReset, 0, holdReset.Add(time.Minute), nil},
		{"negative hold is off", &holdReset, -time.Hour, holdReset.Add(time.Minute), nil},
		{"no reset on record", nil, holdDay, holdReset, nil},
		{"zero reset time", &time.Time{}, holdDay, holdReset, nil},
		{"right after the reset", &holdReset, holdDay, holdReset, &end},
		{"one second before availableAt", &holdReset, holdDay, end.Add(-time.Second), &end},
		{"at availableAt", &holdReset, holdDay, end, nil},
		{"one second after availableAt", &holdReset, holdDay, end.Add(time.Second), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ExportAvailableAt(tc.lastReset, tc.hold, tc.now)
			switch {
			case got == nil && tc.want == nil:
			case got == nil || tc.want == nil || !got.Equal(*tc.want):
				t.Fatalf("got %v, want %v", fmtPtr(got), fmtPtr(tc.want))
			case got.Location() != time.UTC:
				t.Fatalf("got %v in %v, want UTC", got, got.Location())
			}
		})
	}
}

func TestExportAvailableAt_InUTC(t *testing.T) {
	local := holdReset.In(time.FixedZone("UTC+2", 2*3600))
	got := ExportAvailableAt(&local, time.Hour, holdReset)
	if got == nil || got.Location() != time.UTC || !got.Equal(holdReset.Add(time.Hour)) {
		t.Fatalf("got %v, want %v in UTC", fmtPtr(got), holdReset.Add(time.Hour))
	}
}

func TestCheckExportHold_OnlyExportIsHeld(t *testing.T) {
	now := holdReset.Add(time.Hour)
	for _, k := range Kinds {
		err := CheckExportHold(k, &holdReset, holdDay, now)
		if k != KindExportPrivateKeys {
			if err != nil {
				t.Errorf("%s: got %v, want no refusal", k, err)
			}
			continue
		}
		if err == nil || err.Code != CodeExportOnHold {
			t.Fatalf("%s: got %v, want %s", k, err, CodeExportOnHold)
		}
		if err.AvailableAt == nil || !err.AvailableAt.Equal(holdReset.Add(holdDay)) {
			t.Errorf("availableAt: got %v, want %v", fmtPtr(err.AvailableAt), holdReset.Add(holdDay))
		}
		if err.Message == "" {
			t.Error("refusal without a message")
		}
	}
	if err := CheckExportHold(KindExportPrivateKeys, &holdReset, 0, now); err != nil {
		t.Errorf("hold off: got %v, want no refusal", err)
	}
}

// A second reset while a hold runs starts the hold again from the second
// reset: the rule reads only the last completed reset.
func TestCheckExportHold_ResetDuringHoldRestartsIt(t *testing.T) {
	second := holdReset.Add(20 * time.Hour)
	now := holdReset.Add(holdDay).Add(time.Second) // the first hold has passed
	if err := CheckExportHold(KindExportPrivateKeys, &holdReset, holdDay, now); err != nil {
		t.Fatalf("after the first hold: got %v, want no refusal", err)
	}
	err := CheckExportHold(KindExportPrivateKeys, &second, holdDay, now)
	if err == nil || err.AvailableAt == nil || !err.AvailableAt.Equal(second.Add(holdDay)) {
		t.Fatalf("after a second reset: got %v, want export_on_hold until %v", err, second.Add(holdDay))
	}
}

func TestSecurity_WithExportHold(t *testing.T) {
	sec := Security{HasPIN: true, LastPINResetAt: &holdReset}
	if got := sec.WithExportHold(holdDay, holdReset.Add(time.Minute)).ExportAvailableAt; got == nil || !got.Equal(holdReset.Add(holdDay)) {
		t.Errorf("during the hold: got %v", fmtPtr(got))
	}
	if got := sec.WithExportHold(0, holdReset).ExportAvailableAt; got != nil {
		t.Errorf("hold off: got %v, want nil", fmtPtr(got))
	}
	if sec.ExportAvailableAt != nil {
		t.Error("WithExportHold changed its receiver")
	}
}

func TestStartsExportHold(t *testing.T) {
	on := Security{ExportAvailableAt: &holdReset}
	for _, tc := range []struct {
		k    Kind
		s    Status
		sec  Security
		want bool
	}{
		{KindResetPIN, StatusCompleted, on, true},
		{KindResetPIN, StatusCompleted, Security{}, false}, // hold off
		{KindResetPIN, StatusFailed, on, false},
		{KindUpdatePIN, StatusCompleted, on, false},
	} {
		if got := StartsExportHold(tc.k, tc.s, tc.sec); got != tc.want {
			t.Errorf("%s %s %v: got %v, want %v", tc.k, tc.s, fmtPtr(tc.sec.ExportAvailableAt), got, tc.want)
		}
	}
}

func TestEventTypes_CompleteAndUnique(t *testing.T) {
	seen := map[EventType]bool{}
	for _, e := range EventTypes {
		if seen[e] {
			t.Errorf("%s listed twice", e)
		}
		seen[e] = true
	}
	for _, k := range Kinds {
		if !seen[k.EventType()] {
			t.Errorf("%s's event %s missing from EventTypes", k, k.EventType())
		}
	}
	for _, s := range Statuses {
		if e := TerminalEventType(s); e != "" && !seen[e] {
			t.Errorf("%s's event %s missing from EventTypes", s, e)
		}
	}
	for _, e := range []EventType{EventLockedOut, EventExportHoldStarted} {
		if !seen[e] {
			t.Errorf("%s missing from EventTypes", e)
		}
	}
}

func fmtPtr(p *time.Time) string {
	if p == nil {
		return "nil"
	}
	return p.String()
}
