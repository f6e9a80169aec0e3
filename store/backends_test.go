package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/custodyflows/custodyflows/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// backend makes a fresh, empty database of one kind and returns its DSN.
type backend struct {
	name   string
	newDSN func(t testing.TB) string
}

// backends are the two kinds of database every store test runs on:
// PostgreSQL being a real server (internal/pgtest).
var backends = []backend{
	{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "app.db") }},
	{"postgres", pgtest.Start},
}

// eachBackend runs test once per backend, as a subtest named after it,
// with the DSN of a fresh database.
func eachBackend(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b.newDSN(t)) })
	}
}

// eachStore runs test once per backend on a store opened on a fresh
// database.
func eachStore(t *testing.T, test func(t *testing.T, s *Store)) {
	t.Helper()
	eachBackend(t, func(t *testing.T, dsn string) { test(t, openPath(t, dsn)) })
}

// openTest opens a store on a fresh SQLite file in t.TempDir and closes it
// when the test ends (for benchmarks and SQLite-only tests).
func openTest(t testing.TB) *Store {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "app.db"))
}

// openPath opens a store on dsn and closes it when the test ends.
func openPath(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open(%s): %v", RedactDSN(dsn), err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
