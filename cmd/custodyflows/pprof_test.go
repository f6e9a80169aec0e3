package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// --pprof-addr serves Go's profiles, but not the command line, which may
// carry secrets; a bad address is refused at parse time.
func TestProfiles_ServedWithoutTheCommandLine(t *testing.T) {
	svc, err := profileConfig{Addr: "127.0.0.1:0"}.serve(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Shutdown()
	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := http.Get("http://" + svc.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	if code, body := get("/debug/pprof/heap"); code != http.StatusOK || !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		t.Errorf("heap profile: got %d (%d bytes), want 200 and a gzipped profile", code, len(body))
	}
	if code, body := get("/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.HasPrefix(string(body), "goroutine profile: total") {
		t.Errorf("goroutine dump: got %d %.60q", code, body)
	}
	if code, body := get("/debug/pprof/cmdline"); code != http.StatusNotFound || strings.Contains(string(body), "custodyflows") {
		t.Errorf("cmdline: got %d %.60q, want 404", code, body)
	}

	quiet := env{stderr: &bytes.Buffer{}, lookup: lookupFrom(nil)}
	if _, err := parseDevConfig([]string{"--pprof-addr", "6060"}, quiet); err == nil || !strings.Contains(err.Error(), "--pprof-addr") {
		t.Errorf("--pprof-addr 6060: got %v, want an error naming --pprof-addr", err)
	}
	c, err := parseDevConfig(nil, env{stderr: &bytes.Buffer{}, lookup: lookupFrom(map[string]string{"CUSTODYFLOWS_PPROF_ADDR": "127.0.0.1:6061"})})
	if err != nil || c.Profile.Addr != "127.0.0.1:6061" {
		t.Errorf("from the environment: got %q, %v", c.Profile.Addr, err)
	}
}
