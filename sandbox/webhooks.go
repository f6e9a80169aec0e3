package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/custodyflows/custodyflows/planbok"
)

// Webhook retry policy (Planbok's is undocumented): exponential backoff
// from 1 s doubling to 1 min between attempts; an event still undelivered
// an hour after it happened is given up.
const (
	webhookFirstBackoff = time.Second
	webhookMaxBackoff   = time.Minute
	webhookGiveUpAfter  = time.Hour
	webhookBatch        = 50
)

// enqueue adds an event to the outbox in tx, so it is sent if and only if
// the state change commits. Faults decide here whether it is dropped
// (never sent), duplicated (sent twice) or delayed.
func (s *Sandbox) enqueue(tx *sqlx.Tx, name string, data planbok.WebhookData) error {
	if s.opts.WebhookURL == "" {
		return nil
	}
	id, err := s.newUUID()
	if err != nil {
		return err
	}
	now := s.now()
	body, err := json.Marshal(planbok.WebhookEvent{Event: name, Timestamp: now, IdempotencyKey: id, Data: data})
	if err != nil {
		return fmt.Errorf("encode webhook: %w", err)
	}
	f := s.currentFaults()
	row := &outboxRow{ID: id, Event: name, Body: body, State: webhookPending,
		NextAttemptAt: toNanos(now.Add(time.Duration(f.WebhookDelayMs) * time.Millisecond)), CreatedAt: toNanos(now)}
	if f.WebhookDropRate > 0 && s.opts.FaultRand() < f.WebhookDropRate {
		row.State = webhookDropped
	}
	if f.WebhookDuplicateRate > 0 && s.opts.FaultRand() < f.WebhookDuplicateRate {
		row.Duplicate = true
	}
	return insertOutbox(tx, row)
}

func (s *Sandbox) enqueueAll(tx *sqlx.Tx, events []event) error {
	for _, e := range events {
		if err := s.enqueue(tx, e.name, e.data); err != nil {
			return err
		}
	}
	return nil
}

// notifySender wakes the sender after a commit that queued events.
func (s *Sandbox) notifySender() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// runSender delivers due webhooks until Close: woken by new events, and
// polling for due retries.
func (s *Sandbox) runSender() {
	defer s.senderWG.Done()
	t := time.NewTicker(s.opts.WebhookRetryPoll)
	defer t.Stop()
	for {
		s.deliverDue(s.stopCtx)
		select {
		case <-s.stopCtx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

// deliverDue sends every webhook due now, oldest first.
func (s *Sandbox) deliverDue(ctx context.Context) {
	for ctx.Err() == nil {
		rows, err := s.db.dueWebhooks(s.now(), webhookBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("sandbox: read webhook outbox", "err", err)
			}
			return
		}
		for i := range rows {
			if ctx.Err() != nil {
				return
			}
			s.attempt(ctx, &rows[i])
		}
		if len(rows) < webhookBatch {
			return
		}
	}
}

// attempt sends one webhook and records the outcome: delivered on any
// 2xx, else rescheduled with backoff until it is given up.
func (s *Sandbox) attempt(ctx context.Context, o *outboxRow) {
	err := s.send(ctx, o)
	if err == nil && o.Duplicate {
		_ = s.send(ctx, o) // the fault: the receiver sees it twice
	}
	if ctx.Err() != nil {
		return // shutting down: the row stays due and is sent after a restart
	}
	o.Attempts++
	if err == nil {
		o.State, o.LastError = webhookDelivered, ""
	} else {
		o.LastError = err.Error()
		now := s.now()
		backoff := webhookFirstBackoff << min(o.Attempts-1, 16)
		backoff = min(backoff, webhookMaxBackoff)
		o.NextAttemptAt = toNanos(now.Add(backoff))
		if now.Sub(fromNanos(o.CreatedAt)) >= webhookGiveUpAfter {
			o.State = webhookGaveUp
			s.log.Warn("sandbox: webhook given up", "id", o.ID, "event", o.Event, "attempts", o.Attempts, "err", err)
		} else {
			s.log.Info("sandbox: webhook attempt failed", "id", o.ID, "event", o.Event, "attempt", o.Attempts, "retryIn", backoff, "err", err)
		}
	}
	if err := s.db.saveWebhookAttempt(o); err != nil {
		s.log.Error("sandbox: record webhook attempt", "err", err)
	}
}

// send POSTs the stored body, signed now.
func (s *Sandbox) send(ctx context.Context, o *outboxRow) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.WebhookURL, bytes.NewReader(o.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "planbok-sandbox-webhooks")
	planbok.SetWebhookHeaders(req.Header, s.opts.WebhookSecret, o.ID, o.Event, s.opts.Clock(), o.Body)
	resp, err := s.opts.WebhookClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	return nil
}
