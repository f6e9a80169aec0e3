package store

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jmoiron/sqlx"

	"github.com/custodyflows/custodyflows/internal/pgtest"
)

func TestProbeWrite(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for range 3 {
			if err := s.ProbeWrite(ctx); err != nil {
				t.Fatalf("ProbeWrite: %v", err)
			}
		}
		var rows, writes int
		if err := get(ctx, s.r, &rows, `SELECT count(*) FROM health_probe`); err != nil {
			t.Fatal(err)
		}
		if err := get(ctx, s.r, &writes, `SELECT writes FROM health_probe WHERE id = 1`); err != nil {
			t.Fatal(err)
		}
		if rows != 1 || writes != 3 {
			t.Errorf("health_probe: got %d rows, %d writes, want 1 row written 3 times", rows, writes)
		}
	})
}

// TestProbeWrite_ReadOnlyDatabase: a database that still answers reads but
// takes no writes fails ProbeWrite (and passes Ping), which is the case
// /readyz must tell apart.
func TestProbeWrite_ReadOnlyDatabase(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		path := t.TempDir() + "/app.db"
		s := openPath(t, path)
		// As if the file's mount turned read-only under the process.
		ro, err := sqlx.Open("sqlite3", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		s.w.Close()
		s.w = ro
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if err := s.ProbeWrite(ctx); err == nil {
			t.Error("ProbeWrite on a read-only file: got nil error, want one")
		}
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.Start(t)
		s := openPath(t, dsn)
		// As a server does after failing over to a read-only replica.
		u, _ := url.Parse(dsn)
		if _, err := s.w.ExecContext(ctx, `ALTER DATABASE `+strings.TrimPrefix(u.Path, "/")+` SET default_transaction_read_only = on`); err != nil {
			t.Fatal(err)
		}
		ro := openPath(t, dsn) // new sessions pick the setting up
		if err := ro.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if _, err := ro.FindAudit(ctx, AuditFilter{}); err != nil {
			t.Fatalf("a read: %v", err)
		}
		err := ro.ProbeWrite(ctx)
		if err == nil || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("ProbeWrite on a read-only database: got %v, want a read-only error", err)
		}
	})
}

func TestRedactDSN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"./.data/custodyflows.db", "./.data/custodyflows.db"},
		{"postgres://app:s3cret@db:5432/custody?sslmode=verify-full", "postgres://app:xxxxx@db:5432/custody?sslmode=verify-full"},
		{"postgresql://app@db/custody", "postgresql://app@db/custody"},
		{"postgres://app@db/custody?password=s3cret&sslmode=require", "postgres://app@db/custody?password=xxxxx&sslmode=require"},
		{"postgres://app:s3cret@db:port/x%zz", "postgres://(unparseable URL)"},
	}
	for _, tt := range tests {
		if got := RedactDSN(tt.in); got != tt.want {
			t.Errorf("RedactDSN(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestOpen_PostgresErrorsHideThePassword opens PostgreSQL URLs that fail
// in different ways and checks that no error shows the password, nor lets
// a caller reach pgx's connect error (which holds the whole config).
func TestOpen_PostgresErrorsHideThePassword(t *testing.T) {
	const secret = "Sup3r-s3cret-pw"
	u, err := url.Parse(pgtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	wrongPW := *u
	wrongPW.User = url.UserPassword("postgres", secret)
	noDB := *u
	noDB.User = url.UserPassword("postgres", secret)
	noDB.Path = "/no_such_database"
	inQuery := *u
	inQuery.User = url.User("postgres")
	inQuery.RawQuery = "sslmode=disable&password=" + secret
	closedPort := *u
	closedPort.User = url.UserPassword("postgres", secret)
	closedPort.Host = "127.0.0.1:1"
	tests := map[string]string{
		"wrong password":    wrongPW.String(),
		"password in query": inQuery.String(),
		"no such database":  noDB.String(),
		"closed port":       closedPort.String(),
		"unparseable URL":   "postgres://postgres:" + secret + "@127.0.0.1:x/db%zz",
		"bad sslmode":       "postgres://postgres:" + secret + "@127.0.0.1:5432/db?sslmode=bogus",
	}
	for name, dsn := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := Open(context.Background(), dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open: got nil error, want one")
			}
			t.Logf("error: %v", err)
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the password: %q", err)
			}
			var ce *pgconn.ConnectError
			if errors.As(err, &ce) {
				t.Error("error unwraps to *pgconn.ConnectError, whose Config holds the password")
			}
		})
	}
}
