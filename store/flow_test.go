package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// newFlow returns a starting flow created at t0+minute.
func newFlow(id, customerID string, kind flow.Kind, minute int) *flow.Flow {
	at := t0.Add(time.Duration(minute) * time.Minute)
	return &flow.Flow{
		ID: id, CustomerID: customerID, Kind: kind, Status: flow.StatusStarting,
		RedirectURL: "https://app.example/return", CreatedAt: at, UpdatedAt: at,
	}
}

func TestFlow_RoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		loc := time.FixedZone("PST", -8*3600)
		expires := time.Date(2026, 3, 1, 2, 15, 0, 987654321, loc)
		completed := time.Date(2026, 3, 1, 10, 5, 0, 1, time.UTC)
		in := &flow.Flow{
			ID:          "flow_aaaaaaaaaaaaaaaaaaaaaaaa",
			CustomerID:  "c1",
			Kind:        flow.KindCreateWallets,
			Status:      flow.StatusFailed,
			ChallengeID: "ch-1",
			GatewayURL:  "https://gateway.example/c/ch-1",
			RedirectURL: "https://app.example/return",
			Blockchains: []string{"ETH-SEPOLIA", "SOL-DEVNET"},
			ExpiresAt:   &expires,
			CreatedAt:   time.Date(2026, 3, 1, 2, 0, 0, 5, loc),
			UpdatedAt:   time.Date(2026, 3, 1, 10, 5, 0, 1, time.UTC),
			CompletedAt: &completed,
			Error:       &flow.Error{Code: flow.CodeChallengeFailed, Message: "The challenge failed."},
		}
		meta := FlowMeta{IdempotencyKey: "idem-1", RequestHash: "sha256:abc"}
		if err := s.UpsertFlow(ctx, in, meta); err != nil {
			t.Fatalf("UpsertFlow: %v", err)
		}

		want := *in
		want.ExpiresAt = ptr(expires.UTC())
		want.CreatedAt = in.CreatedAt.UTC()
		check := func(name string, got *flow.Flow, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("%s:\ngot  %+v\nwant %+v", name, got, &want)
			}
		}
		got, err := s.FindFlowByID(ctx, in.ID)
		check("FindFlowByID", got, err)
		got, err = s.FindFlowByChallengeID(ctx, "ch-1")
		check("FindFlowByChallengeID", got, err)
		got, gotMeta, err := s.FindFlowByIdempotencyKey(ctx, "c1", "idem-1")
		check("FindFlowByIdempotencyKey", got, err)
		if gotMeta != meta {
			t.Errorf("meta: got %+v, want %+v", gotMeta, meta)
		}
		if _, err := s.FindCustomerByID(ctx, "c1"); err != nil {
			t.Errorf("customer row after UpsertFlow: %v", err)
		}
	})
}

func TestUpsertFlow_StatusOnlyMovesForward(t *testing.T) {
	const (
		st = flow.StatusStarting
		aw = flow.StatusAwaitingUser
		co = flow.StatusCompleted
		fa = flow.StatusFailed
		ex = flow.StatusExpired
		ca = flow.StatusCancelled
	)
	tests := []struct {
		stored, write, want flow.Status
	}{
		{st, st, st},
		{st, aw, aw},
		{st, fa, fa}, // failed before the challenge existed
		{aw, co, co},
		{aw, ex, ex},
		{aw, ca, ca},
		{aw, st, aw}, // stale
		{co, aw, co}, // stale
		{co, st, co}, // stale
		{co, fa, co}, // terminal never changes
		{ca, co, ca}, // a late "completed" after a cancel loses
		{co, co, co},
	}
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for i, tt := range tests {
			t.Run(fmt.Sprintf("%s_to_%s", tt.stored, tt.write), func(t *testing.T) {
				f := newFlow(fmt.Sprintf("f%d", i), "c1", flow.KindUpdatePIN, 0)
				f.Status = tt.stored
				if err := s.UpsertFlow(ctx, f, FlowMeta{}); err != nil {
					t.Fatalf("UpsertFlow(%s): %v", tt.stored, err)
				}
				w := *f
				w.Status = tt.write
				w.UpdatedAt = f.UpdatedAt.Add(time.Minute)
				if err := s.UpsertFlow(ctx, &w, FlowMeta{}); err != nil {
					t.Fatalf("UpsertFlow(%s): got %v, want nil (stale writes are ignored)", tt.write, err)
				}
				got, err := s.FindFlowByID(ctx, f.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != tt.want {
					t.Errorf("status: got %s, want %s", got.Status, tt.want)
				}
			})
		}
	})
}

