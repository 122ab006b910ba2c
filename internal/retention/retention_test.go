package retention_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/retention"
	"github.com/acmecrm/acmecrm/internal/telemetry"
)

func TestMain(m *testing.M) { infratest.Main(m) }

const day = 24 * time.Hour

type fixture struct {
	t     *testing.T
	store *postgres.Store
}

func newFixture(t *testing.T) *fixture {
	return &fixture{t: t, store: postgres.NewStore(infratest.Pool(t), postgres.StoreOptions{})}
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.store.Pool().Exec(context.Background(), sql, args...); err != nil {
		f.t.Fatal(err)
	}
}

// webhook stores a webhook received age ago, in the given state; a
// processed one also gets its processed-event marker, as the consumer
// writes it.
func (f *fixture) webhook(id, status string, age time.Duration) {
	f.t.Helper()
	typ := acmecrm.EventContactCreated
	if status == "ignored" {
		typ = "contact.merged"
	}
	ev := acmecrm.Event{EventID: id, EventType: typ, OccurredAt: time.Now().UTC(), ReceivedAt: time.Now().UTC(),
		Source: acmecrm.SourceAcme, ContactID: "c-" + id,
		Data: acmecrm.AcmeContact{ContactID: "c-" + id, FirstName: "A", LastName: "B", Email: "a@example.com"}}
	if _, err := f.store.RecordEvents(context.Background(), "contact-events",
		[]postgres.IncomingEvent{{Event: ev, Scheme: "acme", SecretID: "current", Headers: map[string]string{}, RawBody: []byte("{}")}}); err != nil {
		f.t.Fatal(err)
	}
	f.exec(`UPDATE webhook_receipts SET received_at = now() - $2::interval WHERE event_id = $1`, id, age.String())
	f.exec(`UPDATE webhook_event_state s SET status = $2 FROM webhook_receipts r WHERE r.id = s.id AND r.event_id = $1`, id, status)
	if status == "processed" {
		f.exec(`INSERT INTO processed_events (event_id, outcome) VALUES ($1, 'applied')`, id)
	}
}

