package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// deploy/docker-compose.yml and deploy/k8s cannot be run here (no Docker
// engine, no cluster), so they are kept true by reading them: every
// CUSTODYFLOWS_* variable is a flag of the command it is given to, and the
// configuration passes that command's own parsing; *_FILE variables are
// really read; health checks hit the health routes on the port the process
// listens on (and cluster_test.go runs the compose checks against the real
// processes); images are pinned to the versions the tests run; and the
// image's user can write every path it must.

const (
	composePath    = "../../deploy/docker-compose.yml"
	envExamplePath = "../../deploy/.env.example"
	k8sDir         = "../../deploy/k8s"
	dockerfilePath = "../../Dockerfile"
	goModPath      = "../../go.mod"
	// ourImage is the image docker-compose.yml builds from the Dockerfile.
	ourImage = "custodyflows:local"
)

// healthRoutes are the unauthenticated routes that say a process is up
// (/healthz) or ready (/readyz): API.md §2 for api, the metrics address
// for worker.
var healthRoutes = map[string]bool{"/healthz": true, "/readyz": true}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		Environment string `yaml:"environment"`
		File        string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Secrets     []composeSecret   `yaml:"secrets"`
	Ports       []string          `yaml:"ports"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Deploy struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

// composeSecret is a service's use of a secret, long syntax: it lands in
// /run/secrets/<target or source>, owned by uid:gid with mode.
type composeSecret struct {
	Source string `yaml:"source"`
	Target string `yaml:"target"`
	UID    string `yaml:"uid"`
	GID    string `yaml:"gid"`
	Mode   *int   `yaml:"mode"`
}

func (s composeSecret) path() string {
	if strings.HasPrefix(s.Target, "/") {
		return s.Target
	}
	if s.Target != "" {
		return "/run/secrets/" + s.Target
	}
	return "/run/secrets/" + s.Source
}

func readCompose(t testing.TB) composeFile {
	t.Helper()
	raw, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	return c
}

// ours lists the services that run our image, by name.
func (c composeFile) ours() []string {
	var names []string
	for name, svc := range c.Services {
		if svc.Image == ourImage || svc.Build != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// envExample reads deploy/.env.example, the values compose interpolates.
func envExample(t testing.TB) map[string]string {
	t.Helper()
	f, err := os.Open(envExamplePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf(".env.example: line %q is not NAME=value", line)
		}
		vals[k] = v
	}
	return vals
}

var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[?-])?([^}]*)\}`)

// substitute fills compose's ${VAR}, ${VAR:?…} and ${VAR:-default} from
// vals, as compose does with --env-file deploy/.env.
func substitute(t testing.TB, v string, vals map[string]string) string {
	t.Helper()
	return interpolation.ReplaceAllStringFunc(v, func(m string) string {
		p := interpolation.FindStringSubmatch(m)
		if val, ok := vals[p[1]]; ok && val != "" {
			return val
		}
		if strings.HasSuffix(p[2], "-") {
			return p[3]
		}
		t.Errorf("compose needs %s, which deploy/.env.example does not set", p[1])
		return ""
	})
}

// commandCheck parses a command's configuration with its real flag set.
// migrate has no parser of its own: it is run on a scratch SQLite file.
func commandCheck(cmd string) (func([]string, env) error, bool) {
	switch cmd {
	case "api":
		return func(a []string, e env) error { _, err := parseAPIConfig(a, e); return err }, true
	case "worker":
		return func(a []string, e env) error { _, err := parseWorkerConfig(a, e); return err }, true
	case "sandbox":
		return func(a []string, e env) error { _, err := parseSandboxConfig(a, e); return err }, true
	case "migrate":
		return func(a []string, e env) error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return run(ctx, append([]string{"migrate"}, a...), io.Discard, e.stderr, e.lookup)
		}, true
	}
	return nil, false
}

