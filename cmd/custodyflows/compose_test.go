package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// deploy/docker-compose.yml cannot be run here (no Docker engine), so it is
// kept true by parsing: every CUSTODYFLOWS_* variable a service of ours sets
// is a flag of that service's command, and the configuration it gives
// passes the command's own validation.
func TestCompose_ServicesMatchTheirCommands(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build       string            `yaml:"build"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	validate := map[string]func([]string, env) error{
		"api":     func(a []string, e env) error { _, err := parseAPIConfig(a, e); return err },
		"worker":  func(a []string, e env) error { _, err := parseWorkerConfig(a, e); return err },
		"sandbox": func(a []string, e env) error { _, err := parseSandboxConfig(a, e); return err },
		"migrate": nil, // migrate's only flag is --db; running it would touch /data
	}
	seen := map[string]bool{}
	for name, svc := range compose.Services {
		if svc.Build == "" {
			continue // not our image
		}
		if len(svc.Command) != 1 {
			t.Fatalf("service %s: command %v, want one subcommand", name, svc.Command)
		}
		cmd := svc.Command[0]
		check, ok := validate[cmd]
		if !ok {
			t.Fatalf("service %s runs unknown command %q", name, cmd)
		}
		seen[cmd] = true
		flags := envNamesOf(t, cmd)
		lookup := map[string]string{}
		for k, v := range svc.Environment {
			if strings.HasPrefix(k, envPrefix) && !flags[k] {
				t.Errorf("service %s sets %s, which `custodyflows %s` does not read", name, k, cmd)
			}
			lookup[k] = substitute(v)
		}
		if check != nil {
			if err := check(nil, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(lookup)}); err != nil {
				t.Errorf("service %s: its configuration is refused: %v", name, err)
			}
		}
	}
	for cmd := range validate {
		if !seen[cmd] {
			t.Errorf("no service runs `custodyflows %s`", cmd)
		}
	}
}

// envNamesOf lists the environment variables a command reads, from its own
// usage text.
func envNamesOf(t *testing.T, cmd string) map[string]bool {
	var usage bytes.Buffer
	_ = run(context.Background(), []string{cmd, "--help"}, &bytes.Buffer{}, &usage, lookupFrom(nil))
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\[(CUSTODYFLOWS_[A-Z_]+)\]`).FindAllStringSubmatch(usage.String(), -1) {
		names[m[1]] = true
	}
	if len(names) == 0 {
		t.Fatalf("`custodyflows %s --help` lists no environment variables:\n%s", cmd, usage.String())
	}
	return names
}

// substitute fills compose's ${VAR:?…} and ${VAR:-default} as a filled-in
// .env would: required values get a valid example, optional ones their
// default.
func substitute(v string) string {
	example := map[string]string{
		"PAYLOAD_KEYS":           "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"ALLOWED_REDIRECT_HOSTS": "app.example.com",
	}
	return regexp.MustCompile(`\$\{([A-Z_]+)(:[?-])?([^}]*)\}`).ReplaceAllStringFunc(v, func(m string) string {
		p := regexp.MustCompile(`\$\{([A-Z_]+)(:[?-])?([^}]*)\}`).FindStringSubmatch(m)
		switch {
		case p[2] == ":-":
			return p[3]
		case example[p[1]] != "":
			return example[p[1]]
		}
		return "example-" + strings.ToLower(p[1])
	})
}
