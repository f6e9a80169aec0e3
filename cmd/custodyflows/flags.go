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

// newFlagSet returns a flag set for subcommand cmd whose usage lists each
// flag's environment variable too.
func newFlagSet(cmd string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("custodyflows "+cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: custodyflows %s [flags]\n\nEvery flag can also be set by the environment variable shown; flags win.\n\n", cmd)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(out, "  --%s  [%s]%s\n      %s\n", f.Name, envName(f.Name), def, f.Usage)
		})
	}
	return fs
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment variable (lookup is os.LookupEnv in main).
func parseFlags(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
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
		v, ok := lookup(envName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			// The value may be a secret: name the variable, not its value.
			errs = append(errs, fmt.Errorf("invalid value in %s: %v", envName(f.Name), errors.Unwrap(err)))
		}
	})
	return errors.Join(errs...)
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