// envNamesOf lists the environment variables a command reads, from its own
// usage text (so from its real flag set).
func envNamesOf(t testing.TB, cmd string) map[string]bool {
	t.Helper()
	var usage bytes.Buffer
	_ = run(context.Background(), []string{cmd, "--help"}, &bytes.Buffer{}, &usage, lookupFrom(nil))
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\[(CUSTODYFLOWS_[A-Z0-9_]+)`).FindAllStringSubmatch(usage.String(), -1) {
		names[m[1]] = true
	}
	if len(names) == 0 {
		t.Fatalf("`custodyflows %s --help` lists no environment variables:\n%s", cmd, usage.String())
	}
	return names
}

// checkEnv checks one service's environment against its command: every
// CUSTODYFLOWS_* name is a flag (NAME) or a flag read from a file
// (NAME_FILE); the configuration is accepted with each file in place
// (files maps a path in the container to what it holds); and each *_FILE
// variable is really read: pointing it at a missing file is refused.
func checkEnv(t *testing.T, where, cmd string, environment, files map[string]string) {
	t.Helper()
	check, ok := commandCheck(cmd)
	if !ok {
		t.Errorf("%s runs unknown command %q", where, cmd)
		return
	}
	flags := envNamesOf(t, cmd)
	scratch := t.TempDir()
	lookup := map[string]string{}
	var fileVars []string
	bad := false
	for k, v := range environment {
		if !strings.HasPrefix(k, envPrefix) {
			continue
		}
		base, isFile := strings.CutSuffix(k, "_FILE")
		switch {
		case isFile && flags[base]:
			fileVars = append(fileVars, k)
			content, ok := files[v]
			if !ok {
				t.Errorf("%s: %s=%s, but no secret is mounted there", where, k, v)
				bad = true
				continue
			}
			local := filepath.Join(scratch, strings.ToLower(k))
			if err := os.WriteFile(local, []byte(content+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			v = local
		case flags[k]:
		default:
			t.Errorf("%s sets %s, which `custodyflows %s` does not read", where, k, cmd)
			bad = true
			continue
		}
		lookup[k] = v
	}
	if db := lookup[envName("db")]; cmd == "migrate" && isPostgresURL(db) {
		// Run migrate for real, on a scratch database: the deployment's
		// server is not reachable from here.
		lookup[envName("db")] = filepath.Join(scratch, "app.db")
	}
	if bad {
		return
	}
	var stderr bytes.Buffer
	if err := check(nil, env{stderr: &stderr, lookup: lookupFrom(lookup)}); err != nil {
		t.Errorf("%s: `custodyflows %s` refuses its configuration: %v", where, cmd, err)
	}
	for _, k := range fileVars {
		missing := cloneMap(lookup)
		missing[k] = filepath.Join(scratch, "no-such-file")
		if err := check(nil, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(missing)}); err == nil {
			t.Errorf("%s: %s names a missing file and `custodyflows %s` still starts: the variable is not read", where, k, cmd)
		}
	}
}

func cloneMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func TestCompose_ServicesMatchTheirCommands(t *testing.T) {
	c := readCompose(t)
	vals := envExample(t)
	seen := map[string]bool{}
	for _, name := range c.ours() {
		svc := c.Services[name]
		if len(svc.Command) != 1 {
			t.Fatalf("service %s: command %v, want one subcommand", name, svc.Command)
		}
		cmd := svc.Command[0]
		seen[cmd] = true
		files := map[string]string{}
		for _, s := range svc.Secrets {
			def, ok := c.Secrets[s.Source]
			if !ok {
				t.Errorf("service %s uses secret %s, which is not defined", name, s.Source)
				continue
			}
			if def.Environment == "" || vals[def.Environment] == "" {
				t.Errorf("secret %s: want it from a variable deploy/.env.example sets", s.Source)
				continue
			}
			files[s.path()] = vals[def.Environment]
		}
		environment := map[string]string{}
		for k, v := range svc.Environment {
			environment[k] = substitute(t, v, vals)
		}
		checkEnv(t, "compose service "+name, cmd, environment, files)
	}
	for _, cmd := range []string{"api", "worker", "sandbox", "migrate"} {
		if !seen[cmd] {
			t.Errorf("no service runs `custodyflows %s`", cmd)
		}
	}
}

// Secrets never sit in the compose file or in a container's environment:
// every CUSTODYFLOWS_* variable that carries one is a *_FILE, and the app
// database's URL holds no password: the driver reads it from the pgpass
// file PGPASSFILE names, a mounted secret whose line matches the URL.
func TestCompose_SecretsComeFromFiles(t *testing.T) {
	c := readCompose(t)
	vals := envExample(t)
	for _, name := range c.ours() {
		svc := c.Services[name]
		files := map[string]string{}
		for _, s := range svc.Secrets {
			files[s.path()] = vals[c.Secrets[s.Source].Environment]
		}
		environment := map[string]string{}
		for k, v := range svc.Environment {
			environment[k] = substitute(t, v, vals)
		}
		checkSecretsFromFiles(t, "compose service "+name, environment, files)
	}
}

// secretFlags are the flags whose values are secrets.
var secretFlags = []string{"api-keys", "webhook-secrets", "payload-keys", "planbok-api-key", "webhook-secret", "notify-secret", "codec-auth", "temporal-api-key"}

func checkSecretsFromFiles(t *testing.T, where string, environment, files map[string]string) {
	t.Helper()
	for k := range environment {
		for _, f := range secretFlags {
			if k == envName(f) {
				t.Errorf("%s sets %s in its environment; want %s_FILE and a secret", where, k, k)
			}
		}
	}
	db, ok := environment[envName("db")]
	if !ok || !isPostgresURL(db) {
		return
	}
	u, err := url.Parse(db)
	if err != nil {
		t.Errorf("%s: %s is not a URL", where, envName("db"))
		return
	}
	if _, has := u.User.Password(); has {
		t.Errorf("%s: %s holds a password; want it in a pgpass secret (PGPASSFILE)", where, envName("db"))
	}
	pgpass, ok := files[environment["PGPASSFILE"]]
	if !ok {
		t.Errorf("%s: PGPASSFILE=%q is not a mounted secret: the database password comes from nowhere", where, environment["PGPASSFILE"])
		return
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	want := strings.Join([]string{u.Hostname(), port, strings.TrimPrefix(u.Path, "/"), u.User.Username()}, ":") + ":"
	if !strings.HasPrefix(strings.TrimSpace(pgpass), want) {
		t.Errorf("%s: the pgpass line does not match %s (want it to start %q)", where, envName("db"), want)
	}
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// The deployment's shape: two replicas of api and worker, a migrate job
// before them, the admin-tools schema job before the server, the UI, one
// PostgreSQL for everything.
func TestCompose_Shape(t *testing.T) {
	c := readCompose(t)
	byCommand := map[string]string{}
	for _, name := range c.ours() {
		byCommand[c.Services[name].Command[0]] = name
	}
	for _, cmd := range []string{"api", "worker"} {
		svc := c.Services[byCommand[cmd]]
		if svc.Deploy.Replicas != 2 {
			t.Errorf("%s: deploy.replicas = %d, want 2", cmd, svc.Deploy.Replicas)
		}
		if svc.DependsOn[byCommand["migrate"]].Condition != "service_completed_successfully" {
			t.Errorf("%s does not wait for the migrate job to succeed", cmd)
		}
	}
	var postgres, schema, server, ui []string
	for name, svc := range c.Services {
		repo, _, _ := strings.Cut(svc.Image, ":")
		switch repo {
		case "postgres":
			postgres = append(postgres, name)
		case "temporalio/admin-tools":
			if strings.Contains(strings.Join(svc.Command, " "), "temporal-sql-tool") {
				schema = append(schema, name)
			}
		case "temporalio/server":
			server = append(server, name)
		case "temporalio/ui":
			ui = append(ui, name)
		case "temporalio/auto-setup":
			t.Errorf("service %s uses temporalio/auto-setup, which upstream no longer builds", name)
		}
	}
	if len(postgres) != 1 || len(schema) != 1 || len(server) != 1 || len(ui) != 1 {
		t.Fatalf("postgres %v, schema job %v, server %v, ui %v: want one of each", postgres, schema, server, ui)
	}
	script := strings.Join(c.Services[schema[0]].Command, "\n")
	for _, want := range []string{"create-database", "setup-schema", "update-schema", "temporal_visibility", "schema=visibility", "postgresql/v12/$$schema/versioned"} {
		if !strings.Contains(script, want) {
			t.Errorf("schema job does not run %q", want)
		}
	}
	if c.Services[server[0]].DependsOn[schema[0]].Condition != "service_completed_successfully" {
		t.Errorf("the Temporal server does not wait for its schema job")
	}
	if got := c.Services[server[0]].Environment["DB"]; got != "postgres12" && got != "postgres12_pgx" {
		t.Errorf("Temporal server DB = %q, want postgres12", got)
	}
	// The app's database lives in the same PostgreSQL.
	for _, cmd := range []string{"migrate", "api", "worker"} {
		u, err := url.Parse(c.Services[byCommand[cmd]].Environment[envName("db")])
		if err != nil || u.Hostname() != postgres[0] {
			t.Errorf("%s: the app database is not on the %s service", cmd, postgres[0])
		}
	}
}

// Images are pinned: Temporal at the server release the tests run, the UI
// at the release the dev server embeds, everything else at an exact tag.
func TestCompose_ImagesArePinned(t *testing.T) {
	c := readCompose(t)
	server, ui := moduleVersion(t, "go.temporal.io/server"), moduleVersion(t, "github.com/temporalio/ui-server/v2")
	want := map[string]string{"temporalio/server": server, "temporalio/admin-tools": server, "temporalio/ui": ui}
	for name, svc := range c.Services {
		if svc.Image == ourImage {
			continue
		}
		repo, tag, ok := strings.Cut(svc.Image, ":")
		if !ok || tag == "" || tag == "latest" || !regexp.MustCompile(`^\d+\.\d+(\.\d+)?`).MatchString(tag) {
			t.Errorf("service %s: image %q is not pinned to a release", name, svc.Image)
			continue
		}
		if v, ok := want[repo]; ok && tag != v {
			t.Errorf("service %s: image %s, want tag %s (the version in go.mod)", name, svc.Image, v)
		}
	}
	for _, img := range k8sImages(t) {
		if _, tag, ok := strings.Cut(img, ":"); !ok || tag == "latest" || tag == "" {
			t.Errorf("k8s: image %q is not pinned", img)
		}
	}
}

// moduleVersion reads a required module's version from go.mod, without
// its leading v.
func moduleVersion(t testing.TB, module string) string {
	t.Helper()
	raw, err := os.ReadFile(goModPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + `\s+v(\S+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("go.mod does not require %s", module)
	}
	return string(m[1])
}

// healthcheck is a compose health check reduced to what it asks: the
// command it runs and the port and path it sends its request to.
type healthcheck struct {
	service string
	argv    []string
	port    string
	path    string
}

var (
	healthPort = regexp.MustCompile(`/dev/tcp/127\.0\.0\.1/(\d+)`)
	healthPath = regexp.MustCompile(`GET (/\S*) HTTP/1\.[01]`)
)

// composeHealthchecks returns the health check of each of our services
// that has one, by command, with compose's $$ escapes undone.
func composeHealthchecks(t testing.TB) map[string]healthcheck {
	t.Helper()
	c := readCompose(t)
	checks := map[string]healthcheck{}
	for _, name := range c.ours() {
		svc := c.Services[name]
		if svc.Healthcheck == nil {
			continue
		}
		test := svc.Healthcheck.Test
		if len(test) < 2 || test[0] != "CMD" {
			t.Fatalf("service %s: healthcheck %v, want [CMD, …] (the image has no /bin/sh with /dev/tcp)", name, test)
		}
		argv := make([]string, len(test)-1)
		for i, a := range test[1:] {
			argv[i] = strings.ReplaceAll(a, "$$", "$")
		}
		script := strings.Join(argv, " ")
		port, p := healthPort.FindStringSubmatch(script), healthPath.FindStringSubmatch(script)
		if port == nil || p == nil {
			t.Fatalf("service %s: healthcheck %q: cannot tell its port and path", name, script)
		}
		checks[svc.Command[0]] = healthcheck{service: name, argv: argv, port: port[1], path: p[1]}
	}
	return checks
}

// run runs the health check against 127.0.0.1:port instead of its own port.
func (h healthcheck) run(port string) error {
	argv := make([]string, len(h.argv))
	for i, a := range h.argv {
		argv[i] = strings.ReplaceAll(a, "/dev/tcp/127.0.0.1/"+h.port, "/dev/tcp/127.0.0.1/"+port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// Each health check asks a health route on the port its service listens
// on, and its script passes on 200 and fails otherwise (run here with the
// same bash the image has).
func TestCompose_HealthchecksHitHealthRoutes(t *testing.T) {
	c := readCompose(t)
	checks := composeHealthchecks(t)
	listen := map[string]string{"api": "http-addr", "worker": "metrics-addr"}
	for cmd, flagName := range listen {
		h, ok := checks[cmd]
		if !ok {
			t.Errorf("the %s service has no healthcheck", cmd)
			continue
		}
		if !healthRoutes[h.path] {
			t.Errorf("%s healthcheck asks %s, not a health route", cmd, h.path)
		}
		_, port, err := net.SplitHostPort(c.Services[h.service].Environment[envName(flagName)])
		if err != nil || port != h.port {
			t.Errorf("%s healthcheck asks port %s, but the service listens on %q (--%s)", cmd, h.port, c.Services[h.service].Environment[envName(flagName)], flagName)
		}
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed to run the health checks")
	}
	status := http.StatusOK
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if healthRoutes[r.URL.Path] {
			w.WriteHeader(status)
		} else {
			w.WriteHeader(http.StatusNotFound)
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for cmd, h := range checks {
		status = http.StatusOK
		if err := h.run(port); err != nil {
			t.Errorf("%s healthcheck against a 200: %v", cmd, err)
		}
		status = http.StatusServiceUnavailable
		if err := h.run(port); err == nil {
			t.Errorf("%s healthcheck passes against a 503", cmd)
		}
	}
	closed := freeAddr(t)
	_, closedPort, _ := net.SplitHostPort(closed)
	for cmd, h := range checks {
		if err := h.run(closedPort); err == nil {
			t.Errorf("%s healthcheck passes with nothing listening", cmd)
		}
	}
}

// dockerImage is what the Dockerfile's final stage says about its user.
type dockerImage struct {
	uid, gid int
	owned    []string // directories created owned by uid
	workdir  string
}

func readDockerfile(t testing.TB) dockerImage {
	t.Helper()
	raw, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	// Only the final stage runs; join continuation lines.
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	stages := regexp.MustCompile(`(?m)^FROM `).Split(text, -1)
	final := stages[len(stages)-1]
	img := dockerImage{uid: -1, gid: -1}
	for _, line := range strings.Split(final, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "USER "):
			u, g, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "USER ")), ":")
			img.uid, err = strconv.Atoi(u)
			if err != nil {
				t.Fatalf("Dockerfile: USER %q is not numeric; Kubernetes cannot check runAsNonRoot against a name", u)
			}
			if img.gid, err = strconv.Atoi(g); err != nil {
				img.gid = img.uid
			}
		case strings.HasPrefix(line, "WORKDIR "):
			img.workdir = strings.TrimSpace(strings.TrimPrefix(line, "WORKDIR "))
		}
	}
	for _, m := range regexp.MustCompile(`install -d(?: -m \d+)? -o (\d+) -g (\d+) (\S+)`).FindAllStringSubmatch(final, -1) {
		if m[1] == strconv.Itoa(img.uid) {
			img.owned = append(img.owned, m[3])
		}
	}
	for _, m := range regexp.MustCompile(`chown(?: -R)? (\d+)(?::\d+)? (\S+)`).FindAllStringSubmatch(final, -1) {
		if m[1] == strconv.Itoa(img.uid) {
			img.owned = append(img.owned, m[2])
		}
	}
	if img.uid <= 0 {
		t.Fatalf("Dockerfile: the final stage runs as uid %d, want a non-root USER", img.uid)
	}
	return img
}

