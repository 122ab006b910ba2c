package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

// outboxCountsDisagree lists the topics where the kept backlog differs
// from the outbox rows stored.
func outboxCountsDisagree(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	return disagreements(t, pool, `
		WITH counted AS (
			SELECT topic, sum(n) AS n FROM outbox_counts GROUP BY 1 HAVING sum(n) <> 0
		), stored AS (
			SELECT topic, count(*) AS n FROM outbox GROUP BY 1
		)
		SELECT topic, coalesce(c.n, 0), coalesce(s.n, 0)
		FROM counted c FULL JOIN stored s USING (topic)
		WHERE c.n IS DISTINCT FROM s.n`)
}

// storedBacklog is the outbox backlog counted from the rows: per topic,
// its rows and the creation time of its first row in line.
func storedBacklog(t *testing.T, pool *pgxpool.Pool, now time.Time) []postgres.TopicBacklog {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT topic, count(*), (array_agg(created_at ORDER BY id))[1]
		FROM outbox GROUP BY topic ORDER BY topic`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []postgres.TopicBacklog
	for rows.Next() {
		var b postgres.TopicBacklog
		var first time.Time
		if err := rows.Scan(&b.Topic, &b.Rows, &first); err != nil {
			t.Fatal(err)
		}
		b.OldestAge = now.Sub(first)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The outbox backlog is kept through every way a row enters or leaves
// the outbox: concurrent webhook batches (with duplicates and ignored
// types, which queue nothing), contact changes of the API, the relay's
// published batches (with records Kafka refuses for good, which become
// dead letters), a relay whose publish fails, dead letters replayed, and
// operators' SQL (a move to another topic, a hard delete, TRUNCATE) —
// while two folders run all along. After each step the kept rows equal
// the outbox, topic by topic, and the backlog read by the gauges and the
// event tracking is the rows of each topic and the age of its first row
// in line.
func TestOutboxBacklogFollowsEveryChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := infratest.Pool(t)
	now := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	store := postgres.NewStore(pool, postgres.StoreOptions{ContactsTopic: "contact-changes", Now: func() time.Time { return now }})
	check := func(step string) {
		t.Helper()
		if d := outboxCountsDisagree(t, pool); len(d) > 0 {
			t.Fatalf("after %s: %v", step, d)
		}
		want := storedBacklog(t, pool, now)
		got, err := store.OutboxBacklog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("after %s: backlog %v, want %v", step, got, want)
		}
		st, err := store.EventStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var rows int64
		var oldest float64
		for _, b := range want {
			rows += int64(b.Rows)
			oldest = max(oldest, b.OldestAge.Seconds())
		}
		if st.Backlog.OutboxRows != rows || st.Backlog.OutboxOldestAgeSeconds != oldest {
			t.Fatalf("after %s: event tracking's backlog %d rows, oldest %v s; want %d, %v s",
				step, st.Backlog.OutboxRows, st.Backlog.OutboxOldestAgeSeconds, rows, oldest)
		}
	}
	check("nothing queued")
	defer foldAllAlong(t, store)()

	// Four writers store 400 webhooks in batches of 1–20; some ids repeat,
	// some types are unknown. Beside them, the API changes 40 contacts.
	changes := make(chan error, 1)
	go func() {
		for i := range 40 {
			f := acmecrm.ContactFields{FirstName: "Ada", Email: fmt.Sprintf("ada%d@example.com", i)}
			f.Normalize()
			if _, err := store.CreateContact(ctx, "api", fmt.Sprintf("ob-%d", i), f); err != nil {
				changes <- err
				return
			}
		}
		changes <- nil
	}()
	err := storeConcurrently(store, "evt_ob", 100, 20, 11, func(int) time.Time { return time.Now().UTC() })
	if err := errors.Join(err, <-changes); err != nil {
		t.Fatal(err)
	}
	check("storing webhooks and changing contacts")

	// The relay publishes 60 rows; Kafka refuses two for good.
	publish := func(n int, fail error, refuse ...int) {
		t.Helper()
		if _, _, err := store.PublishOutbox(ctx, 0, n, func(_ context.Context, msgs []postgres.OutboxMessage) (map[int64]error, error) {
			refused := map[int64]error{}
			for _, i := range refuse {
				refused[msgs[i].ID] = errors.New("record too large")
			}
			return refused, fail
		}); err != nil && fail == nil {
			t.Fatal(err)
		}
	}
	publish(60, nil, 3, 40)
	check("publishing, with two dead letters")
	publish(60, errors.New("kafka unavailable"))
	check("a publish that failed")

	if n, err := store.ReplayDeadLetters(ctx, postgres.DeadLetterFilter{NotReplayed: true}); err != nil || n != 2 {
		t.Fatalf("replayed %d dead letters: %v", n, err)
	}
	check("replaying the dead letters")

	runSteps(t, pool, check,
		sqlStep{"moving rows to another topic", `UPDATE outbox SET topic = 'elsewhere' WHERE id IN (SELECT id FROM outbox ORDER BY id DESC LIMIT 5)`},
		sqlStep{"an update that keeps the topic", `UPDATE outbox SET key = key || '!' WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 5)`},
		sqlStep{"deleting rows by hand", `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE topic = 'contact-changes' ORDER BY id LIMIT 3)`},
	)

	for {
		n, _, err := store.PublishOutbox(ctx, 0, 100, func(context.Context, []postgres.OutboxMessage) (map[int64]error, error) { return nil, nil })
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	check("publishing everything")

	queue(t, store, 7)
	check("queueing again")
	if _, err := pool.Exec(ctx, `TRUNCATE outbox`); err != nil {
		t.Fatal(err)
	}
	check("TRUNCATE")
	queue(t, store, 3)
	check("queueing after TRUNCATE")
}

// Reading the backlog does not read the outbox: its cost does not grow
// with the rows waiting. (It counted them all: 0.33 s of both cores at
// 2,000,000 rows, and past the scrape's 2 s timeout during a long Kafka
// outage the gauges vanished.) A topic whose first row waits behind more
// than 10,000 rows of others is given the age of the row at that place.
func TestOutboxBacklogDoesNotReadTheOutbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := infratest.PoolOf(t, 1)
	now := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	store := postgres.NewStore(pool, postgres.StoreOptions{Now: func() time.Time { return now }})
	read := func() int64 {
		t.Helper()
		return rowsRead(t, pool, "outbox")
	}
	// 3,000 rows of two topics, a quarter of them contact changes, as
	// Kafka's outage left them.
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (topic, key, payload, created_at)
		SELECT CASE WHEN i % 4 = 0 THEN 'contacts' ELSE 'contact-events' END, 'crm-' || i, '{}', timestamptz '2026-11-01' + i * interval '1 ms'
		FROM generate_series(1, 3000) AS i`); err != nil {
		t.Fatal(err)
	}
	before := read()
	got, err := store.OutboxBacklog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := read() - before; n > 10 {
		t.Errorf("reading the backlog read %d outbox rows (3,000 waiting)", n)
	}
	if want := storedBacklog(t, pool, now); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backlog %v, want %v", got, want)
	}
	before = read()
	if _, err := store.EventStats(ctx); err != nil {
		t.Fatal(err)
	}
	if n := read() - before; n > 10 {
		t.Errorf("reading the event tracking read %d outbox rows (3,000 waiting)", n)
	}

	// 37,000 more rows of contact events, then one of another topic: its
	// first row in line is the 40,001st.
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (topic, key, payload, created_at)
		SELECT 'contact-events', 'crm-' || i, '{}', timestamptz '2026-11-01' + i * interval '1 ms'
		FROM generate_series(3001, 40000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (topic, key, payload, created_at) VALUES ('late', 'crm-0', '{}', timestamptz '2026-11-02')`); err != nil {
		t.Fatal(err)
	}
	before = read()
	if got, err = store.OutboxBacklog(ctx); err != nil {
		t.Fatal(err)
	}
	if n := read() - before; n > 20010 {
		t.Errorf("reading the backlog read %d outbox rows (40,001 waiting; two walks of the first 10,000 at most)", n)
	}
	want := storedBacklog(t, pool, now)
	// The 10,000th row in line was created at 10 s past the day.
	want[2].OldestAge = now.Sub(time.Date(2026, 11, 1, 0, 0, 10, 0, time.UTC))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backlog %v, want %v", got, want)
	}
}

// Migration 00014 counts the rows already in the outbox.
func TestOutboxCountsStartFromTheStoredRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := migratedOver(t, 13, `INSERT INTO outbox (topic, key, payload)
		SELECT (ARRAY['contact-events', 'contacts', 'contact-events-dlq'])[1 + i % 3], 'crm-' || i, '{}' FROM generate_series(1, 300) AS i`)
	if d := outboxCountsDisagree(t, pool); len(d) > 0 {
		t.Fatalf("after the migration: %v", d)
	}
	got, err := postgres.NewStore(pool, postgres.StoreOptions{}).OutboxBacklog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Rows+got[1].Rows+got[2].Rows != 300 {
		t.Errorf("backlog after the migration: %v", got)
	}
}
