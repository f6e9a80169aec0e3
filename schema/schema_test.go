package schema

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

func TestMigrations_Embedded(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatalf("Migrations: %v", err)
	}
	if len(ms) == 0 {
		t.Fatal("got no migrations, want at least 0001_init.sql")
	}
	if got, want := ms[0].Name, "init"; got != want {
		t.Errorf("first migration name: got %q, want %q", got, want)
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Errorf("migration %d: got version %d, want %d", i, m.Version, i+1)
		}
		if !strings.Contains(m.SQL, ";") {
			t.Errorf("migration %04d_%s: got no statement", m.Version, m.Name)
		}
	}
}

func TestParse(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []string // "version:name"
		wantErr string
	}{
		{
			name:  "sorted by version",
			files: fstest.MapFS{"0002_b.sql": file("B;"), "0001_a.sql": file("A;"), "README.md": file("x")},
			want:  []string{"1:a", "2:b"},
		},
		{
			name:    "gap",
			files:   fstest.MapFS{"0001_a.sql": file("A;"), "0003_c.sql": file("C;")},
			wantErr: "without gaps",
		},
		{
			name:    "duplicate version",
			files:   fstest.MapFS{"0001_a.sql": file("A;"), "0001_b.sql": file("B;")},
			wantErr: "without gaps",
		},
		{
			name:    "bad name",
			files:   fstest.MapFS{"init.sql": file("A;")},
			wantErr: "want a name like",
		},
		{
			name:    "version zero",
			files:   fstest.MapFS{"0000_a.sql": file("A;")},
			wantErr: "not a positive number",
		},
		{
			name:    "empty file",
			files:   fstest.MapFS{"0001_a.sql": file("  \n")},
			wantErr: "is empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := parse(tt.files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, fmt.Sprintf("%d:%s", m.Version, m.Name))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
