package devstack_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/devstack"
	"github.com/custodyflows/custodyflows/internal/pgtest"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	dbschemas "go.temporal.io/server/schema"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// postgresFor gives a test its own pair of Temporal databases on the test
// binary's PostgreSQL cluster.
func postgresFor(t *testing.T) (*devstack.Postgres, string) {
	t.Helper()
	dsn := pgtest.Start(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	prefix := path.Base(u.Path) // test_N: unique in the cluster
	return &devstack.Postgres{URL: dsn, Database: prefix + "_temporal", VisibilityDatabase: prefix + "_visibility"}, dsn
}

// latestSchemaVersion is the newest versioned schema directory the server
// module embeds for name (postgresql/v12/temporal, …).
func latestSchemaVersion(t *testing.T, name string) string {
	t.Helper()
	entries, err := fs.ReadDir(dbschemas.Assets(), name+"/versioned")
	if err != nil {
		t.Fatal(err)
	}
	latest := ""
	for _, e := range entries {
		raw, err := fs.ReadFile(dbschemas.Assets(), name+"/versioned/"+e.Name()+"/manifest.json")
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ CurrVersion string }
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if versionLess(latest, m.CurrVersion) {
			latest = m.CurrVersion
		}
	}
	return latest
}

func versionLess(a, b string) bool {
	pa, pb := splitVersion(a), splitVersion(b)
	for i := range max(len(pa), len(pb)) {
		x, y := 0, 0
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func splitVersion(v string) []int {
	var parts []int
	n := 0
	for _, r := range v + "." {
		if r == '.' {
			parts = append(parts, n)
			n = 0
			continue
		}
		n = n*10 + int(r-'0')
	}
	return parts
}

// The embedded server on PostgreSQL: the schema comes from the server's own
// tool and files, at the newest version; a workflow waiting on a signal
// survives a stop and a start on the same databases and frontend port
// (what the cluster test does to Temporal under running processes); the
// internal services' ports fit Temporal's SMALLINT port columns.
func TestServer_PostgresRestartResumesWorkflow(t *testing.T) {
	pg, dsn := postgresFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := devstack.Config{Postgres: pg, Logger: quietLogger(), Namespace: "pg-test", LogLevel: "error"}

	began := time.Now()
	first, err := devstack.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("first Start: got error %v, want nil", err)
	}
	t.Logf("first start (databases, schema, namespace, server): %v", time.Since(began).Round(time.Millisecond))
	defer first.Stop()
	if _, port, _ := net.SplitHostPort(first.FrontendAddress()); port == "" {
		t.Fatalf("FrontendAddress: got %q", first.FrontendAddress())
	}

	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for db, schemaName := range map[string]string{pg.Database: "postgresql/v12/temporal", pg.VisibilityDatabase: "postgresql/v12/visibility"} {
		u, _ := url.Parse(dsn)
		u.Path = "/" + db
		conn, err := sql.Open("pgx", u.String())
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = conn.QueryRowContext(ctx, `SELECT curr_version FROM schema_version WHERE version_partition = 0`).Scan(&got)
		conn.Close()
		if err != nil {
			t.Fatalf("schema version of %s: %v", db, err)
		}
		if want := latestSchemaVersion(t, schemaName); got != want {
			t.Errorf("schema version of %s: got %s, want %s (the newest the server embeds)", db, got, want)
		}
	}

	c1, err := client.Dial(client.Options{HostPort: first.FrontendAddress(), Namespace: "pg-test", Logger: sdklog.NewStructuredLogger(quietLogger())})
	if err != nil {
		t.Fatalf("client.Dial: got error %v, want nil", err)
	}
	w1 := worker.New(c1, taskQueue, worker.Options{})
	registerWait(w1)
	if err := w1.Start(); err != nil {
		t.Fatal(err)
	}
	run, err := c1.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "pg-wait-1", TaskQueue: taskQueue}, "WaitForFinish", "got ")
	if err != nil {
		t.Fatalf("ExecuteWorkflow: got error %v, want nil", err)
	}
	waitForEvent(t, ctx, c1, "pg-wait-1", enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
	w1.Stop()
	c1.Close()
	if err := first.Stop(); err != nil {
		t.Fatalf("first Stop: got error %v, want nil", err)
	}

	// Second life on the same databases and the same frontend port.
	_, port, _ := net.SplitHostPort(first.FrontendAddress())
	cfg.FrontendPort, _ = strconv.Atoi(port)
	began = time.Now()
	s := start(t, cfg)
	t.Logf("restart: %v", time.Since(began).Round(time.Millisecond))
	if s.FrontendAddress() != first.FrontendAddress() {
		t.Errorf("FrontendAddress after restart: got %s, want %s", s.FrontendAddress(), first.FrontendAddress())
	}
	c := dial(t, s)
	runWorker(t, c, registerWait)
	if err := c.SignalWorkflow(ctx, "pg-wait-1", run.GetRunID(), "finish", "signal"); err != nil {
		t.Fatalf("SignalWorkflow after restart: got error %v, want nil", err)
	}
	var got string
	if err := c.GetWorkflow(ctx, "pg-wait-1", run.GetRunID()).Get(ctx, &got); err != nil {
		t.Fatalf("workflow result after restart: got error %v, want nil", err)
	}
	if want := "got signal"; got != want {
		t.Errorf("workflow result after restart: got %q, want %q", got, want)
	}

	// Membership rows, where the server writes any, must fit SMALLINT.
	u, _ := url.Parse(dsn)
	u.Path = "/" + pg.Database
	conn, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var maxPort sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT max(rpc_port) FROM cluster_membership`).Scan(&maxPort); err != nil {
		t.Fatalf("cluster_membership: %v", err)
	}
	if maxPort.Valid && maxPort.Int64 >= 32768 {
		t.Errorf("cluster_membership rpc_port: got %d, want below 32768", maxPort.Int64)
	}
}

func TestStart_RejectsBadPostgres(t *testing.T) {
	for name, pg := range map[string]devstack.Postgres{
		"not a URL":       {URL: "host=127.0.0.1 password=hunter2"},
		"same databases":  {URL: "postgres://u:p@127.0.0.1:1", Database: "x", VisibilityDatabase: "x"},
		"negative shards": {URL: "postgres://u:p@127.0.0.1:1", HistoryShards: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := devstack.Start(context.Background(), devstack.Config{Postgres: &pg, Logger: quietLogger()})
			if err == nil {
				t.Fatal("Start: got nil error, want one")
			}
			if want := "hunter2"; strings.Contains(err.Error(), want) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}
