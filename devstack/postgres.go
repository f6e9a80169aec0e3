package devstack

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	pgplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/tools/common/schema"
	sqltool "go.temporal.io/server/tools/sql"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Postgres says where the server keeps its state in PostgreSQL.
type Postgres struct {
	// URL is postgres://user:password@host:port of a role that may create
	// databases (its path and query are ignored).
	URL string
	// Database holds history (executions, tasks, namespaces); default
	// "temporal".
	Database string
	// VisibilityDatabase holds the visibility records workflow lists read;
	// default "temporal_visibility".
	VisibilityDatabase string
	// HistoryShards is fixed on the first start: a later start with
	// another number is refused by the server. Default 4.
	HistoryShards int32
}

// Embedded schema directories of the server module, as temporal-sql-tool
// names them (--schema-name); schema/postgresql/v12 holds each one's
// versioned upgrades.
const (
	pgSchemaHistory    = "postgresql/v12/temporal"
	pgSchemaVisibility = "postgresql/v12/visibility"
	// pgAdminDatabase is where CREATE DATABASE runs from.
	pgAdminDatabase = "postgres"
)

func (p *Postgres) setDefaults() error {
	if p.Database == "" {
		p.Database = "temporal"
	}
	if p.VisibilityDatabase == "" {
		p.VisibilityDatabase = "temporal_visibility"
	}
	if p.Database == p.VisibilityDatabase {
		return errors.New("postgres: history and visibility need two databases")
	}
	if p.HistoryShards == 0 {
		p.HistoryShards = 4
	}
	if p.HistoryShards < 0 {
		return fmt.Errorf("postgres: %d history shards", p.HistoryShards)
	}
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		// The URL may hold a password: never echo it.
		return errors.New("postgres: URL must be postgres://user:password@host:port")
	}
	return nil
}

// sqlConfig is the plugin config for one database. pgx, like the app's own
// PostgreSQL store, through the server's postgres12_pgx plugin.
func (p Postgres) sqlConfig(database string) (*config.SQL, error) {
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, errors.New("postgres: invalid URL")
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	password, _ := u.User.Password()
	return &config.SQL{
		PluginName:      pgplugin.PluginNamePGX,
		User:            u.User.Username(),
		Password:        password,
		DatabaseName:    database,
		ConnectAddr:     net.JoinHostPort(host, port),
		ConnectProtocol: "tcp",
		ConnectAttributes: map[string]string{
			"sslmode": "disable", // loopback only, like the rest of devstack
		},
		// Enough for four services sharing one process and a small shard
		// count; the server's docker default is 20.
		MaxConns:        20,
		MaxIdleConns:    20,
		MaxConnLifetime: time.Hour,
	}, nil
}

// preparePostgres does what temporal-sql-tool's create-database,
// setup-schema -v 0.0 and update-schema --schema-name do, for both
// databases, with the server module's own tool code and schema files; then
// it creates the namespace. Every step is a no-op when already done.
func preparePostgres(cfg Config) (storeConfig, error) {
	p := *cfg.Postgres
	logger := log.NewNoopLogger()
	stores := storeConfig{shards: p.HistoryShards}
	for _, db := range []struct {
		name, schema string
		into         **config.SQL
	}{
		{p.Database, pgSchemaHistory, &stores.defaultStore},
		{p.VisibilityDatabase, pgSchemaVisibility, &stores.visibility},
	} {
		sqlCfg, err := p.sqlConfig(db.name)
		if err != nil {
			return storeConfig{}, err
		}
		create := *sqlCfg
		if err := sqltool.DoCreateDatabase(&create, pgAdminDatabase, logger); err != nil {
			return storeConfig{}, fmt.Errorf("create database %q: %w", db.name, redact(err, sqlCfg.Password))
		}
		conn, err := sqltool.NewConnection(sqlCfg, logger)
		if err != nil {
			return storeConfig{}, fmt.Errorf("connect to database %q: %w", db.name, redact(err, sqlCfg.Password))
		}
		err = schema.NewSetupSchemaTask(conn, &schema.SetupConfig{InitialVersion: "0.0"}, logger).Run()
		if err == nil {
			err = schema.NewUpdateSchemaTask(conn, &schema.UpdateConfig{DBName: db.name, SchemaName: db.schema}, logger).Run()
		}
		conn.Close()
		if err != nil {
			return storeConfig{}, fmt.Errorf("temporal schema of database %q: %w", db.name, redact(err, sqlCfg.Password))
		}
		*db.into = sqlCfg
	}
	u, _ := url.Parse(p.URL)
	stores.describe = "postgres://" + u.Host + "/" + p.Database + "," + p.VisibilityDatabase

	// Written before the server starts, as for SQLite: a namespace the
	// server finds at start is served at once, where one registered
	// through the API waits for every service's namespace cache refresh.
	// The function is generic SQL despite its package's name.
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, cfg.Namespace, false, nil)
	if err != nil {
		return storeConfig{}, fmt.Errorf("namespace %q: %w", cfg.Namespace, err)
	}
	ns.Detail.Config.Retention = durationpb.New(cfg.Retention)
	if err := sqliteschema.CreateNamespaces(stores.defaultStore, ns); err != nil {
		return storeConfig{}, fmt.Errorf("create namespace %q: %w", cfg.Namespace, redact(err, stores.defaultStore.Password))
	}
	return stores, nil
}

// redact keeps a password out of an error from a driver that quotes its
// connection string.
func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "****"))
}
