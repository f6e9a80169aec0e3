package devstack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.temporal.io/server/common/config"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"google.golang.org/protobuf/types/known/durationpb"
	// The driver the server's SQLite plugin uses; copyVisibility must use
	// the same library, whose file locks know of the plugin's.
	_ "modernc.org/sqlite"
)

const (
	// dbFileName holds history: executions, their events, task queues and
	// the namespace.
	dbFileName = "temporal.db"
	// visibilityFileName holds the visibility records that workflow lists
	// and the UI read.
	visibilityFileName = "temporal-visibility.db"
)

// prepareDatabase makes sure DataDir holds the server's two SQLite files
// and returns the stores the server must use, with one shard.
//
// History and visibility are separate files because the plugin gives each
// file one connection. A visibility record is written with dozens of
// indexes, and costs more the more workflows the file holds. In a shared
// file those writes would hold up the history writes that every start
// waits for.
func prepareDatabase(ctx context.Context, cfg Config) (storeConfig, error) {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return storeConfig{}, fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return storeConfig{}, fmt.Errorf("data dir: %w", err)
	}
	historyPath := filepath.Join(dir, dbFileName)
	_, statErr := os.Stat(historyPath)
	hadHistory := statErr == nil
	history, err := prepareSQLite(cfg, historyPath, nil)
	if err != nil {
		return storeConfig{}, err
	}
	var fill func(tmp string) error
	if hadHistory {
		// A data dir from before the split keeps its visibility records in
		// temporal.db: the new file starts as their copy.
		fill = func(tmp string) error {
			n, err := copyVisibility(ctx, historyPath, tmp)
			if err == nil {
				cfg.Logger.Info("copied visibility records to their own file", "records", n)
			}
			return err
		}
	}
	visibility, err := prepareSQLite(cfg, filepath.Join(dir, visibilityFileName), fill)
	if err != nil {
		return storeConfig{}, err
	}

	ns, err := sqliteschema.NewNamespaceConfig(clusterName, cfg.Namespace, false, nil)
	if err != nil {
		return storeConfig{}, fmt.Errorf("namespace %q: %w", cfg.Namespace, err)
	}
	ns.Detail.Config.Retention = durationpb.New(cfg.Retention)
	// A no-op when the namespace already exists.
	if err := sqliteschema.CreateNamespaces(history, ns); err != nil {
		return storeConfig{}, fmt.Errorf("create namespace %q: %w", cfg.Namespace, err)
	}
	return storeConfig{defaultStore: history, visibility: visibility, shards: 1, describe: historyPath}, nil
}

// prepareSQLite makes sure the file at dbPath holds the server's schema
// and returns its store. A new file is built in a scratch file, filled
// by fill if set, and renamed into place, so a crash half way never leaves
// a file that later starts trust.
func prepareSQLite(cfg Config, dbPath string, fill func(tmp string) error) (*config.SQL, error) {
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		// The name is unique because the sqlite plugin keeps a process-wide
		// connection per DSN and never closes it.
		tmp := dbPath + ".init-" + randomSuffix()
		if err := sqliteschema.SetupSchema(sqliteConfig(tmp, false)); err != nil {
			removeSQLiteFiles(tmp)
			return nil, fmt.Errorf("create temporal schema in %s: %w", filepath.Base(dbPath), err)
		}
		if fill != nil {
			if err := fill(tmp); err != nil {
				removeSQLiteFiles(tmp)
				return nil, fmt.Errorf("fill %s: %w", filepath.Base(dbPath), err)
			}
		}
		if err := os.Rename(tmp, dbPath); err != nil {
			removeSQLiteFiles(tmp)
			return nil, fmt.Errorf("create %s: %w", filepath.Base(dbPath), err)
		}
		cfg.Logger.Info("created temporal database", "path", dbPath)
	} else if err != nil {
		return nil, fmt.Errorf("temporal database: %w", err)
	}
	return sqliteConfig(dbPath, true), nil
}

// copyVisibility copies every visibility record of the SQLite file src
// into dst, whose schema is set up, and returns how many it copied. It
// copies the stored columns both files have; the rest are generated from
// them. src keeps its records: a binary from before the split still lists
// what it knew.
func copyVisibility(ctx context.Context, src, dst string) (int64, error) {
	db, err := sql.Open("sqlite", "file:"+dst+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer func() { _ = db.Close() }()
	// ATTACH holds for one connection only, and ends when it closes.
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	if _, err := conn.ExecContext(ctx, "ATTACH DATABASE ? AS src", "file:"+src+"?mode=ro"); err != nil {
		return 0, fmt.Errorf("attach %s: %w", filepath.Base(src), err)
	}
	dstCols, err := storedColumns(ctx, conn, "main")
	if err != nil {
		return 0, err
	}
	srcCols, err := storedColumns(ctx, conn, "src")
	if err != nil {
		return 0, err
	}
	var cols []string
	for _, c := range dstCols {
		if slices.Contains(srcCols, c) {
			cols = append(cols, `"`+c+`"`)
		}
	}
	if len(cols) == 0 {
		return 0, errors.New("no visibility columns in common")
	}
	list := strings.Join(cols, ", ")
	res, err := conn.ExecContext(ctx, "INSERT INTO main.executions_visibility ("+list+") SELECT "+list+" FROM src.executions_visibility")
	if err != nil {
		return 0, fmt.Errorf("copy visibility records: %w", err)
	}
	return res.RowsAffected()
}

// storedColumns lists the columns of schema's executions_visibility that
// hold values (hidden 0), not the ones generated from them.
func storedColumns(ctx context.Context, conn *sql.Conn, schema string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT name FROM pragma_table_xinfo('executions_visibility', ?) WHERE hidden = 0", schema)
	if err != nil {
		return nil, fmt.Errorf("columns of %s.executions_visibility: %w", schema, err)
	}
	defer func() { _ = rows.Close() }()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// sqliteConfig is the plugin config for a database file. Keys other than
// SQLite URI parameters (mode, cache, …) become PRAGMAs.
func sqliteConfig(path string, wal bool) *config.SQL {
	attrs := map[string]string{
		"mode":         "rwc",
		"busy_timeout": "10000", // ms; for anyone else opening the file
	}
	if wal {
		attrs["journal_mode"] = "wal"
		// Safe with WAL: a crash of the process loses nothing, only a crash
		// of the OS may lose the last transactions. Much faster than FULL.
		attrs["synchronous"] = "normal"
	}
	return &config.SQL{
		PluginName:        sqliteplugin.PluginName,
		DatabaseName:      path,
		ConnectAttributes: attrs,
		// One connection per file, as the plugin defaults to and the
		// Temporal CLI runs it: SQLite has one writer anyway.
		MaxConns:     1,
		MaxIdleConns: 1,
	}
}

// removeSQLiteFiles removes a database file and its side files, ignoring
// errors: it only cleans up after a failure that is reported already.
func removeSQLiteFiles(path string) {
	for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
		_ = os.Remove(path + suffix)
	}
}