// writable reports whether the image's user can write p: it lies in a
// directory the Dockerfile creates owned by that user.
func (img dockerImage) writable(p string) bool {
	p = path.Clean(p)
	for _, dir := range img.owned {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

// pathsWritten lists the paths a command writes under a configuration: its
// data directory, and the app database when it is a SQLite file.
func pathsWritten(cmd string, environment map[string]string, files map[string]string, workdir string) []string {
	var paths []string
	abs := func(p string) string {
		if path.IsAbs(p) {
			return p
		}
		return path.Join(workdir, p)
	}
	switch cmd {
	case "sandbox":
		dir, ok := environment[envName("data-dir")]
		if !ok {
			dir = "./.data" // the flag's default
		}
		paths = append(paths, abs(dir))
	case "api", "worker", "migrate":
		db, ok := environment[envName("db")]
		if f, isFile := environment[envName("db")+"_FILE"]; isFile {
			db, ok = files[f], true
		}
		if !ok {
			db = "./.data/custodyflows.db"
		}
		if !isPostgresURL(db) {
			paths = append(paths, abs(path.Dir(db)))
		}
	}
	return paths
}

// The image's user can write every path a service writes (volumes mounted
// there start out owned by that user), and read every secret handed to it.
func TestCompose_ImageUserCanWriteItsPaths(t *testing.T) {
	img := readDockerfile(t)
	if img.workdir == "" || !img.writable(img.workdir) {
		t.Errorf("Dockerfile: WORKDIR %q is not owned by uid %d; relative default paths land there", img.workdir, img.uid)
	}
	c := readCompose(t)
	vals := envExample(t)
	for _, name := range c.ours() {
		svc := c.Services[name]
		files := map[string]string{}
		for _, s := range svc.Secrets {
			files[s.path()] = vals[c.Secrets[s.Source].Environment]
			readable := s.UID == strconv.Itoa(img.uid) && s.Mode != nil && *s.Mode&0o400 != 0
			if s.Mode != nil && *s.Mode&0o004 != 0 {
				readable = true
			}
			if !readable {
				t.Errorf("service %s: secret %s (uid %q, mode %v) is not readable by uid %d", name, s.Source, s.UID, s.Mode, img.uid)
			}
		}
		environment := map[string]string{}
		for k, v := range svc.Environment {
			environment[k] = substitute(t, v, vals)
		}
		mounts := map[string]string{} // target → source
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Errorf("service %s: volume %q has no target", name, v)
				continue
			}
			src, target := parts[0], parts[1]
			readOnly := len(parts) > 2 && strings.Contains(parts[2], "ro")
			if readOnly {
				continue
			}
			if _, named := c.Volumes[src]; !named {
				t.Errorf("service %s: %s is a host directory, owned by whoever made it; want a named volume", name, src)
			}
			if !img.writable(target) {
				t.Errorf("service %s: volume %s is mounted on %s, which uid %d does not own in the image", name, src, target, img.uid)
			}
			mounts[target] = src
		}
		for _, p := range pathsWritten(svc.Command[0], environment, files, img.workdir) {
			if !img.writable(p) {
				t.Errorf("service %s writes %s, which uid %d cannot write", name, p, img.uid)
				continue
			}
			onVolume := false
			for target := range mounts {
				if p == target || strings.HasPrefix(p, target+"/") {
					onVolume = true
				}
			}
			if !onVolume {
				t.Errorf("service %s writes %s outside a volume: it is lost with the container", name, p)
			}
		}
	}
}

