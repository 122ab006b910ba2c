package main

import (
	"os"
	"strings"
	"testing"

	"github.com/acmecrm/acmecrm/internal/devstack"
)

// The local run starts from nothing: its own PostgreSQL, Redis and broker,
// migrations applied, ready within the start-up deadline, and it stops
// cleanly on cancel.
func TestDevStartsEverythingAndStops(t *testing.T) {
	t.Parallel()
	dir, err := devstack.TempDir("acmecrm-dev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := startService(t, map[string]string{"LOG_LEVEL": "warn"}, "dev", "--data", dir)
	code, _, body := get(t, s.base+"/readyz")
	if code != 200 {
		t.Fatalf("readyz: %d %v", code, body)
	}
	if out := s.out.String(); !strings.Contains(out, "migration(s)") || !strings.Contains(out, "admin@acmecrm.com / admin123") {
		t.Errorf("banner: %s", s.out.String())
	}
	// A second local run on the same data is refused, not corrupting it.
	code2, _, stderr := runCLI(t, env(map[string]string{"HTTP_ADDR": freeAddr(t)}), "dev", "--data", dir)
	if code2 == 0 || !strings.Contains(stderr, "in use") {
		t.Errorf("second dev on same data: exit %d, %q", code2, stderr)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.out.String())
	}
}

// `acmecrm stack` hands the command its servers and returns its exit status.
func TestStackRunsCommandAgainstServers(t *testing.T) {
	t.Parallel()
	script := `case "$TEST_POSTGRES_URL|$DATABASE_URL|$REDIS_URL" in postgres://*\|postgres://*/acmecrm*\|unix://*redis.sock*) exit 3;; esac; exit 4`
	code, _, stderr := runCLI(t, env(nil), "stack", "--", "sh", "-c", script)
	if code != 3 {
		t.Fatalf("exit %d, want 3 (the command's own status); stderr %q", code, stderr)
	}
}
