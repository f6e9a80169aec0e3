package schema

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// SQLite holds the SQLite migrations, NNNN_name.sql, at its root.
func SQLite() fs.FS { return sub("sqlite") }

// Postgres holds the PostgreSQL migrations, NNNN_name.sql, at its root.
func Postgres() fs.FS { return sub("postgres") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // dir is a constant of this package and embedded
	}
	return f
}
