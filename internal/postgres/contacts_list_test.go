package postgres_test

import (
	"context"
	"testing"

	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

// A search's plan depends on its pattern: a rare pattern of three or more
// characters is best found through the trigram index, a common one or one
// of two characters (no trigram at all) by a scan in the page's order that
// stops at the page's end. A prepared statement that PostgreSQL has
// switched to its generic plan (after five runs, when the generic plan's
// estimate is lower than the custom plans' average) uses the trigram index
// for every pattern: measured on 1,000,000 contacts, a search for "com"
// took 642 ms for its page and 694 ms for its count, against 0.05 ms and
// 177 ms planned for the pattern. So the list's statements must be planned
// for their values every time, never run on a generic plan.
func TestContactSearchesArePlannedForTheirPattern(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// One connection, so that every statement the store prepares is in
	// the session this test reads pg_prepared_statements from.
	pool := infratest.PoolOf(t, 1)
	if _, err := pool.Exec(ctx, `
		INSERT INTO contacts (first_name, last_name, email, company, source, source_id)
		SELECT 'First' || i, 'Last' || i, 'user' || i || '@example.com', 'Company ' || (i % 97), 'import', 'imp-' || i
		FROM generate_series(1, 50000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE contacts`); err != nil {
		t.Fatal(err)
	}
	store := postgres.NewStore(pool, postgres.StoreOptions{})

	// Different patterns, so that no total comes from the count cache.
	patterns := []string{"com", "exa", "user1", "xq", "first4", "zz", "pany 9", "last77", "ex", "qqq", "mple", "user49999"}
	for _, p := range patterns {
		page, total, err := store.ListContacts(ctx, postgres.ContactQuery{Page: 1, Limit: 10, Sort: "createdAt", Search: p})
		if err != nil {
			t.Fatal(err)
		}
		var want int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM contacts WHERE strpos(lower(first_name || ' ' || last_name || ' ' || email || ' ' || company), $1) > 0`, p).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if total != want || len(page) != min(want, 10) {
			t.Fatalf("search %q: %d contacts on the page and a total of %d, want %d and %d", p, len(page), total, min(want, 10), want)
		}
	}

	rows, err := pool.Query(ctx, `SELECT statement, generic_plans FROM pg_prepared_statements WHERE statement LIKE '%search_text%' AND statement NOT LIKE '%pg_prepared_statements%' AND generic_plans > 0`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var stmt string
		var n int64
		if err := rows.Scan(&stmt, &n); err != nil {
			t.Fatal(err)
		}
		t.Errorf("ran %d times on a generic plan: %s", n, stmt)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
