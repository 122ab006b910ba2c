package postgres_test

import (
	"context"
	"slices"
	"testing"

	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

// The dead-letter list's filters and a replay by type find their dead
// letters without walking the others: the ten dead letters of one type
// and the five never replayed are the oldest of 3,000, last in the list's
// order. (The list walked every newer one to filter it: 0.14 s for a type
// that matched none of 1,000,000.) So does the consumer's lookup of a
// record among them, also for the thousand records that were not events
// and have no event id.
func TestDeadLetterFiltersDoNotWalkTheOthers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := infratest.PoolOf(t, 1)
	if _, err := pool.Exec(ctx, `INSERT INTO dead_letters (event_id, event_type, topic, kafka_partition, kafka_offset, payload, error, attempts,
			replay_count, replayed_at)
		SELECT CASE WHEN i <= 2000 THEN 'evt_' || i ELSE '' END, CASE WHEN i <= 10 THEN 'contact.created' ELSE 'contact.updated' END, 'contact-events', 0, i, '{}', 'x', 4,
		       CASE WHEN i <= 5 THEN 0 ELSE 1 END, CASE WHEN i > 5 THEN now() END
		FROM generate_series(1, 3000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE dead_letters`); err != nil {
		t.Fatal(err)
	}
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	var first int64
	if err := pool.QueryRow(ctx, `SELECT min(id) FROM dead_letters`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    postgres.DeadLetterFilter
		want []int64 // offsets from the first id, newest first
	}{
		{postgres.DeadLetterFilter{EventType: "contact.created", Limit: 5}, []int64{9, 8, 7, 6, 5}},
		{postgres.DeadLetterFilter{EventType: "contact.created", Limit: 5, Before: first + 5}, []int64{4, 3, 2, 1, 0}},
		{postgres.DeadLetterFilter{NotReplayed: true, Limit: 3}, []int64{4, 3, 2}},
		{postgres.DeadLetterFilter{EventType: "contact.created", NotReplayed: true, Limit: 10}, []int64{4, 3, 2, 1, 0}},
		{postgres.DeadLetterFilter{ID: first + 2, EventType: "contact.updated"}, nil},
		{postgres.DeadLetterFilter{ID: first + 2}, []int64{2}},
	} {
		before := rowsRead(t, pool, "dead_letters")
		dls, err := store.DeadLetters(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, d := range dls {
			got = append(got, d.ID-first)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.f, got, tc.want)
		}
		if n := rowsRead(t, pool, "dead_letters") - before; n > 20 {
			t.Errorf("%+v read %d dead letters (3,000 stored)", tc.f, n)
		}
	}

	before := rowsRead(t, pool, "dead_letters")
	n, err := store.ReplayDeadLetters(ctx, postgres.DeadLetterFilter{EventType: "contact.created"})
	if err != nil || n != 10 {
		t.Fatalf("replayed %d: %v", n, err)
	}
	if r := rowsRead(t, pool, "dead_letters") - before; r > 20 {
		t.Errorf("replaying a type read %d dead letters (10 of 3,000 match)", r)
	}

	// The consumer looks up each record of a failed batch (migration 00019).
	for _, tc := range []struct {
		topic     string
		partition int32
		offset    int64
		eventID   string
		want      bool
	}{
		{"contact-events", 0, 1500, "evt_1500", true},
		{"contact-events", 0, 1500, "evt_1501", false}, // a recreated topic's record
		{"contact-events", 1, 1500, "evt_1500", false},
		{"contact-events", 0, 3001, "evt_3001", false},
		{"other-events", 0, 1500, "evt_1500", false},
		{"contact-events'; DROP TABLE dead_letters; --", 0, 1500, "evt_1500", false},
		{"contact-events", 0, 2500, "", true}, // not an event: no id, like a thousand others
		{"contact-events", 0, 3500, "", false},
	} {
		before := rowsRead(t, pool, "dead_letters")
		got, err := store.DeadLettered(ctx, tc.topic, tc.partition, tc.offset, tc.eventID)
		if err != nil || got != tc.want {
			t.Errorf("DeadLettered%+v = %v, %v", tc, got, err)
		}
		if r := rowsRead(t, pool, "dead_letters") - before; r > 2 {
			t.Errorf("DeadLettered%+v read %d dead letters (3,000 stored)", tc, r)
		}
	}
}
