package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/custodyflows/custodyflows/store"
)

// runMigrate applies the app database's pending migrations and exits, so a
// deployment can migrate once (a job, an init container) before it starts
// api and worker. Those also migrate at start, safely when several start
// together, so running it is a choice, not a requirement.
func runMigrate(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("migrate", e.stderr)
	db := fs.String("db", "./.data/custodyflows.db", "the app database: a SQLite file path, or a postgres:// URL")
	if err := parseFlags(fs, args, e.lookup); err != nil {
		return err
	}
	if *db == "" {
		return errors.New("--db must not be empty")
	}
	// The URL may carry a password: only its redacted form is ever shown.
	shown := store.RedactDSN(*db)
	// Open applies every pending migration; Migrate again is a no-op that
	// proves the schema is current.
	st, err := store.Open(ctx, *db)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", shown, err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", shown, err)
	}
	fmt.Fprintf(e.stdout, "database %s is up to date\n", shown)
	return nil
}
