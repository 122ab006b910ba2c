package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

func TestMain(m *testing.M) { infratest.Main(m) }

func TestMigrateFromEmptyConcurrentlyAndIdempotently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, infratest.EmptyDatabaseURL(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	before, err := postgres.Migrations(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) == 0 {
		t.Fatal("no embedded migrations")
	}
	for _, m := range before {
		if m.Applied {
			t.Fatalf("migration %d applied on an empty database", m.Version)
		}
	}

	// Several instances starting at once apply each migration exactly once.
	var wg sync.WaitGroup
	applied := make([]int, 4)
	errs := make([]error, 4)
	for i := range applied {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = postgres.Migrate(ctx, pool)
		}()
	}
	wg.Wait()
	total := 0
	for i := range applied {
		if errs[i] != nil {
			t.Fatalf("migrate %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	if total != len(before) {
		t.Fatalf("applied %d migrations in total, want %d", total, len(before))
	}
	after, err := postgres.Migrations(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range after {
		if !m.Applied {
			t.Errorf("migration %d not applied", m.Version)
		}
	}
	if n, err := postgres.Migrate(ctx, pool); err != nil || n != 0 {
		t.Fatalf("second migrate: %d, %v", n, err)
	}

	// The schema SPEC describes is there.
	for _, table := range []string{"users", "contacts", "webhook_events", "webhook_receipts", "webhook_event_state", "outbox", "processed_events", "dead_letters", "simulator_deliveries", "simulator_attempts"} {
		var ok bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing (%v)", table, err)
		}
	}
}

func TestOpenReportsUnreachableDatabaseWithoutPassword(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(context.Background(), "postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=2", 1)
	if err == nil {
		t.Fatal("want an error")
	}
	if s := err.Error(); strings.Contains(s, "hunter2") {
		t.Errorf("password in error: %s", s)
	}
}
