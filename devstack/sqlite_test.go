package devstack_test

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/custodyflows/custodyflows/devstack"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	_ "modernc.org/sqlite" // the server's own SQLite library: its locks know of the server's
)

// runGreet runs greet-1 to its end and waits until visibility lists it.
func runGreet(t *testing.T, ctx context.Context, s *devstack.Server) {
	t.Helper()
	c := dial(t, s)
	w := runWorker(t, c, registerGreet)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "greet-1", TaskQueue: taskQueue}, "Greet", "temporal")
	if err != nil {
		t.Fatalf("ExecuteWorkflow: got error %v, want nil", err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatalf("workflow result: got error %v, want nil", err)
	}
	w.Stop()
	waitListed(t, ctx, c.WorkflowService(), s.Namespace(), "WorkflowType = 'Greet' AND ExecutionStatus = 'Completed'", "greet-1")
}

// waitListed polls visibility, which is written asynchronously, until query
// lists exactly the workflow id.
func waitListed(t *testing.T, ctx context.Context, svc workflowservice.WorkflowServiceClient, namespace, query, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := svc.ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, Query: query})
		if err != nil {
			t.Fatalf("ListWorkflowExecutions: got error %v, want nil", err)
		}
		if n := len(list.GetExecutions()); n == 1 && list.GetExecutions()[0].GetExecution().GetWorkflowId() == id {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ListWorkflowExecutions(%s): got %d executions, want %s only", query, len(list.GetExecutions()), id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// visibilityRows counts the visibility records in the SQLite file at path:
// all of them (the server keeps some of its own), or workflowID's.
func visibilityRows(t *testing.T, path, workflowID string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM executions_visibility WHERE ? IN ('', workflow_id)", workflowID).Scan(&n); err != nil {
		t.Fatalf("count visibility records in %s: %v", filepath.Base(path), err)
	}
	return n
}

// History and visibility have a file each, so visibility's writes never
// hold up history's: the records are in temporal-visibility.db only.
func TestServer_VisibilityHasItsOwnFile(t *testing.T) {
	dir := t.TempDir()
	s := start(t, devstack.Config{DataDir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runGreet(t, ctx, s)
	if got := visibilityRows(t, filepath.Join(dir, "temporal-visibility.db"), "greet-1"); got != 1 {
		t.Errorf("greet-1's records in temporal-visibility.db: got %d, want 1", got)
	}
	if got := visibilityRows(t, filepath.Join(dir, "temporal.db"), ""); got != 0 {
		t.Errorf("records in temporal.db: got %d, want 0", got)
	}
}

// A data dir from before the split, its visibility records in
// temporal.db, still lists them: the first start copies them to
// temporal-visibility.db.
func TestServer_CopiesVisibilityOfAnOldDataDir(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := t.TempDir()
	first := start(t, devstack.Config{DataDir: now})
	runGreet(t, ctx, first)
	if err := first.Stop(); err != nil {
		t.Fatalf("Stop: got error %v, want nil", err)
	}

	// The old layout: temporal.db (with its WAL, which holds the latest
	// pages) and greet-1's record in it, no temporal-visibility.db.
	old := t.TempDir()
	copyFile(t, filepath.Join(now, "temporal.db"), filepath.Join(old, "temporal.db"))
	if _, err := os.Stat(filepath.Join(now, "temporal.db-wal")); err == nil {
		copyFile(t, filepath.Join(now, "temporal.db-wal"), filepath.Join(old, "temporal.db-wal"))
	}
	records := visibilityRows(t, filepath.Join(now, "temporal-visibility.db"), "")
	n, err := devstack.CopyVisibility(ctx, filepath.Join(now, "temporal-visibility.db"), filepath.Join(old, "temporal.db"))
	if err != nil || n != int64(records) {
		t.Fatalf("building the old layout: copied %d records, error %v; want %d, nil", n, err, records)
	}
	// Visibility tasks the server had not yet marked done run again after a
	// restart and may write greet-1's record anew; no task knows of
	// moved-1, whose record only a copy can bring over.
	renameRecord(t, filepath.Join(old, "temporal.db"), "greet-1", "moved-1")

	s := start(t, devstack.Config{DataDir: old})
	waitListed(t, ctx, dial(t, s).WorkflowService(), s.Namespace(), "WorkflowType = 'Greet' AND ExecutionStatus = 'Completed' AND WorkflowId = 'moved-1'", "moved-1")
	if got := visibilityRows(t, filepath.Join(old, "temporal-visibility.db"), "moved-1"); got != 1 {
		t.Errorf("moved-1's records in temporal-visibility.db: got %d, want 1", got)
	}
	if got := visibilityRows(t, filepath.Join(old, "temporal.db"), ""); got != records {
		t.Errorf("records left in temporal.db: got %d, want all %d (kept for an older binary)", got, records)
	}
}

// renameRecord gives the visibility record of workflow id from another id
// (and run id) in the SQLite file at path.
func renameRecord(t *testing.T, path, from, to string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	res, err := db.Exec("UPDATE executions_visibility SET workflow_id = ?, run_id = ? WHERE workflow_id = ?", to, to+"-run", from)
	if err != nil {
		t.Fatalf("rename %s's record: %v", from, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("rename %s's record: changed %d rows, want 1", from, n)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
