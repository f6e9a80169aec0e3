// Package pgtest gives tests a real PostgreSQL server: a throwaway cluster
// that the test binary starts itself (initdb in a temporary directory, the
// server on a free loopback port with its unix socket inside that
// directory), and a fresh, empty database for every test.
//
// One cluster serves the whole test binary: initdb and the first start cost
// seconds (about 4 s on two busy cores), CREATE DATABASE about 0.1 s. A
// package that uses pgtest stops and removes the cluster from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
// and each test asks for its database:
//
//	dsn := pgtest.Start(t) // postgres://postgres:…@127.0.0.1:port/test_3?sslmode=disable
//
// A package with only a test or two that need PostgreSQL can instead start
// a cluster of the test's own with StartCluster (no TestMain needed).
//
// The server runs with fsync off: the data is thrown away, so durability
// buys nothing and costs seconds. It is a child of the test binary and gets
// SIGQUIT if the binary dies, so even a killed test run leaves no server
// behind.
//
// Nothing is skipped: without PostgreSQL's server binaries (Debian's
// postgresql package puts them in /usr/lib/postgresql/*/bin) every test that
// asks for a database fails and says what to install. PostgreSQL refuses to
// run as root, so when the tests run as root the cluster runs as the
// postgres OS user (which that package creates), owning its directory.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
)

// Install says what to install when the server binaries are missing.
const Install = "install PostgreSQL's server binaries: Debian's postgresql package " +
	"(apt-get install postgresql, as root; `make test-deps` does it), " +
	"which puts initdb and postgres in /usr/lib/postgresql/<version>/bin"

// The cluster is shared by every test of the binary. A test helper package
// may hold this state: it lives exactly as long as the test binary, and Run
// is what ends it.
var (
	once    sync.Once
	shared  *Cluster
	openErr error
	mainRan atomic.Bool
	dbSeq   atomic.Int64
)

