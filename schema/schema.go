package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// FS holds the migration files, NNNN_name.sql, at its root.
//
//go:embed *.sql
var FS embed.FS

// Migration is one numbered SQL migration.
type Migration struct {
	// Version is the NNNN prefix of the file name, starting at 1.
	Version int
	// Name is the file name without the version prefix and ".sql", e.g. "init".
	Name string
	// SQL is the file's content: one or more statements.
	SQL string
}

// Migrations returns every migration in FS in version order. It fails when
// a file name does not match NNNN_name.sql, a version repeats, or versions
// do not run from 1 without gaps.
func Migrations() ([]Migration, error) {
	return parse(FS)
}

func parse(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("schema: read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		version, name, err := parseName(e.Name())
		if err != nil {
			return nil, err
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("schema: read %s: %w", e.Name(), err)
		}
		if strings.TrimSpace(string(b)) == "" {
			return nil, fmt.Errorf("schema: %s is empty", e.Name())
		}
		ms = append(ms, Migration{Version: version, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		// Gaps and duplicates usually mean a bad merge of two branches that
		// both added a migration: refuse rather than apply them in a
		// surprising order.
		if m.Version != i+1 {
			return nil, fmt.Errorf("schema: migration %04d_%s: got version %d, want %d (versions must run from 1 without gaps or repeats)", m.Version, m.Name, m.Version, i+1)
		}
	}
	return ms, nil
}

// parseName splits "0001_init.sql" into (1, "init").
func parseName(file string) (int, string, error) {
	base := strings.TrimSuffix(file, ".sql")
	num, name, ok := strings.Cut(base, "_")
	if !ok || name == "" || len(num) != 4 {
		return 0, "", fmt.Errorf("schema: migration file %q: want a name like 0001_name.sql", file)
	}
	v, err := strconv.Atoi(num)
	if err != nil || v < 1 {
		return 0, "", fmt.Errorf("schema: migration file %q: version %q is not a positive number", file, num)
	}
	return v, name, nil
}
