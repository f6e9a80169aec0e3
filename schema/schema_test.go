package schema

import (
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// migrations lists the NNNN_name of every .sql file in fsys in version
// order, failing on a bad name, an empty file, a file goose would not
// parse as an Up migration, or versions that do not run from 1 without gaps.
func migrations(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		base := strings.TrimSuffix(e.Name(), ".sql")
		num, name, ok := strings.Cut(base, "_")
		if v, err := strconv.Atoi(num); !ok || name == "" || len(num) != 4 || err != nil || v < 1 {
			return nil, fmt.Errorf("migration file %q: want a name like 0001_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		if !strings.Contains(string(b), "\n-- +goose Up\n") {
			return nil, fmt.Errorf("migration %s: no \"-- +goose Up\" line", e.Name())
		}
		names = append(names, base)
	}
	slices.Sort(names)
	for i, n := range names {
		if want := fmt.Sprintf("%04d", i+1); !strings.HasPrefix(n, want+"_") {
			return nil, fmt.Errorf("migration %s: want version %s (versions run from 1 without gaps or repeats)", n, want)
		}
	}
	return names, nil
}

func TestMigrations_BothDialectsAlike(t *testing.T) {
	lite, err := migrations(SQLite())
	if err != nil {
		t.Fatalf("sqlite: %v", err)
	}
	pg, err := migrations(Postgres())
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	if len(lite) < 2 || lite[0] != "0001_init" {
		t.Errorf("sqlite migrations: got %v, want 0001_init first and 0002 after it", lite)
	}
	if !slices.Equal(lite, pg) {
		t.Errorf("migrations differ between dialects:\nsqlite   %v\npostgres %v", lite, pg)
	}
}

func TestMigrations_Checks(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	up := "-- x\n-- +goose Up\nA;\n"
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr string
	}{
		{"sorted", fstest.MapFS{"0002_b.sql": file(up), "0001_a.sql": file(up), "README.md": file("x")}, ""},
		{"gap", fstest.MapFS{"0001_a.sql": file(up), "0003_c.sql": file(up)}, "without gaps"},
		{"duplicate version", fstest.MapFS{"0001_a.sql": file(up), "0001_b.sql": file(up)}, "without gaps"},
		{"bad name", fstest.MapFS{"init.sql": file(up)}, "want a name like"},
		{"version zero", fstest.MapFS{"0000_a.sql": file(up)}, "want a name like"},
		{"no goose annotation", fstest.MapFS{"0001_a.sql": file("A;\n")}, "+goose Up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := migrations(tt.files)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
