package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

// countsDisagree lists the (event type, status) groups where the kept
// counts differ from the webhooks stored, as "type/status: counted n,
// stored m".
func countsDisagree(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	return disagreements(t, pool, `
		WITH counted AS (
			SELECT event_type, status, sum(n) AS n FROM webhook_event_counts GROUP BY 1, 2 HAVING sum(n) <> 0
		), stored AS (
			SELECT event_type, status, count(*) AS n FROM webhook_events GROUP BY 1, 2
		)
		SELECT event_type || '/' || status, coalesce(c.n, 0), coalesce(s.n, 0)
		FROM counted c FULL JOIN stored s USING (event_type, status)
		WHERE c.n IS DISTINCT FROM s.n`)
}

func countsEvent(id, typ, contact string, at time.Time) postgres.IncomingEvent {
	ev := acmecrm.Event{EventID: id, EventType: typ, OccurredAt: at, ReceivedAt: at, Source: acmecrm.SourceAcme,
		ContactID: contact, Data: acmecrm.AcmeContact{ContactID: contact}}
	if typ != acmecrm.EventContactDeleted {
		ev.Data = acmecrm.AcmeContact{ContactID: contact, FirstName: "Ada", LastName: "Doe", Email: "ada@example.com", Status: "Active"}
	}
	return postgres.IncomingEvent{Event: ev, Scheme: "acme", SecretID: "current", Headers: map[string]string{}, RawBody: []byte("{}")}
}

// storeConcurrently has four writers store perWriter webhooks each, in
// batches of 1–maxBatch, of every known type and an unknown one
// ("contact.merged"), for 40 contacts. About a tenth of the ids repeat one
// that may be stored already (within and across batches); the others are
// "<prefix>_<writer>_<i>". at dates the i-th webhook of each writer.
func storeConcurrently(store *postgres.Store, prefix string, perWriter, maxBatch int, seed uint64, at func(i int) time.Time) error {
	types := []string{acmecrm.EventContactCreated, acmecrm.EventContactUpdated, acmecrm.EventContactDeleted, "contact.merged"}
	var writers sync.WaitGroup
	errs := make([]error, 4)
	for w := range 4 {
		writers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), seed))
			for i := 0; i < perWriter; {
				n := min(1+r.IntN(maxBatch), perWriter-i)
				batch := make([]postgres.IncomingEvent, 0, n)
				for range n {
					id := fmt.Sprintf("%s_%d_%d", prefix, w, i)
					if r.IntN(10) == 0 {
						id = fmt.Sprintf("%s_%d_%d", prefix, r.IntN(4), r.IntN(perWriter)) // maybe stored already
					}
					batch = append(batch, countsEvent(id, types[r.IntN(len(types))], fmt.Sprintf("crm-%d", r.IntN(40)), at(i)))
					i++
				}
				if _, err := store.RecordEvents(context.Background(), "contact-events", batch); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	writers.Wait()
	return errors.Join(errs...)
}

