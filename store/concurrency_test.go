package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/custodyflows/custodyflows/flow"
)

// TestConcurrentWriters runs writers and readers in several goroutines on
// two Stores sharing one database (two pools, as the api and worker
// processes have) and checks that nobody sees SQLITE_BUSY and no write is
// lost.
func TestConcurrentWriters(t *testing.T) {
	eachBackend(t, testConcurrentWriters)
}

func testConcurrentWriters(t *testing.T, dsn string) {
	stores := []*Store{openPath(t, dsn), openPath(t, dsn)}
	ctx := context.Background()
	const (
		workers = 6
		perWork = 40
	)
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWork*4)
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for i := range perWork {
				id := fmt.Sprintf("f-%d-%d", w, i)
				customer := fmt.Sprintf("c%d", i%5)
				f := newFlow(id, customer, flow.KindUpdatePIN, i)
				if err := s.UpsertFlow(ctx, f, FlowMeta{IdempotencyKey: "k-" + id}); err != nil {
					errs <- fmt.Errorf("UpsertFlow: %w", err)
				}
				f.Status, f.ChallengeID = flow.StatusAwaitingUser, "ch-"+id
				if err := s.UpsertFlow(ctx, f, FlowMeta{}); err != nil {
					errs <- fmt.Errorf("UpsertFlow awaiting: %w", err)
				}
				// Every worker records the same webhooks: exactly one wins each.
				if _, err := s.RecordWebhook(ctx, &InboxEntry{IdempotencyKey: fmt.Sprintf("wh-%d", i)}); err != nil {
					errs <- fmt.Errorf("RecordWebhook: %w", err)
				}
				if _, err := s.UpdateSecurity(ctx, customer, SecurityUpdate{HasPIN: true, SyncedAt: time.Now()}); err != nil {
					errs <- fmt.Errorf("UpdateSecurity: %w", err)
				}
				if err := s.RecordAudit(ctx, &AuditEntry{Action: "test", FlowID: id}); err != nil {
					errs <- fmt.Errorf("RecordAudit: %w", err)
				}
				if _, err := s.FindFlows(ctx, FlowFilter{CustomerID: customer}); err != nil {
					errs <- fmt.Errorf("FindFlows: %w", err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		var se sqlite3.Error
		if errors.As(err, &se) && se.Code == sqlite3.ErrBusy {
			t.Errorf("got SQLITE_BUSY: %v", err)
		} else {
			t.Errorf("concurrent write: %v", err)
		}
	}
	flows, err := stores[0].FindFlows(ctx, FlowFilter{Limit: maxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(flows), workers*perWork; got != want {
		t.Errorf("flows: got %d, want %d", got, want)
	}
	for _, f := range flows {
		if f.Status != flow.StatusAwaitingUser {
			t.Errorf("flow %s: got status %s, want awaiting_user", f.ID, f.Status)
			break
		}
	}
	var inbox int
	if err := get(ctx, stores[1].r, &inbox, `SELECT count(*) FROM webhook_inbox`); err != nil {
		t.Fatal(err)
	}
	if inbox != perWork {
		t.Errorf("webhook_inbox rows: got %d, want %d (one per key)", inbox, perWork)
	}
}
