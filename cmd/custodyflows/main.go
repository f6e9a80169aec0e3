// Command custodyflows runs Planbok's Customer Custody security flows as
// durable Temporal workflows.
//
//	custodyflows dev       everything in one process, for a laptop
//	custodyflows api       the HTTP API and webhook intake
//	custodyflows worker    the Temporal worker
//	custodyflows sandbox   the offline Planbok sandbox
//	custodyflows migrate   apply the app database schema and exit
//
// This is the only package that reads flags and the environment; every
// other package gets plain values.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `custodyflows runs Planbok's Customer Custody security flows as durable Temporal workflows.

Usage: custodyflows <command> [flags]

Commands:
  dev       everything in one process: embedded Temporal + Web UI, worker, API, Planbok sandbox
  api       the HTTP API and Planbok webhook intake (a Temporal client, no worker)
  worker    the Temporal worker (workflows and activities)
  sandbox   the offline Planbok sandbox alone
  migrate   apply the app database schema and exit

Run "custodyflows <command> --help" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			logFatal(os.Stderr, os.Args[1:], err)
		}
		os.Exit(2)
	}
}

// logFatal writes the error that stops the process as one log line: JSON,
// so log pipelines keep it whole (a joined list of bad settings included),
// or plain text on a terminal, where a person reads it.
func logFatal(w io.Writer, args []string, err error) {
	if isTerminal(w) {
		fmt.Fprintln(w, "custodyflows:", err)
		return
	}
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	slog.New(slog.NewJSONHandler(w, nil)).Error("custodyflows stopped", "command", cmd, "error", err.Error())
}

// command is one subcommand: it parses its flags, then runs until ctx ends.
type command func(ctx context.Context, args []string, env env) error

// env is what a command may read from its surroundings.
type env struct {
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
}

var commands = map[string]command{
	"dev":     runDev,
	"api":     runAPI,
	"worker":  runWorker,
	"sandbox": runSandbox,
	"migrate": runMigrate,
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd(ctx, args[1:], env{stdout: stdout, stderr: stderr, lookup: lookup})
}