// Run runs the tests of m and then stops and removes the cluster if a test
// started one. Call it from TestMain; Start refuses to run without it, so a
// forgotten TestMain cannot leave a temporary directory behind.
func Run(m *testing.M) int {
	mainRan.Store(true)
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Start returns the URL of a new, empty database on the test binary's
// cluster, starting the cluster on first use. The database is dropped when
// t ends (after the test's own cleanups, so its pools are closed by then).
// A missing PostgreSQL installation fails t; it never skips.
func Start(t testing.TB) string {
	t.Helper()
	if !mainRan.Load() {
		t.Fatal("pgtest: call pgtest.Run from the package's TestMain: func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }")
	}
	once.Do(func() { shared, openErr = NewCluster() })
	if openErr != nil {
		t.Fatalf("pgtest: %v", openErr)
	}
	return shared.NewDatabase(t)
}

// StartCluster starts a cluster of t's own, stopped and removed when t
// ends, for a package that needs a database in one or two tests and has no
// TestMain calling Run. Get databases on it with NewDatabase.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := NewCluster()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

// NewDatabase creates a new, empty database on c and returns its URL. The
// database is dropped when t ends (after the test's own cleanups, so its
// pools are closed by then).
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", dbSeq.Add(1))
	dsn, err := c.CreateDatabase(context.Background(), name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.DropDatabase(context.Background(), name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return dsn
}

// Cluster is one running PostgreSQL server in a temporary directory.
type Cluster struct {
	dir      string
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the server process has exited
	admin    *sql.DB       // the "postgres" database, for CREATE/DROP DATABASE
	// Started is how long initdb and the server's start took together.
	Started time.Duration
}

// NewCluster creates a cluster in a new temporary directory and starts its
// server on a free port of 127.0.0.1. Stop it with Stop. Most tests want
// Start instead.
func NewCluster() (*Cluster, error) {
	begin := time.Now()
	bin, err := findBinaries("/usr/lib/postgresql")
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	c := &Cluster{dir: dir, password: randomHex(16)}
	if err := c.init(bin, cred); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// Another process may take the port between our probe and the server's
	// bind: try a few ports before giving up.
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		if err = c.start(bin, cred); err == nil {
			break
		}
		if attempt == 2 {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	c.Started = time.Since(begin)
	return c, nil
}

// init runs initdb: C locale so that text sorts by bytes as in SQLite,
// UTF-8, password (scram) authentication over TCP so that DSNs carry a
// password as in production, trust on the unix socket.
func (c *Cluster) init(bin string, cred *syscall.Credential) error {
	pwfile := filepath.Join(c.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	if err := os.Mkdir(filepath.Join(c.dir, "sock"), 0o700); err != nil {
		return fmt.Errorf("create socket directory: %w", err)
	}
	if cred != nil {
		if err := chownTree(c.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	cmd := exec.Command(filepath.Join(bin, "initdb"),
		"--pgdata", filepath.Join(c.dir, "data"),
		"--username", "postgres",
		"--pwfile", pwfile,
		"--auth-host", "scram-sha-256",
		"--auth-local", "trust",
		"--encoding", "UTF8",
		"--locale", "C",
		"--no-sync",
		"--no-instructions",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = c.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return os.Remove(pwfile)
}

// start runs the server in the foreground as a child (not daemonised by
// pg_ctl) so that it dies with the test binary, and waits until it accepts
// connections.
func (c *Cluster) start(bin string, cred *syscall.Credential) error {
	logPath := filepath.Join(c.dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", filepath.Join(c.dir, "data"),
		"-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+filepath.Join(c.dir, "sock"),
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
		"-c", "log_min_messages=warning",
	)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		// SIGQUIT is PostgreSQL's immediate shutdown: if the test binary
		// dies without running Stop, the server goes with it.
		Pdeathsig: syscall.SIGQUIT,
		Setpgid:   true,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.cmd = cmd
	c.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(c.exited) }()

	admin, err := sql.Open("pgx", c.dsn("postgres"))
	if err != nil {
		c.kill()
		return fmt.Errorf("open admin connection: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = admin.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-c.exited:
			_ = admin.Close()
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited at start on port %d:\n%s", c.port, log)
		default:
		}
		if time.Now().After(deadline) {
			_ = admin.Close()
			c.kill()
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres did not accept connections within 60s: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.admin = admin
	return nil
}

// dsn is the URL of database name, with the superuser's password.
func (c *Cluster) dsn(name string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", c.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + name,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// Password is the superuser's (postgres) password.
func (c *Cluster) Password() string { return c.password }

// CreateDatabase creates an empty database and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if _, err := c.admin.ExecContext(ctx, `CREATE DATABASE `+quoteIdent(name)); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return c.dsn(name), nil
}

// DropDatabase drops a database, ending any session still connected to it.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	if _, err := c.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+quoteIdent(name)+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (fast shutdown, then a kill after 10 s) and
// removes the cluster's directory.
func (c *Cluster) Stop() error {
	var errs []error
	if c.admin != nil {
		errs = append(errs, c.admin.Close())
	}
	if c.cmd != nil {
		// SIGINT is PostgreSQL's fast shutdown: it ends sessions and stops.
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			c.kill()
			errs = append(errs, errors.New("postgres did not stop within 10s: killed"))
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove cluster directory: %w", err))
	}
	return errors.Join(errs...)
}

func (c *Cluster) kill() {
	// The server's children are in its process group.
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.exited
}

// findBinaries returns the directory holding initdb and postgres: the one
// of initdb in PATH, else the newest libRoot/<version>/bin (Debian's
// layout, /usr/lib/postgresql, which is not in PATH).
func findBinaries(libRoot string) (string, error) {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	found, _ := filepath.Glob(filepath.Join(libRoot, "*", "bin"))
	sort.Slice(found, func(i, j int) bool { return versionOf(found[i]) > versionOf(found[j]) })
	dirs = append(dirs, found...)
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb, postgres) in PATH or %s/*/bin: %s", libRoot, Install)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// serverCredential is nil when the tests may run PostgreSQL as themselves,
// and the postgres OS user when they run as root (which PostgreSQL refuses).
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as the postgres OS user, which does not exist (%v): %s", err, Install)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("postgres OS user: bad uid %q or gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Chown(path, uid, gid); err != nil {
			return fmt.Errorf("hand the cluster directory to the postgres user: %w", err)
		}
		return nil
	})
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