// The UI decodes payloads through the API's codec endpoint, with the
// endpoint's own token: the UI cannot send a fixed header, so a proxy in
// front of the endpoint adds it, read from the same secret the API checks
// it against, never an app API key.
func TestCompose_UIDecodesThroughTheCodecEndpoint(t *testing.T) {
	c := readCompose(t)
	var uiEnv map[string]string
	var api composeService
	for _, svc := range c.Services {
		if strings.HasPrefix(svc.Image, "temporalio/ui:") {
			uiEnv = svc.Environment
		}
		if len(svc.Command) == 1 && svc.Command[0] == "api" {
			api = svc
		}
	}
	endpoint, err := url.Parse(uiEnv["TEMPORAL_CODEC_ENDPOINT"])
	if err != nil || endpoint.Host == "" {
		t.Fatalf("the UI's TEMPORAL_CODEC_ENDPOINT %q: operators would see only encrypted payloads", uiEnv["TEMPORAL_CODEC_ENDPOINT"])
	}
	// The service publishing the endpoint's port on loopback.
	var proxyName string
	var proxy composeService
	for name, svc := range c.Services {
		for _, p := range svc.Ports {
			if strings.HasPrefix(p, endpoint.Host+":") {
				proxyName, proxy = name, svc
			}
		}
	}
	if proxyName == "" {
		t.Fatalf("nothing publishes the codec endpoint %s", endpoint)
	}
	secretOf := func(svc composeService, p string) string {
		for _, s := range svc.Secrets {
			if s.path() == p {
				return s.Source
			}
		}
		return ""
	}
	apiToken := secretOf(api, api.Environment[envName("codec-auth")+"_FILE"])
	if apiToken == "" {
		t.Fatalf("the API has no codec token from a secret (%s_FILE)", envName("codec-auth"))
	}
	if c.Secrets[apiToken].Environment == c.Secrets[secretOf(api, api.Environment[envName("api-keys")+"_FILE"])].Environment {
		t.Errorf("the codec token is the app's API keys")
	}
	if secretOf(proxy, "/run/secrets/"+apiToken) != apiToken || !strings.Contains(strings.Join(proxy.Command, " "), "/run/secrets/"+apiToken) {
		t.Errorf("%s does not read the codec token from the API's secret %s", proxyName, apiToken)
	}
	var template string
	for _, v := range proxy.Volumes {
		if src, _, ok := strings.Cut(v, ":"); ok && strings.HasSuffix(src, ".template") {
			raw, err := os.ReadFile(filepath.Join(filepath.Dir(composePath), src))
			if err != nil {
				t.Fatal(err)
			}
			template = string(raw)
		}
	}
	_, apiPort, _ := net.SplitHostPort(api.Environment[envName("http-addr")])
	for _, want := range []string{"location " + endpoint.Path + "/", "proxy_pass http://api:" + apiPort + ";", `proxy_set_header Authorization "Bearer ${CODEC_TOKEN}";`} {
		if !strings.Contains(template, want) {
			t.Errorf("%s's configuration lacks %q", proxyName, want)
		}
	}
	uiPort := ""
	for _, svc := range c.Services {
		if strings.HasPrefix(svc.Image, "temporalio/ui:") {
			for _, p := range svc.Ports {
				if parts := strings.Split(p, ":"); len(parts) == 3 {
					uiPort = parts[1]
				}
			}
		}
	}
	origin := "http://127.0.0.1:" + uiPort
	if !strings.Contains(api.Environment[envName("codec-cors-origins")], origin) {
		t.Errorf("the API does not let the UI's origin %s call the codec endpoint", origin)
	}
}

