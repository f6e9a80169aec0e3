package main

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/custodyflows/custodyflows/internal/pgtest"
)

// TestMigrate_Postgres runs migrate twice on a PostgreSQL database, then
// with a wrong password, and checks that the password is never printed.
func TestMigrate_Postgres(t *testing.T) {
	c := pgtest.StartCluster(t)
	dsn := c.NewDatabase(t)
	for i := range 2 {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{"migrate", "--db", dsn}, &out, &errOut, lookupFrom(nil)); err != nil {
			t.Fatalf("migrate run %d: %v", i+1, err)
		}
		if !strings.Contains(out.String(), "up to date") {
			t.Fatalf("migrate output: got %q, want it to say the database is up to date", out.String())
		}
		for _, s := range []string{out.String(), errOut.String()} {
			if strings.Contains(s, c.Password()) {
				t.Fatalf("migrate output shows the password: %q", s)
			}
		}
	}

	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	const wrong = "Wr0ng-pass-4-leak-test"
	u.User = url.UserPassword("postgres", wrong)
	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"migrate", "--db", u.String()}, &out, &errOut, lookupFrom(map[string]string{}))
	if err == nil {
		t.Fatal("migrate with a wrong password: got nil error, want one")
	}
	if !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("error: got %q, want it to say why (password authentication failed)", err)
	}
	for name, s := range map[string]string{"error": err.Error(), "stdout": out.String(), "stderr": errOut.String()} {
		if strings.Contains(s, wrong) {
			t.Errorf("%s shows the password: %q", name, s)
		}
	}
}