func TestUpsertFlow_NeverClearsFields(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		f := newFlow("f1", "c1", flow.KindCreateWallets, 0)
		f.Blockchains = []string{"ETH-SEPOLIA"}
		if err := s.UpsertFlow(ctx, f, FlowMeta{IdempotencyKey: "k1", RequestHash: "h1"}); err != nil {
			t.Fatal(err)
		}
		expires := t0.Add(15 * time.Minute)
		aw := &flow.Flow{
			ID: "f1", CustomerID: "c1", Kind: flow.KindCreateWallets, Status: flow.StatusAwaitingUser,
			ChallengeID: "ch-1", GatewayURL: "https://gw/ch-1", ExpiresAt: &expires, UpdatedAt: t0.Add(time.Minute),
		}
		if err := s.UpsertFlow(ctx, aw, FlowMeta{}); err != nil {
			t.Fatal(err)
		}
		// A terminal write carrying nothing but the status, with an older
		// updatedAt (clocks differ between workers).
		done := &flow.Flow{ID: "f1", CustomerID: "c1", Kind: flow.KindCreateWallets, Status: flow.StatusCompleted, UpdatedAt: t0.Add(30 * time.Second)}
		if err := s.UpsertFlow(ctx, done, FlowMeta{IdempotencyKey: "other", RequestHash: "other"}); err != nil {
			t.Fatal(err)
		}
		got, meta, err := s.FindFlowByIdempotencyKey(ctx, "c1", "k1")
		if err != nil {
			t.Fatal(err)
		}
		if got.ChallengeID != "ch-1" || got.GatewayURL != "https://gw/ch-1" || got.RedirectURL != f.RedirectURL {
			t.Errorf("challenge/gateway/redirect: got %q %q %q, want them kept", got.ChallengeID, got.GatewayURL, got.RedirectURL)
		}
		if !reflect.DeepEqual(got.Blockchains, []string{"ETH-SEPOLIA"}) {
			t.Errorf("blockchains: got %v, want [ETH-SEPOLIA]", got.Blockchains)
		}
		if !sameTime(got.ExpiresAt, &expires) {
			t.Errorf("expiresAt: got %s, want %s", fmtPtr(got.ExpiresAt), expires)
		}
		if !got.CreatedAt.Equal(t0) {
			t.Errorf("createdAt: got %v, want %v", got.CreatedAt, t0)
		}
		if want := t0.Add(time.Minute); !got.UpdatedAt.Equal(want) {
			t.Errorf("updatedAt: got %v, want %v (never backwards)", got.UpdatedAt, want)
		}
		if !sameTime(got.CompletedAt, &got.UpdatedAt) {
			t.Errorf("completedAt: got %s, want the updatedAt of the terminal write", fmtPtr(got.CompletedAt))
		}
		if meta != (FlowMeta{IdempotencyKey: "k1", RequestHash: "h1"}) {
			t.Errorf("meta: got %+v, want the first key and hash kept", meta)
		}
		if got.Status != flow.StatusCompleted {
			t.Errorf("status: got %s, want completed", got.Status)
		}
	})
}

func TestUpsertFlow_SetsErrorOnFailure(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		f := newFlow("f1", "c1", flow.KindResetPIN, 0)
		if err := s.UpsertFlow(ctx, f, FlowMeta{}); err != nil {
			t.Fatal(err)
		}
		failed := *f
		failed.Status = flow.StatusFailed
		failed.Error = flow.Errorf(flow.CodePlanbokUnavailable, "Planbok did not answer.")
		if err := s.UpsertFlow(ctx, &failed, FlowMeta{}); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindFlowByID(ctx, "f1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Error == nil || *got.Error != *failed.Error {
			t.Errorf("error: got %+v, want %+v", got.Error, failed.Error)
		}
		if got.CompletedAt == nil {
			t.Error("completedAt: got nil, want set for a terminal flow")
		}
	})
}

