package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// envPrefix starts the environment variable of every flag: --http-addr is
// also read from CUSTODYFLOWS_HTTP_ADDR. Flags given on the command line win.
const envPrefix = "CUSTODYFLOWS_"

// envName is the environment variable that sets the flag named name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// fileSuffix ends the variable that names a file holding a secret flag's
// value: CUSTODYFLOWS_API_KEYS_FILE=/run/secrets/api-keys, as Docker and
// Kubernetes mount secrets.
const fileSuffix = "_FILE"

// newFlagSet returns a flag set for subcommand cmd whose usage lists each
// flag's environment variable too. Usage goes to out only when asked for
// (--help): a bad flag is returned as an error, which main logs as one line.
func newFlagSet(cmd string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("custodyflows "+cmd, flag.ContinueOnError)
	fs.SetOutput(&usageSink{w: out})
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: custodyflows %s [flags]\n\nEvery flag can also be set by the environment variable shown; flags win.\nA secret can instead be read from a file named by <variable>_FILE (Docker and Kubernetes secrets).\n\n", cmd)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			vars := "[" + envName(f.Name) + "]"
			if isSecret(f) {
				vars += " [" + envName(f.Name) + fileSuffix + "]"
			}
			fmt.Fprintf(out, "  --%s  %s%s\n      %s\n", f.Name, vars, def, f.Usage)
		})
	}
	return fs
}

// usageSink is a flag set's output: the flag package writes the error and
// the usage on every parse failure, but only --help should print.
type usageSink struct {
	w  io.Writer
	on bool
}

func (u *usageSink) Write(p []byte) (int, error) {
	if !u.on {
		return len(p), nil
	}
	return u.w.Write(p)
}

// isSecret reports whether f holds a secret, which may come from a file and
// is never shown.
func isSecret(f *flag.Flag) bool {
	switch f.Value.(type) {
	case *secretFlag, *secretListFlag:
		return true
	}
	return false
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment variable (lookup is os.LookupEnv in main), or,
// for a secret, from the file its <variable>_FILE names. Setting both the
// variable and its _FILE is refused: one of them would be silently ignored.
func parseFlags(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		if u, ok := fs.Output().(*usageSink); ok && errors.Is(err, flag.ErrHelp) {
			u.on = true
			fs.Usage()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envName(f.Name)
		v, ok := lookup(name)
		if isSecret(f) {
			if path, fromFile := lookup(name + fileSuffix); fromFile {
				if ok {
					errs = append(errs, fmt.Errorf("both %s and %s%s are set: set one", name, name, fileSuffix))
					return
				}
				b, err := os.ReadFile(path)
				if err != nil {
					// The error names the file, never its content.
					errs = append(errs, fmt.Errorf("%s%s: %w", name, fileSuffix, err))
					return
				}
				// Secret files usually end with a newline the value never has.
				v, ok = strings.TrimRight(string(b), "\r\n"), true
				if v == "" {
					errs = append(errs, fmt.Errorf("%s%s: file %s is empty", name, fileSuffix, path))
					return
				}
			}
		}
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			// The value may be a secret: name the variable, not its value.
			errs = append(errs, fmt.Errorf("invalid value in %s: %v", name, errors.Unwrap(err)))
		}
	})
	return errors.Join(errs...)
}

// explicitlySet reports whether flag name was given on the command line or
// by its environment variable, as opposed to left at its default.
func explicitlySet(fs *flag.FlagSet, name string, lookup func(string) (string, bool)) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	if _, ok := lookup(envName(name)); ok {
		set = true
	}
	return set
}

// listFlag is a comma-separated list flag (API keys, secrets, hosts).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set replaces the list: the environment or the command line gives the
// whole list at once.
func (l *listFlag) Set(s string) error {
	*l = nil
	for _, part := range strings.Split(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// secretFlag holds a secret; its String never shows the value so usage
// text and error messages cannot leak it.
type secretFlag struct{ value string }

func (s *secretFlag) String() string {
	if s == nil || s.value == "" {
		return ""
	}
	return "****"
}

func (s *secretFlag) Set(v string) error { s.value = v; return nil }

// secretListFlag is a comma-separated list of secrets.
type secretListFlag struct{ values []string }

func (s *secretListFlag) String() string {
	if s == nil || len(s.values) == 0 {
		return ""
	}
	return "****"
}

func (s *secretListFlag) Set(v string) error {
	var l listFlag
	_ = l.Set(v)
	s.values = l
	return nil
}

// durationAtLeast checks a duration flag's lower bound.
func durationAtLeast(name string, d, min time.Duration) error {
	if d < min {
		return fmt.Errorf("--%s must be at least %s, got %s", name, min, d)
	}
	return nil
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// defaultWorkflowCache is --workflow-cache unless set. Each cached flow or
// customer workflow holds about 60 KB (two coroutine stacks and the replay
// state, with the GC's headroom). The SDK's own default, 10,000, grows to
// about 600 MB once that many wait, more than the 256 MiB the deploy
// manifests give a worker; 1,000 stays near 60 MB. A waiting flow has no
// workflow task to run until its challenge ends, so evicting it costs
// nothing while it waits, then one replay of its ten-odd events.
const defaultWorkflowCache = 1000

// registerWorkflowCache registers --workflow-cache: how many workflow
// executions the process keeps in memory (worker.SetWorkflowCacheSize).
func registerWorkflowCache(fs *flag.FlagSet, size *int) {
	fs.IntVar(size, "workflow-cache", defaultWorkflowCache, "workflow executions the process keeps in memory between their tasks (about 60 KB each); fewer saves memory when many flows wait, at the cost of replaying an evicted flow's short history; 0 = the SDK's default (10000)")
}

func validateWorkflowCache(size int) error {
	if size < 0 {
		return fmt.Errorf("--workflow-cache must be 0 (the default) or a positive count, got %d", size)
	}
	return nil
}
