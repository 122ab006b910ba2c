package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

// deadLetterCountsDisagree lists the (event type, replayed or not) groups
// where the kept dead-letter counts differ from the dead letters stored.
func deadLetterCountsDisagree(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	return disagreements(t, pool, `
		WITH counted AS (
			SELECT event_type, replayed, sum(n) AS n FROM dead_letter_counts GROUP BY 1, 2 HAVING sum(n) <> 0
		), stored AS (
			SELECT event_type, replayed_at IS NOT NULL AS replayed, count(*) AS n FROM dead_letters GROUP BY 1, 2
		)
		SELECT event_type || '/' || CASE WHEN replayed THEN 'replayed' ELSE 'waiting' END, coalesce(c.n, 0), coalesce(s.n, 0)
		FROM counted c FULL JOIN stored s USING (event_type, replayed)
		WHERE c.n IS DISTINCT FROM s.n`)
}

// The dead-letter counts follow every way a dead letter is written:
// consumers dead-lettering events side by side, the relay turning records
// Kafka refuses for good into dead letters, replays of one, of a type, of
// those not replayed and of all (again), retention deleting replayed ones,
// and operators' SQL (another event type, a replay undone, a hard delete,
// TRUNCATE) — while two folders run all along. After each step the kept
// counts equal the dead letters, group by group, and the event tracking's
// backlog is the dead letters not replayed.
func TestDeadLetterCountsFollowEveryChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := infratest.Pool(t)
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	check := func(step string) {
		t.Helper()
		if d := deadLetterCountsDisagree(t, pool); len(d) > 0 {
			t.Fatalf("after %s: %v", step, d)
		}
		var waiting int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		st, err := store.EventStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Backlog.DeadLetters != waiting {
			t.Fatalf("after %s: the event tracking says %d dead letters wait, the table %d", step, st.Backlog.DeadLetters, waiting)
		}
	}
	check("nothing stored")
	defer foldAllAlong(t, store)()

	if err := storeConcurrently(store, "evt_dl", 60, 10, 3, func(int) time.Time { return time.Now().UTC() }); err != nil {
		t.Fatal(err)
	}
	// Four consumers dead-letter 60 stored events side by side.
	rows, err := pool.Query(ctx, `SELECT event_id, event_type, contact_id FROM webhook_events ORDER BY id LIMIT 60`)
	if err != nil {
		t.Fatal(err)
	}
	var letters []postgres.DeadLetter
	for rows.Next() {
		var d postgres.DeadLetter
		if err := rows.Scan(&d.EventID, &d.EventType, &d.ContactID); err != nil {
			t.Fatal(err)
		}
		d.Topic, d.Key, d.Payload, d.Error, d.Attempts = "contact-events", d.ContactID, []byte("{}"), "apply: invalid event", 4
		d.Headers = map[string]string{"event-id": d.EventID, "event-type": d.EventType}
		letters = append(letters, d)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var consumers sync.WaitGroup
	errs := make([]error, 4)
	for c := range 4 {
		consumers.Go(func() {
			for i := c; i < len(letters); i += 4 {
				letters[i].Offset = int64(i)
				if err := store.RecordDeadLetter(ctx, letters[i]); err != nil {
					errs[c] = err
					return
				}
			}
		})
	}
	consumers.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	check("consumers dead-lettering")

	// The relay: Kafka refuses every fifth record for good.
	if _, _, err := store.PublishOutbox(ctx, 0, 100, func(_ context.Context, msgs []postgres.OutboxMessage) (map[int64]error, error) {
		refused := map[int64]error{}
		for i, m := range msgs {
			if i%5 == 0 {
				refused[m.ID] = errors.New("record too large")
			}
		}
		return refused, nil
	}); err != nil {
		t.Fatal(err)
	}
	check("the relay's dead letters")

	var first int64
	if err := pool.QueryRow(ctx, `SELECT min(id) FROM dead_letters`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		step string
		f    postgres.DeadLetterFilter
	}{
		{"replaying one", postgres.DeadLetterFilter{ID: first}},
		{"replaying a type", postgres.DeadLetterFilter{EventType: acmecrm.EventContactUpdated}},
		{"replaying those not replayed", postgres.DeadLetterFilter{NotReplayed: true}},
		{"replaying all again", postgres.DeadLetterFilter{}},
	} {
		if _, err := store.ReplayDeadLetters(ctx, r.f); err != nil {
			t.Fatal(err)
		}
		check(r.step)
	}

	// Half of them fail again; then retention deletes the replayed ones.
	for _, d := range letters[:30] {
		if err := store.RecordDeadLetter(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	check("dead-lettering again")
	for {
		n, _, busy, err := store.PruneFinished(ctx, time.Now().Add(time.Hour), 7)
		if err != nil || busy {
			t.Fatal(err, busy)
		}
		if n == 0 {
			break
		}
	}
	check("retention")

	runSteps(t, pool, check,
		sqlStep{"another event type", `UPDATE dead_letters SET event_type = 'contact.renamed' WHERE id IN (SELECT id FROM dead_letters ORDER BY id LIMIT 5)`},
		sqlStep{"an update that changes neither", `UPDATE dead_letters SET error = error || '!' WHERE id IN (SELECT id FROM dead_letters ORDER BY id DESC LIMIT 5)`},
		sqlStep{"a replay by hand", `UPDATE dead_letters SET replayed_at = now(), replay_count = replay_count + 1 WHERE id IN (SELECT id FROM dead_letters ORDER BY id LIMIT 3)`},
		sqlStep{"a replay undone", `UPDATE dead_letters SET replayed_at = NULL WHERE id IN (SELECT id FROM dead_letters ORDER BY id LIMIT 2)`},
		sqlStep{"a hard delete", `DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters ORDER BY id DESC LIMIT 4)`},
		sqlStep{"TRUNCATE", `TRUNCATE dead_letters`},
	)
	if err := store.RecordDeadLetter(ctx, letters[0]); err != nil {
		t.Fatal(err)
	}
	check("dead-lettering after TRUNCATE")
}

// Reading the event tracking does not read the dead letters. (It counted
// those not replayed: 0.2–0.35 s of both cores at 1,000,000, which a
// consumer refusing every event reaches in an incident.)
func TestEventStatsDoNotReadTheDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := infratest.PoolOf(t, 1)
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	if _, err := pool.Exec(ctx, `INSERT INTO dead_letters (event_id, event_type, topic, kafka_partition, kafka_offset, payload, error, attempts, replayed_at)
		SELECT 'evt_' || i, 'contact.updated', 'contact-events', 0, i, '{}', 'apply: invalid event', 4, CASE WHEN i % 3 = 0 THEN now() END
		FROM generate_series(1, 3000) AS i`); err != nil {
		t.Fatal(err)
	}
	before := rowsRead(t, pool, "dead_letters")
	st, err := store.EventStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backlog.DeadLetters != 2000 {
		t.Errorf("%d dead letters wait, want 2,000", st.Backlog.DeadLetters)
	}
	if n := rowsRead(t, pool, "dead_letters") - before; n > 10 {
		t.Errorf("reading the event tracking read %d dead letters (3,000 stored)", n)
	}
}

// Migration 00017 counts the dead letters already stored.
func TestDeadLetterCountsStartFromTheStoredOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := migratedOver(t, 16, `INSERT INTO dead_letters (event_id, event_type, topic, kafka_partition, kafka_offset, payload, error, attempts, replayed_at)
		SELECT 'evt_' || i, (ARRAY['contact.created', 'contact.updated', 'contact.deleted'])[1 + i % 3], 'contact-events', 0, i, '{}', 'x', 4,
		       CASE WHEN i % 4 = 0 THEN now() END
		FROM generate_series(1, 300) AS i`)
	if d := deadLetterCountsDisagree(t, pool); len(d) > 0 {
		t.Fatalf("after the migration: %v", d)
	}
	st, err := postgres.NewStore(pool, postgres.StoreOptions{}).EventStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backlog.DeadLetters != 225 {
		t.Errorf("%d dead letters wait after the migration, want 225", st.Backlog.DeadLetters)
	}
}