func TestUpsertFlow_Refusals(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		held := newFlow("f1", "c1", flow.KindRecovery, 0)
		held.Status, held.ChallengeID = flow.StatusAwaitingUser, "ch-1" // a challenge exists: the key is taken for good
		if err := s.UpsertFlow(ctx, held, FlowMeta{IdempotencyKey: "k1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpsertFlow(ctx, newFlow("f2", "c1", flow.KindRecovery, 1), FlowMeta{IdempotencyKey: "k1"}); flow.ErrorCode(err) != flow.CodeIdempotencyKeyReused {
			t.Errorf("same idempotency key for another flow: got %v, want code %s", err, flow.CodeIdempotencyKeyReused)
		}
		tests := []struct {
			name string
			f    *flow.Flow
		}{
			{"nil", nil},
			{"empty id", newFlow("", "c1", flow.KindRecovery, 0)},
			{"empty customer", newFlow("f3", "", flow.KindRecovery, 0)},
			{"unknown kind", newFlow("f3", "c1", "bogus", 0)},
			{"unknown status", func() *flow.Flow { f := newFlow("f3", "c1", flow.KindRecovery, 0); f.Status = "done"; return f }()},
			{"other kind for a stored id", newFlow("f1", "c1", flow.KindUpdatePIN, 0)},
			{"other customer for a stored id", newFlow("f1", "c2", flow.KindRecovery, 0)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := s.UpsertFlow(ctx, tt.f, FlowMeta{}); err == nil {
					t.Error("got nil error, want one")
				}
			})
		}
		// A challenge id belongs to one flow only.
		a, b := newFlow("fa", "c1", flow.KindRecovery, 0), newFlow("fb", "c1", flow.KindRecovery, 0)
		a.ChallengeID, b.ChallengeID = "ch-x", "ch-x"
		if err := s.UpsertFlow(ctx, a, FlowMeta{}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpsertFlow(ctx, b, FlowMeta{}); err == nil {
			t.Error("second flow with the same challenge id: got nil error, want one")
		}
	})
}

// A flow that failed before its challenge existed gives its key back. The
// customer workflow releases the key as soon as the flow fails, which may
// be before the row says so: the next flow's write is then refused, and
// its later writes take the key once the failure is recorded.
func TestUpsertFlow_IdempotencyKeyReleasedByEarlyFailure(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		meta := FlowMeta{IdempotencyKey: "k", RequestHash: "h"}
		find := func() (string, error) {
			f, _, err := s.FindFlowByIdempotencyKey(ctx, "c1", "k")
			if err != nil {
				return "", err
			}
			return f.ID, nil
		}
		failedOf := func(f *flow.Flow) *flow.Flow {
			g := *f
			g.Status, g.Error = flow.StatusFailed, flow.Errorf(flow.CodePlanbokUnavailable, "Planbok did not answer.")
			g.UpdatedAt = f.UpdatedAt.Add(time.Second)
			return &g
		}

		// f1 fails before its challenge: the key is free again.
		f1 := newFlow("f1", "c1", flow.KindUpdatePIN, 0)
		if err := s.UpsertFlow(ctx, f1, meta); err != nil {
			t.Fatal(err)
		}
		if id, err := find(); err != nil || id != "f1" {
			t.Fatalf("while starting: got %q, %v, want f1", id, err)
		}
		if err := s.UpsertFlow(ctx, failedOf(f1), meta); err != nil {
			t.Fatal(err)
		}
		if _, err := find(); flow.ErrorCode(err) != flow.CodeFlowNotFound {
			t.Fatalf("after failing before the challenge: got %v, want flow_not_found", err)
		}

		// f2 holds the key while starting; f3 claims it before f2's
		// failure is recorded and is refused; once it is, f3's next write
		// takes the key.
		f2 := newFlow("f2", "c1", flow.KindUpdatePIN, 1)
		if err := s.UpsertFlow(ctx, f2, meta); err != nil {
			t.Fatal(err)
		}
		f3 := newFlow("f3", "c1", flow.KindUpdatePIN, 2)
		if err := s.UpsertFlow(ctx, f3, meta); flow.ErrorCode(err) != flow.CodeIdempotencyKeyReused {
			t.Fatalf("claiming the key of a flow still starting: got %v, want %s", err, flow.CodeIdempotencyKeyReused)
		}
		if err := s.UpsertFlow(ctx, failedOf(f2), meta); err != nil {
			t.Fatal(err)
		}
		aw := *f3
		aw.Status, aw.ChallengeID, aw.UpdatedAt = flow.StatusAwaitingUser, "ch-3", f3.UpdatedAt.Add(time.Second)
		if err := s.UpsertFlow(ctx, &aw, meta); err != nil {
			t.Fatal(err)
		}
		if id, err := find(); err != nil || id != "f3" {
			t.Fatalf("after the retry: got %q, %v, want f3", id, err)
		}

		// A row from before this rule: failed without a challenge, still
		// holding its key. The next flow takes it over.
		if _, err := s.w.ExecContext(ctx, s.w.Rebind(`UPDATE flows SET idempotency_key = 'legacy' WHERE id = ?`), "f1"); err != nil {
			t.Fatal(err)
		}
		f4 := newFlow("f4", "c1", flow.KindUpdatePIN, 3)
		if err := s.UpsertFlow(ctx, f4, FlowMeta{IdempotencyKey: "legacy"}); err != nil {
			t.Fatalf("claiming a legacy failed row's key: got %v, want nil", err)
		}
	})
}

