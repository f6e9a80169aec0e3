package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/flow"
)

// TestGetFlow_ActiveFromStore: an awaiting_user row is answered from the
// store, without a Temporal query, until its challenge has expired; a
// row left behind after the expiry asks the workflow.
func TestGetFlow_ActiveFromStore(t *testing.T) {
	e := newEnv(t)
	active := testFlow(customerA, flow.KindUpdatePIN, flow.StatusAwaitingUser)
	e.st.addFlow(active, "", "")
	live := *active
	live.Status = flow.StatusCompleted
	e.tc.queries[active.ID] = &live

	rec := e.api(http.MethodGet, "/v1/flows/"+active.ID, "")
	if got := decode[flow.Flow](t, rec); got.Status != flow.StatusAwaitingUser || e.tc.queryN != 0 {
		t.Fatalf("before expiry: got %s with %d queries, want awaiting_user from the store and 0 queries", got.Status, e.tc.queryN)
	}

	stale := testFlow(customerA, flow.KindResetPIN, flow.StatusAwaitingUser)
	exp := testNow.Add(-staleAfterExpiry - time.Second)
	stale.ExpiresAt = &exp
	e.st.addFlow(stale, "", "")
	liveStale := *stale
	liveStale.Status = flow.StatusExpired
	e.tc.queries[stale.ID] = &liveStale
	rec = e.api(http.MethodGet, "/v1/flows/"+stale.ID, "")
	if got := decode[flow.Flow](t, rec); got.Status != flow.StatusExpired || e.tc.queryN != 1 {
		t.Fatalf("long after expiry: got %s with %d queries, want the workflow's expired and 1 query", got.Status, e.tc.queryN)
	}
}

func TestRowCurrent(t *testing.T) {
	exp := testNow.Add(time.Minute)
	for _, tt := range []struct {
		status  flow.Status
		expires *time.Time
		now     time.Time
		want    bool
	}{
		{flow.StatusCompleted, nil, testNow, true},
		{flow.StatusCancelled, &exp, testNow.Add(time.Hour), true},
		{flow.StatusStarting, nil, testNow, false},
		{flow.StatusAwaitingUser, nil, testNow, false},
		{flow.StatusAwaitingUser, &exp, testNow, true},
		{flow.StatusAwaitingUser, &exp, exp.Add(staleAfterExpiry - time.Second), true},
		{flow.StatusAwaitingUser, &exp, exp.Add(staleAfterExpiry), false},
	} {
		f := &flow.Flow{Status: tt.status, ExpiresAt: tt.expires}
		if got := rowCurrent(f, tt.now); got != tt.want {
			t.Errorf("rowCurrent(%s, expires %v, now %v): got %v, want %v", tt.status, tt.expires, tt.now, got, tt.want)
		}
	}
}