func (f *fixture) strings(sql string) []string {
	f.t.Helper()
	rows, err := f.store.Pool().Query(context.Background(), sql)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// A pass deletes what is finished and older than the retention, and keeps
// everything else: what is still on its way, what waits for a person, and
// what is recent.
func TestPruneDeletesOnlyFinishedRecordsOlderThanTheRetention(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// In arrival order; old ones and kept ones interleaved, so that the
	// pass has to walk past kept rows, over several batches.
	f.webhook("old-processed-1", "processed", 40*day)
	f.webhook("old-dead", "dead", 40*day)
	f.webhook("old-ignored", "ignored", 39*day)
	f.webhook("old-received", "received", 38*day)
	f.webhook("old-processed-2", "processed", 38*day)
	f.webhook("old-published", "published", 37*day)
	f.webhook("old-failed", "failed", 36*day)
	f.webhook("old-processed-3", "processed", 31*day)
	f.webhook("young-processed", "processed", 29*day)
	f.webhook("young-ignored", "ignored", time.Hour)

	for _, dl := range []struct {
		event    string
		replayed *time.Duration
	}{{"dl-replayed-old", ptr(40 * day)}, {"dl-not-replayed", nil}, {"dl-replayed-young", ptr(time.Hour)}} {
		f.exec(`INSERT INTO dead_letters (event_id, topic, kafka_partition, kafka_offset, payload, error, attempts, created_at, replayed_at)
			VALUES ($1, 'contact-events', 0, 0, '\x7b7d', 'boom', 6, now() - interval '50 days', now() - $2::interval)`, dl.event, durationOrNil(dl.replayed))
	}
	for _, d := range []struct {
		event, status string
		age           time.Duration
	}{{"sim-delivered-old", "delivered", 40 * day}, {"sim-failed-old", "failed", 40 * day},
		{"sim-pending-old", "pending", 40 * day}, {"sim-delivered-young", "delivered", time.Hour}} {
		f.exec(`WITH d AS (INSERT INTO simulator_deliveries (event_id, event_type, target_url, body, status, max_attempts, created_at, updated_at)
				VALUES ($1, 'contact.created', 'http://127.0.0.1/api/webhooks', '\x7b7d', $2, 4, now() - $3::interval, now() - $3::interval) RETURNING id)
			INSERT INTO simulator_attempts (delivery_id, attempt, started_at, latency_ms) SELECT id, 1, now(), 1 FROM d`, d.event, d.status, d.age.String())
	}

	p := retention.New(f.store, slog.New(slog.DiscardHandler), retention.Options{Retention: 30 * day, Batch: 2})
	got, err := p.Prune(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := (retention.Totals{Webhooks: 4, DeadLetters: 1, Deliveries: 2}); got != want {
		t.Errorf("pruned %+v, want %+v", got, want)
	}
	wantWebhooks := []string{"old-dead", "old-failed", "old-published", "old-received", "young-ignored", "young-processed"}
	if got := f.strings(`SELECT event_id FROM webhook_events`); !slices.Equal(got, wantWebhooks) {
		t.Errorf("webhooks kept %v, want %v", got, wantWebhooks)
	}
	if got := f.strings(`SELECT event_id FROM webhook_receipts r WHERE NOT EXISTS (SELECT 1 FROM webhook_event_state s WHERE s.id = r.id)
		UNION ALL SELECT s.id::text FROM webhook_event_state s WHERE NOT EXISTS (SELECT 1 FROM webhook_receipts r WHERE s.id = r.id)`); len(got) != 0 {
		t.Errorf("receipts and states no longer pair up: %v", got)
	}
	if got := f.strings(`SELECT event_id FROM processed_events`); !slices.Equal(got, []string{"young-processed"}) {
		t.Errorf("processed-event markers kept %v, want those of the kept webhooks", got)
	}
	if got := f.strings(`SELECT event_id FROM dead_letters`); !slices.Equal(got, []string{"dl-not-replayed", "dl-replayed-young"}) {
		t.Errorf("dead letters kept %v", got)
	}
	if got := f.strings(`SELECT event_id FROM simulator_deliveries`); !slices.Equal(got, []string{"sim-delivered-young", "sim-pending-old"}) {
		t.Errorf("simulator deliveries kept %v", got)
	}
	if got := f.strings(`SELECT d.event_id FROM simulator_attempts a JOIN simulator_deliveries d ON d.id = a.delivery_id`); len(got) != 2 {
		t.Errorf("attempts kept for %v, want the two kept deliveries'", got)
	}

	// A second pass finds nothing more.
	if got, err := p.Prune(context.Background()); err != nil || got != (retention.Totals{}) {
		t.Errorf("second pass: %+v, %v", got, err)
	}
}

// While another instance prunes, a pass does nothing and says so.
func TestPruneTakesTurns(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.webhook("old", "processed", 40*day)
	ctx := context.Background()
	tx, err := f.store.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var held bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(0x61636d65_7072756e)).Scan(&held); err != nil || !held {
		t.Fatalf("could not take the pruning lock: %v", err)
	}
	p := retention.New(f.store, slog.New(slog.DiscardHandler), retention.Options{Retention: 30 * day})
	if got, err := p.Prune(ctx); err != nil || got != (retention.Totals{Busy: true}) {
		t.Errorf("pass while another prunes: %+v, %v", got, err)
	}
	if n := len(f.strings(`SELECT event_id FROM webhook_receipts`)); n != 1 {
		t.Errorf("%d webhooks left, want 1", n)
	}
	_ = tx.Rollback(ctx)
	if got, err := p.Prune(ctx); err != nil || got.Webhooks != 1 {
		t.Errorf("pass after: %+v, %v", got, err)
	}
}

// Run prunes at its interval: a webhook that ages past the retention while
// it runs is deleted by a later pass.
func TestRunPrunesAtItsInterval(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.webhook("later-old", "processed", time.Hour)
	p := retention.New(f.store, slog.New(slog.DiscardHandler), retention.Options{Retention: 30 * day, Interval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	f.exec(`UPDATE webhook_receipts SET received_at = now() - interval '31 days'`)
	deadline := time.Now().Add(30 * time.Second)
	for len(f.strings(`SELECT event_id FROM webhook_receipts`)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the webhook was not pruned")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ptr(d time.Duration) *time.Duration { return &d }

func durationOrNil(d *time.Duration) any {
	if d == nil {
		return nil
	}
	return d.String()
}

// A pass goes on from where the last one stopped, so it does not walk the
// pruned part of the log again; a webhook it kept that finishes later is
// pruned by the day's pass from the first webhook.
func TestPassesGoOnFromWhereTheLastStopped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.webhook("dead-then-replayed", "dead", 40*day)
	f.webhook("processed", "processed", 40*day)
	now := time.Now()
	p := retention.New(f.store, slog.New(slog.DiscardHandler), retention.Options{Retention: 30 * day, Batch: 1,
		Now: func() time.Time { return now }})
	if got, err := p.Prune(context.Background()); err != nil || got.Webhooks != 1 {
		t.Fatalf("first pass: %+v, %v", got, err)
	}
	// The dead webhook's dead letter is replayed and it is processed.
	f.exec(`UPDATE webhook_event_state SET status = 'processed'`)
	f.webhook("processed-later", "processed", 35*day)
	if got, err := p.Prune(context.Background()); err != nil || got.Webhooks != 1 {
		t.Fatalf("next pass: %+v, %v", got, err)
	}
	if got := f.strings(`SELECT event_id FROM webhook_receipts`); !slices.Equal(got, []string{"dead-then-replayed"}) {
		t.Errorf("after the next pass: %v, want the webhook before its start kept", got)
	}
	now = now.Add(25 * time.Hour)
	if got, err := p.Prune(context.Background()); err != nil || got.Webhooks != 1 {
		t.Fatalf("a day later: %+v, %v", got, err)
	}
	if got := f.strings(`SELECT event_id FROM webhook_receipts`); len(got) != 0 {
		t.Errorf("after the day's full pass: %v, want none", got)
	}
}

// A pass that fails is counted (and tried again at the next interval).
func TestFailedPassesAreCounted(t *testing.T) {
	t.Parallel()
	pool := infratest.Pool(t)
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	metrics := telemetry.NewMetrics("test")
	p := retention.New(store, slog.New(slog.DiscardHandler), retention.Options{Retention: 30 * day, Interval: 20 * time.Millisecond, Metrics: metrics})
	// The database refuses the pass: the tables it prunes are gone.
	if _, err := pool.Exec(context.Background(), `ALTER TABLE webhook_receipts RENAME TO webhook_receipts_away`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for failures(t, metrics) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("failed passes were not counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func failures(t *testing.T, m *telemetry.Metrics) float64 {
	t.Helper()
	fams, err := m.Registerer().(prometheus.Gatherer).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "acmecrm_retention_failures_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
