package pgtest

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStart_FreshDatabasePerTest(t *testing.T) {
	ctx := context.Background()
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("two Start calls: got the same database %s", a)
	}
	u, err := url.Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	if h := u.Hostname(); h != "127.0.0.1" {
		t.Errorf("host: got %q, want 127.0.0.1 (loopback only)", h)
	}
	if _, ok := u.User.Password(); !ok {
		t.Error("DSN has no password, want one (as a production DSN has)")
	}
	dbA, dbB := open(t, a), open(t, b)
	if _, err := dbA.ExecContext(ctx, `CREATE TABLE only_in_a (x int)`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	var n int
	if err := dbB.QueryRowContext(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("table of database a seen in database b: got %d, want 0", n)
	}
	var collate string
	if err := dbA.QueryRowContext(ctx, `SELECT datcollate FROM pg_database WHERE datname = current_database()`).Scan(&collate); err != nil {
		t.Fatal(err)
	}
	if collate != "C" {
		t.Errorf("collation: got %q, want C (byte order, as SQLite sorts text)", collate)
	}
}

func TestStart_WrongPasswordRefused(t *testing.T) {
	u, err := url.Parse(Start(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("postgres", "wrong")
	err = open(t, u.String()).PingContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("ping with a wrong password: got %v, want a password authentication failure", err)
	}
}

// TestStart_DatabaseDroppedAtCleanup checks that a test's database does not
// outlive it.
func TestStart_DatabaseDroppedAtCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		u, err := url.Parse(Start(t))
		if err != nil {
			t.Fatal(err)
		}
		name = strings.TrimPrefix(u.Path, "/")
		open(t, u.String()).PingContext(context.Background()) // a session still open at cleanup
	})
	var n int
	if err := shared.admin.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s after its test: got %d rows, want it dropped", name, n)
	}
}

// TestCluster_StopRemovesEverything starts a second cluster and checks that
// Stop ends the server and removes its directory.
func TestCluster_StopRemovesEverything(t *testing.T) {
	c, err := NewCluster()
	if err != nil {
		t.Fatalf("NewCluster: %v", err)
	}
	t.Logf("cluster started in %v", c.Started.Round(time.Millisecond))
	pid := c.cmd.Process.Pid
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory after Stop: got %v, want it removed", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("postgres pid %d after Stop: still running", pid)
	}
}

// TestFindBinaries_MissingSaysWhatToInstall: without PostgreSQL the error
// names the package to install (and the tests using pgtest fail with it).
func TestFindBinaries_MissingSaysWhatToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findBinaries(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Errorf("got %v, want an error saying to install Debian's postgresql", err)
	}
}