// k8sObject is the part of a manifest the tests read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas *int             `yaml:"replicas"`
		Selector k8sSelector      `yaml:"selector"`
		Template k8sPodTemplate   `yaml:"template"`
		Ports    []k8sServicePort `yaml:"ports"`
	} `yaml:"spec"`
}

// k8sSelector is a Deployment's matchLabels or a Service's plain map.
type k8sSelector map[string]string

func (s *k8sSelector) UnmarshalYAML(n *yaml.Node) error {
	var deployment struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	if err := n.Decode(&deployment); err == nil && deployment.MatchLabels != nil {
		*s = deployment.MatchLabels
		return nil
	}
	var plain map[string]string
	if err := n.Decode(&plain); err != nil {
		return err
	}
	*s = plain
	return nil
}

type k8sServicePort struct {
	Port       int    `yaml:"port"`
	TargetPort string `yaml:"targetPort"`
}

type k8sPodTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		SecurityContext struct {
			RunAsNonRoot *bool `yaml:"runAsNonRoot"`
			RunAsUser    *int  `yaml:"runAsUser"`
			FSGroup      *int  `yaml:"fsGroup"`
		} `yaml:"securityContext"`
		Containers []k8sContainer `yaml:"containers"`
		Volumes    []struct {
			Name   string `yaml:"name"`
			Secret *struct {
				SecretName  string `yaml:"secretName"`
				DefaultMode *int   `yaml:"defaultMode"`
			} `yaml:"secret"`
			EmptyDir any `yaml:"emptyDir"`
		} `yaml:"volumes"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Limits map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

func readK8s(t testing.TB) []k8sObject {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in deploy/k8s (%v)", err)
	}
	var objs []k8sObject
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("parse %s: %v", p, err)
			}
			if o.Kind != "" {
				objs = append(objs, o)
			}
		}
	}
	return objs
}

func k8sImages(t testing.TB) []string {
	var images []string
	for _, o := range readK8s(t) {
		for _, c := range o.Spec.Template.Spec.Containers {
			images = append(images, c.Image)
		}
	}
	return images
}

// The Kubernetes manifests, checked like the compose file: Deployments of
// api and worker with two replicas and probes on the health routes, a
// Service for api, a migrate Job, every setting a real flag, every *_FILE
// a key of a mounted Secret, and the image's non-root user.
func TestK8s_ManifestsMatchTheirCommands(t *testing.T) {
	objs := readK8s(t)
	img := readDockerfile(t)
	secrets := map[string]map[string]string{}
	for _, o := range objs {
		if o.Kind == "Secret" {
			secrets[o.Metadata.Name] = o.StringData
		}
	}
	seen := map[string]k8sObject{}
	var services []k8sObject
	for _, o := range objs {
		switch o.Kind {
		case "Service":
			services = append(services, o)
			continue
		case "Deployment", "Job":
		default:
			continue
		}
		pod := o.Spec.Template.Spec
		if len(pod.Containers) != 1 {
			t.Fatalf("%s %s: %d containers, want 1", o.Kind, o.Metadata.Name, len(pod.Containers))
		}
		ctr := pod.Containers[0]
		if len(ctr.Args) != 1 {
			t.Fatalf("%s %s: args %v, want one subcommand", o.Kind, o.Metadata.Name, ctr.Args)
		}
		cmd := ctr.Args[0]
		seen[cmd] = o
		where := fmt.Sprintf("k8s %s %s", o.Kind, o.Metadata.Name)

		sc := pod.SecurityContext
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != img.uid {
			t.Errorf("%s: want runAsNonRoot and runAsUser %d (the Dockerfile's USER)", where, img.uid)
		}
		if !ctr.SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("%s: want readOnlyRootFilesystem: the process writes nothing outside its volumes", where)
		}

		// Files the container can read: keys of mounted Secrets.
		files := map[string]string{}
		writable := map[string]bool{}
		for _, m := range ctr.VolumeMounts {
			for _, v := range pod.Volumes {
				if v.Name != m.Name {
					continue
				}
				switch {
				case v.Secret != nil:
					data, ok := secrets[v.Secret.SecretName]
					if !ok {
						t.Errorf("%s mounts Secret %s, which no manifest defines", where, v.Secret.SecretName)
					}
					mode := 0o644
					if v.Secret.DefaultMode != nil {
						mode = *v.Secret.DefaultMode
					}
					// Secret files are owned by root and, with fsGroup, by
					// that group: the user reads them through the group or
					// the world bits.
					groupReads := sc.FSGroup != nil && *sc.FSGroup == img.gid && mode&0o040 != 0
					if !groupReads && mode&0o004 == 0 {
						t.Errorf("%s: Secret %s (mode %o) is not readable by uid %d", where, v.Secret.SecretName, mode, img.uid)
					}
					for k, val := range data {
						files[path.Join(m.MountPath, k)] = val
					}
				case v.EmptyDir != nil && !m.ReadOnly:
					writable[m.MountPath] = true
				}
			}
		}
		environment := map[string]string{}
		for _, e := range ctr.Env {
			environment[e.Name] = e.Value
		}
		checkEnv(t, where, cmd, environment, files)
		checkSecretsFromFiles(t, where, environment, files)
		for _, p := range pathsWritten(cmd, environment, files, img.workdir) {
			onVolume := false
			for dir := range writable {
				if p == dir || strings.HasPrefix(p, dir+"/") {
					onVolume = true
				}
			}
			if !onVolume {
				t.Errorf("%s writes %s, which the read-only root file system refuses: mount a volume there", where, p)
			}
		}

		if cmd == "api" || cmd == "worker" {
			if o.Kind != "Deployment" || o.Spec.Replicas == nil || *o.Spec.Replicas != 2 {
				t.Errorf("%s: want a Deployment with 2 replicas", where)
			}
			flagName := map[string]string{"api": "http-addr", "worker": "metrics-addr"}[cmd]
			_, listenPort, err := net.SplitHostPort(environment[envName(flagName)])
			if err != nil {
				t.Errorf("%s: %s is not host:port", where, envName(flagName))
			}
			for kind, probe := range map[string]*k8sProbe{"readiness": ctr.ReadinessProbe, "liveness": ctr.LivenessProbe} {
				if probe == nil || probe.HTTPGet == nil {
					t.Errorf("%s: no %s probe over HTTP", where, kind)
					continue
				}
				if !healthRoutes[probe.HTTPGet.Path] {
					t.Errorf("%s: %s probe asks %s, not a health route", where, kind, probe.HTTPGet.Path)
				}
				if port := containerPort(ctr, probe.HTTPGet.Port); strconv.Itoa(port) != listenPort {
					t.Errorf("%s: %s probe asks port %s (%d), the process listens on %s", where, kind, probe.HTTPGet.Port, port, listenPort)
				}
			}
			if ctr.ReadinessProbe != nil && ctr.ReadinessProbe.HTTPGet != nil && ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("%s: readiness probe asks %s, want /readyz", where, ctr.ReadinessProbe.HTTPGet.Path)
			}
		}
	}
	for _, cmd := range []string{"api", "worker", "migrate"} {
		if _, ok := seen[cmd]; !ok {
			t.Errorf("k8s: nothing runs `custodyflows %s`", cmd)
		}
	}
	if o, ok := seen["migrate"]; ok && o.Kind != "Job" {
		t.Errorf("k8s: migrate runs as a %s, want a Job", o.Kind)
	}
	api, ok := seen["api"]
	if !ok {
		return
	}
	found := false
	for _, s := range services {
		if !selects(s.Spec.Selector, api.Spec.Template.Metadata.Labels) {
			continue
		}
		found = true
		for _, p := range s.Spec.Ports {
			if containerPort(api.Spec.Template.Spec.Containers[0], p.TargetPort) == 0 {
				t.Errorf("k8s Service %s: targetPort %s is no port of the api container", s.Metadata.Name, p.TargetPort)
			}
		}
	}
	if !found {
		t.Error("k8s: no Service selects the api pods")
	}
}

// containerPort resolves a probe's or Service's port (a name or a number).
func containerPort(c k8sContainer, port string) int {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(p.ContainerPort) == port {
			return p.ContainerPort
		}
	}
	return 0
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The build context leaves out what must never reach an image or a
// registry: the git history, local builds, dev databases and secrets.
func TestDockerignore_KeepsSecretsAndHistoryOut(t *testing.T) {
	raw, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	patterns := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			patterns[strings.TrimSuffix(line, "/")] = true
		}
	}
	for _, want := range []string{".git", "bin", ".data", "deploy/.env"} {
		if !patterns[want] {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

// cachedWorkflowBytes is what one workflow in the worker's cache holds in
// memory, GC headroom included, as BenchmarkDev_WaitingFlows measured it
// (heap and goroutine profiles with thousands of flows waiting).
const cachedWorkflowBytes = 60 << 10

// The long-running containers tell Go their memory limit (GOMEMLIMIT, a
// margin under the container's, so the GC works harder before the kernel
// kills the pod), and the worker's workflow cache fits in half of it.
func TestK8s_MemoryLimitsHoldTheWorkflowCache(t *testing.T) {
	checked := 0
	for _, o := range readK8s(t) {
		if o.Kind != "Deployment" || len(o.Spec.Template.Spec.Containers) != 1 {
			continue
		}
		ctr := o.Spec.Template.Spec.Containers[0]
		if len(ctr.Args) != 1 || (ctr.Args[0] != "api" && ctr.Args[0] != "worker") {
			continue
		}
		checked++
		where := "k8s Deployment " + o.Metadata.Name
		limit, err := k8sBytes(ctr.Resources.Limits["memory"])
		if err != nil {
			t.Errorf("%s: limits.memory: %v", where, err)
			continue
		}
		env := map[string]string{}
		for _, e := range ctr.Env {
			env[e.Name] = e.Value
		}
		soft, err := goMemLimitBytes(env["GOMEMLIMIT"])
		if err != nil {
			t.Errorf("%s: GOMEMLIMIT: %v", where, err)
			continue
		}
		if soft < limit*3/4 || soft > limit*95/100 {
			t.Errorf("%s: GOMEMLIMIT %d bytes, want 75-95%% of limits.memory (%d bytes)", where, soft, limit)
		}
		if ctr.Args[0] != "worker" {
			continue
		}
		cache := defaultWorkflowCache
		if v, ok := env[envName("workflow-cache")]; ok {
			if cache, err = strconv.Atoi(v); err != nil || cache <= 0 {
				t.Errorf("%s: %s=%q, want a positive count", where, envName("workflow-cache"), v)
				continue
			}
		}
		if need := int64(cache) * cachedWorkflowBytes; need > soft/2 {
			t.Errorf("%s: a cache of %d workflows holds about %d MiB, over half of GOMEMLIMIT (%d MiB)", where, cache, need>>20, soft>>20)
		}
	}
	if checked != 2 {
		t.Fatalf("checked %d Deployments, want api and worker", checked)
	}
}

// k8sBytes parses a Kubernetes memory quantity with a binary suffix
// ("256Mi"), the form the manifests use.
func k8sBytes(q string) (int64, error) {
	for suffix, shift := range map[string]uint{"Ki": 10, "Mi": 20, "Gi": 30} {
		if n, ok := strings.CutSuffix(q, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("%q is not a positive quantity", q)
			}
			return v << shift, nil
		}
	}
	return 0, fmt.Errorf("%q: want a count of Ki, Mi or Gi", q)
}

// goMemLimitBytes parses GOMEMLIMIT as the Go runtime does for the forms
// used here: a byte count with a B, KiB, MiB or GiB suffix.
func goMemLimitBytes(v string) (int64, error) {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"B", 0}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			x, err := strconv.ParseInt(n, 10, 64)
			if err != nil || x <= 0 {
				return 0, fmt.Errorf("%q is not a positive size", v)
			}
			return x << u.shift, nil
		}
	}
	return 0, fmt.Errorf("%q: want a size such as 230MiB", v)
}
