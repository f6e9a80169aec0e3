// Command devtemporal runs the embedded Temporal server on PostgreSQL as a
// process of its own, for tests that stop and restart Temporal under
// running api and worker processes (cmd/custodyflows/cluster_test.go). It
// is a test helper, not part of the product: operators run the
// temporalio/server image.
//
//	devtemporal --postgres-url postgres://user:pw@127.0.0.1:5432 --port 17233
//
// It prints "ready <frontend address> <elapsed>" on stdout once the
// frontend serves the namespace, and stops cleanly on SIGTERM or SIGINT.
// Started again with the same flags, it resumes on the same databases.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/custodyflows/custodyflows/devstack"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devtemporal:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		pg        devstack.Postgres
		port      int
		namespace string
		logLevel  string
		shards    int
	)
	flag.StringVar(&pg.URL, "postgres-url", os.Getenv("DEVTEMPORAL_POSTGRES_URL"), "postgres://user:password@host:port of a role that may create databases (or DEVTEMPORAL_POSTGRES_URL)")
	flag.StringVar(&pg.Database, "database", "temporal", "history database")
	flag.StringVar(&pg.VisibilityDatabase, "visibility-database", "temporal_visibility", "visibility database")
	flag.IntVar(&shards, "history-shards", 4, "history shards (fixed on the first start)")
	flag.IntVar(&port, "port", 0, "frontend gRPC port on 127.0.0.1 (0 = any; give one to restart on the same address)")
	flag.StringVar(&namespace, "namespace", "default", "namespace to create")
	flag.StringVar(&logLevel, "log-level", "warn", "server log level: debug, info, warn or error")
	flag.Parse()
	pg.HistoryShards = int32(shards)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	began := time.Now()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := devstack.Start(startCtx, devstack.Config{
		Postgres:     &pg,
		FrontendPort: port,
		Namespace:    namespace,
		Logger:       logger,
		LogLevel:     logLevel,
	})
	cancel()
	if err != nil {
		return err
	}
	fmt.Printf("ready %s %s\n", s.FrontendAddress(), time.Since(began).Round(time.Millisecond))
	<-ctx.Done()
	return s.Stop()
}
