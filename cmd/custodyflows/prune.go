package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/custodyflows/custodyflows/store"
)

// pruneConfig says how long the webhook inbox and the audit log keep rows.
type pruneConfig struct {
	Webhooks time.Duration
	Audit    time.Duration
	Every    time.Duration
}

// Defaults: the inbox only has to outlive Planbok's redeliveries (a
// redelivery older than its row is taken as new), and 30 days is far past
// any retry window; the audit log is the app's record of who did what, so
// it is kept until an operator chooses an age.
const (
	defaultRetainWebhooks = 30 * 24 * time.Hour
	defaultPruneEvery     = time.Hour
	// minRetainWebhooks keeps the inbox longer than the intake's 300 s
	// signature window, the shortest age at which a replay is refused anyway.
	minRetainWebhooks = time.Hour
)

func (p *pruneConfig) register(fs *flag.FlagSet) {
	fs.DurationVar(&p.Webhooks, "retain-webhooks", defaultRetainWebhooks,
		"age past which webhook-inbox rows are deleted (0 = keep them); must outlive Planbok's redeliveries")
	fs.DurationVar(&p.Audit, "retain-audit", 0, "age past which audit-log rows are deleted (0 = keep them)")
	fs.DurationVar(&p.Every, "prune-every", defaultPruneEvery, "how often the worker deletes rows past their retention")
}

func (p pruneConfig) validate() error {
	var errs []error
	if p.Webhooks != 0 {
		if err := durationAtLeast("retain-webhooks", p.Webhooks, minRetainWebhooks); err != nil {
			errs = append(errs, fmt.Errorf("%w (or 0 to keep them)", err))
		}
	}
	if p.Audit < 0 {
		errs = append(errs, fmt.Errorf("--retain-audit must not be negative (0 keeps the rows), got %s", p.Audit))
	}
	if err := durationAtLeast("prune-every", p.Every, time.Minute); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// pruneStore is the part of the store the pruner uses.
type pruneStore interface {
	Prune(ctx context.Context, r store.Retention) (store.Pruned, error)
}

// runPruner deletes rows past their retention at once, then every
// cfg.Every, until ctx ends. Several workers may run it at the same time:
// each delete is idempotent. A failed round is logged and tried again at
// the next tick.
func runPruner(ctx context.Context, cfg pruneConfig, st pruneStore, logger *slog.Logger) {
	r := store.Retention{WebhookInbox: cfg.Webhooks, AuditLog: cfg.Audit}
	if r.WebhookInbox == 0 && r.AuditLog == 0 {
		return
	}
	every := cfg.Every
	if every <= 0 {
		every = defaultPruneEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, err := st.Prune(ctx, r)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("pruning old rows failed; trying again later", "err", err.Error())
		case n.WebhookInbox > 0 || n.AuditLog > 0:
			logger.Info("pruned old rows", "webhookInbox", n.WebhookInbox, "auditLog", n.AuditLog)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