func TestFindFlows_NewestFirstAndFilters(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		flows := []*flow.Flow{
			newFlow("f1", "c1", flow.KindInitialize, 0),
			newFlow("f2", "c1", flow.KindRecovery, 1),
			newFlow("f3", "c1", flow.KindUpdatePIN, 2),
			newFlow("f4", "c1", flow.KindResetPIN, 2), // same createdAt as f3: id breaks the tie
			newFlow("g1", "c2", flow.KindInitialize, 3),
		}
		flows[0].Status = flow.StatusCompleted
		flows[1].Status = flow.StatusCancelled
		flows[2].Status = flow.StatusExpired
		for _, f := range flows {
			if err := s.UpsertFlow(ctx, f, FlowMeta{}); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(fs []*flow.Flow) string {
			var out string
			for _, f := range fs {
				out += f.ID + " "
			}
			return out
		}
		tests := []struct {
			name   string
			filter FlowFilter
			want   string
		}{
			{"all", FlowFilter{}, "g1 f4 f3 f2 f1 "},
			{"customer", FlowFilter{CustomerID: "c1"}, "f4 f3 f2 f1 "},
			{"statuses", FlowFilter{CustomerID: "c1", Statuses: []flow.Status{flow.StatusCompleted, flow.StatusStarting}}, "f4 f1 "},
			{"limit", FlowFilter{CustomerID: "c1", Limit: 2}, "f4 f3 "},
			{"none", FlowFilter{CustomerID: "nobody"}, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.FindFlows(ctx, tt.filter)
				if err != nil {
					t.Fatal(err)
				}
				if ids(got) != tt.want {
					t.Errorf("got %q, want %q", ids(got), tt.want)
				}
				if got == nil {
					t.Error("got a nil slice, want an empty one")
				}
			})
		}
	})
}

func TestFindActiveFlow(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		_, err := s.FindActiveFlow(ctx, "c1")
		wantCode(t, err, flow.CodeFlowNotFound)

		done := newFlow("f1", "c1", flow.KindInitialize, 0)
		done.Status = flow.StatusCompleted
		active := newFlow("f2", "c1", flow.KindRecovery, 1)
		active.Status = flow.StatusAwaitingUser
		for _, f := range []*flow.Flow{done, active, newFlow("g1", "c2", flow.KindInitialize, 2)} {
			if err := s.UpsertFlow(ctx, f, FlowMeta{}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.FindActiveFlow(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != "f2" {
			t.Errorf("active flow: got %s, want f2", got.ID)
		}
		active.Status = flow.StatusExpired
		if err := s.UpsertFlow(ctx, active, FlowMeta{}); err != nil {
			t.Fatal(err)
		}
		_, err = s.FindActiveFlow(ctx, "c1")
		wantCode(t, err, flow.CodeFlowNotFound)
	})
}

func TestFindFlow_NotFound(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		f := newFlow("f1", "c1", flow.KindInitialize, 0) // no challenge id, no key
		if err := s.UpsertFlow(ctx, f, FlowMeta{}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			find func() error
		}{
			{"by id", func() error { _, err := s.FindFlowByID(ctx, "nope"); return err }},
			{"by challenge id", func() error { _, err := s.FindFlowByChallengeID(ctx, "nope"); return err }},
			{"by empty challenge id", func() error { _, err := s.FindFlowByChallengeID(ctx, ""); return err }},
			{"by idempotency key", func() error { _, _, err := s.FindFlowByIdempotencyKey(ctx, "c1", "nope"); return err }},
			{"by empty idempotency key", func() error { _, _, err := s.FindFlowByIdempotencyKey(ctx, "c1", ""); return err }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.find(), flow.CodeFlowNotFound) })
		}
	})
}
