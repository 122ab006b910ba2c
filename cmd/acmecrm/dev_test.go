package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm/internal/devstack"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
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
	// A local run whose port is taken says so, and how to pick another,
	// before its banner tells the user to go ahead.
	other, err := devstack.TempDir("acmecrm-dev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(other) })
	code3, stdout, stderr := runCLI(t, env(map[string]string{"HTTP_ADDR": strings.TrimPrefix(s.base, "http://")}), "dev", "--data", other)
	if code3 != 1 || !strings.Contains(stderr, "address already in use") || !strings.Contains(stderr, "set PORT or HTTP_ADDR") ||
		strings.Contains(stdout, "Press Ctrl-C") || !strings.Contains(stdout, "stopping local servers") {
		t.Errorf("dev on a taken port: exit %d\nstdout %s\nstderr %s", code3, stdout, stderr)
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.out.String())
	}
	// Restarted on the same data with some roles only: without the api
	// role it serves probes but no API.
	p := startService(t, map[string]string{"LOG_LEVEL": "warn"}, "dev", "--data", dir, "--roles", "relay,consumer")
	if code, _, _ := get(t, p.base+"/readyz"); code != 200 {
		t.Errorf("readyz without the api role: %d", code)
	}
	if code, _, _ := get(t, p.base+"/api/contacts"); code != 404 {
		t.Errorf("API served without the api role: %d", code)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.out.String())
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

func TestDLQCommand(t *testing.T) {
	t.Parallel()
	dbURL := infratest.DatabaseURL(t)
	ctx := context.Background()
	pool, err := postgres.Open(ctx, dbURL, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	if err := store.RecordDeadLetter(ctx, postgres.DeadLetter{EventID: "evt_dead", EventType: "contact.updated", Topic: "contact-events",
		Key: "c1", Payload: []byte(`{}`), Headers: map[string]string{}, Error: "constraint violated", Attempts: 6}); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{"DATABASE_URL": dbURL})
	if code, out, _ := runCLI(t, e, "dlq", "list"); code != 0 || !strings.Contains(out, "evt_dead") || !strings.Contains(out, "constraint violated") {
		t.Errorf("dlq list: %d %q", code, out)
	}
	// A page that is full says how to list the next, older one.
	if err := store.RecordDeadLetter(ctx, postgres.DeadLetter{EventID: "evt_dead2", EventType: "contact.updated", Topic: "contact-events",
		Key: "c2", Payload: []byte(`{}`), Headers: map[string]string{}, Error: "constraint violated", Attempts: 6}); err != nil {
		t.Fatal(err)
	}
	var first, second int64
	if err := pool.QueryRow(ctx, `SELECT min(id), max(id) FROM dead_letters`).Scan(&first, &second); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, e, "dlq", "list", "--limit", "1")
	if hint := fmt.Sprintf("--before %d\n", second); code != 0 || !strings.Contains(out, "evt_dead2") || strings.Contains(out, "evt_dead ") || !strings.HasSuffix(out, hint) {
		t.Errorf("dlq list --limit 1: %d %q, want evt_dead2 and a last line ending %q", code, out, hint)
	}
	code, out, _ = runCLI(t, e, "dlq", "list", "--limit", "1", "--before", strconv.FormatInt(second, 10))
	if code != 0 || !strings.Contains(out, "evt_dead ") || strings.Contains(out, "evt_dead2") {
		t.Errorf("dlq list --before %d: %d %q, want evt_dead only", second, code, out)
	}
	code, out, _ = runCLI(t, e, "dlq", "list", "--before", strconv.FormatInt(first, 10))
	if code != 0 || strings.Contains(out, "evt_dead") || strings.Contains(out, "--before") {
		t.Errorf("dlq list --before %d: %d %q, want no rows and no hint", first, code, out)
	}
	if code, _, _ := runCLI(t, e, "dlq", "replay"); code != 2 {
		t.Errorf("replay without a selection: exit %d", code)
	}
	// Selections that cannot mean what they say are usage errors (they
	// were ignored, or replayed nothing and reported success), and an id
	// that names no dead letter fails, as the API's 404 does.
	for _, args := range [][]string{
		{"replay", "--id", "-5"},
		{"replay", "--id", "0"},
		{"replay", "--id", "1", "--all"},
		{"replay", "--all", "--event-type", "contact.updated"},
		{"replay", "--all", "--limit", "5"},
		{"list", "--limit", "0"},
		{"list", "--limit", "1001"},
		{"list", "--all"},
		{"list", "--before", "0"},
		{"replay", "--all", "--before", "5"},
	} {
		if code, out, _ := runCLI(t, e, append([]string{"dlq"}, args...)...); code != 2 || strings.Contains(out, "queued") {
			t.Errorf("dlq %v: exit %d %q, want a usage error", args, code, out)
		}
	}
	if code, out, stderr := runCLI(t, e, "dlq", "replay", "--id", "999999"); code != 1 || !strings.Contains(stderr, "no dead letter with id 999999") {
		t.Errorf("dlq replay of an unknown id: exit %d %q %q", code, out, stderr)
	}
	if code, out, _ := runCLI(t, e, "dlq", "replay", "--all"); code != 0 || !strings.Contains(out, "queued 2") {
		t.Errorf("dlq replay --all: %d %q", code, out)
	}
	var n int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n)
	if n != 2 {
		t.Errorf("outbox rows after replay: %d", n)
	}
}

// The data folder's lock is waited for, briefly: a run that is ending, or
// a process forked while the lock was open and not yet exec'd, holds it
// for a moment after it was released. Held for good, it is refused.
func TestDataFolderLockWaitsForARelease(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unlock, err := lockDir(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDir(dir, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second lock while held: %v", err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(200 * time.Millisecond)
		unlock()
		close(released)
	}()
	again, err := lockDir(dir, 5*time.Second)
	if err != nil {
		t.Fatalf("lock released 200 ms later: %v", err)
	}
	<-released
	again()
}
