package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

// migratedTo returns a pool on a new database migrated up to version
// only, for tests of a later migration on data stored before it.
func migratedTo(t *testing.T, version int64) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, infratest.EmptyDatabaseURL(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, postgres.MigrationFiles())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return pool
}

// migratedOver returns a pool on a new database migrated up to version,
// where seed (SQL) stores rows, and then up to the latest migration: for
// tests of a migration on data stored before it.
func migratedOver(t *testing.T, version int64, seed string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool := migratedTo(t, version)
	if _, err := pool.Exec(ctx, seed); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// sqlStep is an operator's statement, and what it stands for.
type sqlStep struct{ step, sql string }

// runSteps runs each statement in turn, and check after each.
func runSteps(t *testing.T, pool *pgxpool.Pool, check func(step string), steps ...sqlStep) {
	t.Helper()
	for _, s := range steps {
		if _, err := pool.Exec(context.Background(), s.sql); err != nil {
			t.Fatal(err)
		}
		check(s.step)
	}
}

// disagreements runs query, which returns a (group, counted, stored) row
// for each group where kept counts differ from the rows stored, and lists
// them as "group: counted n, stored m".
func disagreements(t *testing.T, pool *pgxpool.Pool, query string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		var c, s int64
		if err := rows.Scan(&g, &c, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s: counted %d, stored %d", g, c, s))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rowsRead returns how many rows of the tables this session has read so
// far, by sequential scans and through indexes, from PostgreSQL's table
// statistics. The pool must have one connection: the session's pending
// statistics are flushed first, then read in a new transaction.
func rowsRead(t *testing.T, pool *pgxpool.Pool, tables ...string) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0)::bigint
		FROM pg_stat_user_tables WHERE relname = ANY($1)`, tables).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// foldAllAlong folds the kept counts from two goroutines, as two instances
// would, until the returned function is called; that reports any folding
// error.
func foldAllAlong(t *testing.T, store *postgres.Store) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var folders sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		folders.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := store.CompactCounts(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	return func() {
		close(done)
		folders.Wait()
		select {
		case err := <-errs:
			t.Errorf("folding: %v", err)
		default:
		}
	}
}