// The event counts follow every change of a webhook's state, whoever makes
// it and however the changes interleave: webhooks stored by concurrent
// batches (with duplicates and unknown types), published, refused for
// good by Kafka, applied, failed, dead-lettered, replayed, pruned, a
// state row inserted the way an older build inserts it (without its event
// type), and the whole log emptied by TRUNCATE — while the deltas are
// folded side by side. At every step the counts equal the webhooks stored,
// group by group, and EventStats reports them.
func TestEventCountsFollowEveryStateChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := infratest.Pool(t)
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	check := func(step string) {
		t.Helper()
		if d := countsDisagree(t, pool); len(d) > 0 {
			t.Fatalf("after %s: %v", step, d)
		}
	}

	// Folding runs all along, from two "instances" at once.
	defer foldAllAlong(t, store)()

	// Four writers store 600 webhooks in batches of 1–30; some ids repeat
	// (within and across batches), some types are unknown.
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	if err := storeConcurrently(store, "evt_c", 150, 30, 7, func(i int) time.Time { return at.Add(time.Duration(i) * time.Millisecond) }); err != nil {
		t.Fatal(err)
	}
	check("storing")

	// The relay publishes them all; Kafka refuses two for good.
	refuse := map[int64]bool{}
	for {
		n, _, err := store.PublishOutbox(ctx, 0, 100, func(_ context.Context, msgs []postgres.OutboxMessage) (map[int64]error, error) {
			refused := map[int64]error{}
			for _, m := range msgs {
				if len(refuse) < 2 && !refuse[m.ID] {
					refuse[m.ID] = true
					refused[m.ID] = errors.New("record too large")
				}
			}
			return refused, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	check("publishing")

	// The consumer applies most, fails some and dead-letters a few.
	published, _, err := store.WebhookEvents(ctx, postgres.WebhookQuery{Status: "published", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var apply []acmecrm.Event
	for i, e := range published {
		switch i % 10 {
		case 0:
			if err := store.MarkEventFailed(ctx, e.EventID, errors.New("contact locked")); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := store.RecordDeadLetter(ctx, postgres.DeadLetter{EventID: e.EventID, EventType: e.EventType, ContactID: e.ContactID,
				Topic: "contact-events", Payload: []byte("{}"), Headers: map[string]string{}, Error: "invalid", Attempts: 3}); err != nil {
				t.Fatal(err)
			}
		default:
			full, err := store.WebhookEvent(ctx, e.EventID)
			if err != nil {
				t.Fatal(err)
			}
			ev := countsEvent(full.EventID, full.EventType, full.ContactID, *full.OccurredAt).Event
			apply = append(apply, ev)
		}
	}
	for i := 0; i < len(apply); i += 25 {
		if _, err := store.ApplyContactEvents(ctx, apply[i:min(i+25, len(apply))]); err != nil {
			t.Fatal(err)
		}
	}
	check("applying")

	// The dead letters are replayed: their webhooks are on their way again.
	if _, err := store.ReplayDeadLetters(ctx, postgres.DeadLetterFilter{NotReplayed: true}); err != nil {
		t.Fatal(err)
	}
	check("replaying")

	// An older build stores a webhook: its state row has no event type.
	if _, err := pool.Exec(ctx, `WITH r AS (
			INSERT INTO webhook_receipts (event_id, event_type, raw_body) VALUES ('evt_old_build', 'contact.updated', '{}') RETURNING id)
		INSERT INTO webhook_event_state (id, status) SELECT id, 'received' FROM r`); err != nil {
		t.Fatal(err)
	}
	check("an older build's insert")

	// Retention prunes the finished ones.
	cur := postgres.PruneCursor{}
	for {
		n, next, done, busy, err := store.PruneWebhooks(ctx, cur, time.Now().Add(time.Hour), 100)
		if err != nil || busy {
			t.Fatal(err, busy)
		}
		cur = next
		if done && n == 0 {
			break
		}
		if done {
			cur = postgres.PruneCursor{}
		}
	}
	check("pruning")

	var kept, pending int64
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status IN ('received', 'published', 'failed')) FROM webhook_event_state`).Scan(&kept, &pending); err != nil {
		t.Fatal(err)
	}
	st, err := store.EventStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Totals.Received != kept || st.Totals.Pending != pending || st.Backlog.Unprocessed != pending {
		t.Errorf("stats: %+v, want %d received and %d pending", st.Totals, kept, pending)
	}
	if pending == 0 || st.Totals.Retrying == 0 || st.Totals.Succeeded != 0 {
		t.Errorf("the test did not reach every state it means to: %+v", st.Totals)
	}
	if st.LastReceivedAt == nil || st.LastProcessedAt == nil {
		t.Errorf("the latest times were forgotten with the pruned webhooks: %v, %v", st.LastReceivedAt, st.LastProcessedAt)
	}

	// An operator empties the event log; then webhooks arrive again.
	if _, err := pool.Exec(ctx, `TRUNCATE webhook_receipts, webhook_event_state`); err != nil {
		t.Fatal(err)
	}
	check("TRUNCATE")
	if st, err = store.EventStats(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Totals != (postgres.EventCounts{}) || len(st.ByEventType) != 0 || st.LastReceivedAt == nil {
		t.Errorf("stats after TRUNCATE: %+v, %v, last received %v", st.Totals, st.ByEventType, st.LastReceivedAt)
	}
	if _, err := store.RecordEvents(ctx, "contact-events", []postgres.IncomingEvent{
		countsEvent("evt_c_after", acmecrm.EventContactCreated, "crm-1", at)}); err != nil {
		t.Fatal(err)
	}
	check("storing after TRUNCATE")
}

// Reading the event tracking reads neither the receipts nor the state
// rows: its cost does not grow with the webhooks kept. (It read both
// whole: ~1 s of three PostgreSQL processes per million webhooks, so with
// 30 days kept it ran past the request timeout.) Counted with
// PostgreSQL's own table statistics, on one connection so that they can
// be flushed on demand.
func TestEventStatsDoNotReadTheEventLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := infratest.PoolOf(t, 1)
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	at := time.Now().UTC()
	for b := range 20 {
		batch := make([]postgres.IncomingEvent, 100)
		for i := range batch {
			batch[i] = countsEvent(fmt.Sprintf("evt_r_%d_%d", b, i), acmecrm.EventContactCreated, fmt.Sprintf("crm-%d", i), at)
		}
		if _, err := store.RecordEvents(ctx, "contact-events", batch); err != nil {
			t.Fatal(err)
		}
	}
	read := func() int64 {
		t.Helper()
		return rowsRead(t, pool, "webhook_receipts", "webhook_event_state")
	}
	before := read()
	st, err := store.EventStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Totals.Received != 2000 || st.Totals.Pending != 2000 {
		t.Fatalf("totals: %+v", st.Totals)
	}
	if n := read() - before; n > 20 {
		t.Errorf("reading the event tracking read %d rows of the event log (2,000 webhooks stored)", n)
	}

	// After an outage: 1,200 failed or dead webhooks. The recent errors
	// are the latest twenty, newest first, read without the others (the
	// old query read and sorted all of them).
	if _, err := pool.Exec(ctx, `UPDATE webhook_event_state SET status = CASE WHEN id % 2 = 0 THEN 'dead' ELSE 'failed' END,
			last_error = 'apply: error ' || id, failed_at = timestamptz '2026-01-01' + id * interval '1 second',
			dead_at = CASE WHEN id % 2 = 0 THEN timestamptz '2026-01-01' + id * interval '1 second' END
		WHERE id IN (SELECT id FROM webhook_event_state ORDER BY id LIMIT 1200)`); err != nil {
		t.Fatal(err)
	}
	// With statistics, as autovacuum keeps them on a table of any size
	// (without, PostgreSQL plans a few thousand rows as if there were none).
	if _, err := pool.Exec(ctx, `ANALYZE webhook_event_state, webhook_receipts`); err != nil {
		t.Fatal(err)
	}
	var wantErrors []string
	if err := pool.QueryRow(ctx, `SELECT array_agg(last_error ORDER BY id DESC) FROM (SELECT id, last_error FROM webhook_event_state
		WHERE last_error IS NOT NULL ORDER BY id DESC LIMIT 20) e`).Scan(&wantErrors); err != nil {
		t.Fatal(err)
	}
	before = read()
	if st, err = store.EventStats(ctx); err != nil {
		t.Fatal(err)
	}
	var gotErrors []string
	for _, e := range st.RecentErrors {
		gotErrors = append(gotErrors, e.Error)
	}
	if !slices.Equal(gotErrors, wantErrors) {
		t.Errorf("recent errors %q, want %q", gotErrors, wantErrors)
	}
	if n := read() - before; n > 60 {
		t.Errorf("reading the event tracking read %d rows of the event log for its twenty recent errors (1,200 failed or dead)", n)
	}
}

// Migration 00010 counts the webhooks already stored.
func TestEventCountsStartFromTheStoredWebhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := migratedOver(t, 9, `
		WITH r AS (
			INSERT INTO webhook_receipts (event_id, event_type, raw_body, received_at)
			SELECT 'evt_m_' || i, (ARRAY['contact.created', 'contact.updated', 'contact.merged'])[1 + i % 3], '{}', now() - interval '1 day'
			FROM generate_series(1, 300) AS i RETURNING id, event_id)
		INSERT INTO webhook_event_state (id, status, processed_at)
		SELECT id, (ARRAY['received', 'published', 'processed', 'failed', 'dead'])[1 + id % 5],
		       CASE WHEN id % 5 = 2 THEN now() END
		FROM r`)
	if d := countsDisagree(t, pool); len(d) > 0 {
		t.Fatalf("after the migration: %v", d)
	}
	var untyped int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM webhook_event_state WHERE event_type IS NULL`).Scan(&untyped); err != nil {
		t.Fatal(err)
	}
	if untyped != 0 {
		t.Errorf("%d state rows without their event type", untyped)
	}
	st, err := postgres.NewStore(pool, postgres.StoreOptions{}).EventStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Totals.Received != 300 || st.LastReceivedAt == nil || st.LastProcessedAt == nil {
		t.Errorf("stats after the migration: %+v, %v, %v", st.Totals, st.LastReceivedAt, st.LastProcessedAt)
	}
}
