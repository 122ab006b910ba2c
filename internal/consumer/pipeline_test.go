package consumer_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/consumer"
	"github.com/acmecrm/acmecrm/internal/devstack"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/kafka"
	"github.com/acmecrm/acmecrm/internal/outbox"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

func TestMain(m *testing.M) { infratest.Main(m) }

const (
	eventsTopic = "contact-events"
	dlqTopic    = "contact-events-dlq"
)

// pipeline is a relay and a consumer on a test database and broker.
type pipeline struct {
	t      *testing.T
	store  *postgres.Store
	broker *devstack.Kafka
	cfg    kafka.Config
}

func newPipeline(t *testing.T, opts ...kfake.Opt) *pipeline {
	t.Helper()
	p := &pipeline{t: t, store: postgres.NewStore(infratest.Pool(t), postgres.StoreOptions{}), broker: infratest.Kafka(t, opts...)}
	p.cfg = kafka.Config{Brokers: p.broker.Brokers(), ClientID: "test"}
	cl := p.client()
	if err := kafka.EnsureTopics(context.Background(), cl,
		kafka.Topic{Name: eventsTopic, Partitions: 3, Retention: time.Hour},
		kafka.Topic{Name: dlqTopic, Partitions: 1, Retention: time.Hour}); err != nil {
		t.Fatal(err)
	}
	return p
}

// run starts fn until the test ends (or the returned stop is called).
func run(t *testing.T, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = fn(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// client is a Kafka client closed when the test ends.
func (p *pipeline) client(opts ...kgo.Opt) *kgo.Client {
	p.t.Helper()
	cl, err := kafka.NewClient(p.cfg, opts...)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(cl.Close)
	return cl
}

func (p *pipeline) relay(opts ...kgo.Opt) func() {
	r := outbox.New(p.store, p.client(opts...), slog.New(slog.DiscardHandler), outbox.Options{Poll: 50 * time.Millisecond})
	return run(p.t, r.Run)
}

func (p *pipeline) consumer(group string) func() {
	c, err := consumer.New(p.cfg, p.store, slog.New(slog.DiscardHandler), consumer.Options{
		Group: group, Topic: eventsTopic, DLQTopic: dlqTopic, MaxRetries: 2, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		p.t.Fatal(err)
	}
	return run(p.t, c.Run)
}

func event(id, typ, contact string, at time.Time, first string) postgres.IncomingEvent {
	ev := acmecrm.Event{EventID: id, EventType: typ, OccurredAt: at, ReceivedAt: time.Now().UTC(), Source: acmecrm.SourceAcme,
		ContactID: contact, Data: acmecrm.AcmeContact{ContactID: contact}}
	if typ != acmecrm.EventContactDeleted {
		ev.Data = acmecrm.AcmeContact{ContactID: contact, FirstName: first, LastName: "Doe", Email: "x@example.com", Status: "Active"}
	}
	return postgres.IncomingEvent{Event: ev, Scheme: "acme", SecretID: "current", Headers: map[string]string{}, RawBody: []byte("{}")}
}

func (p *pipeline) record(evs ...postgres.IncomingEvent) {
	p.t.Helper()
	if _, err := p.store.RecordEvents(context.Background(), eventsTopic, evs); err != nil {
		p.t.Fatal(err)
	}
}

func (p *pipeline) eventually(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *pipeline) count(sql string, args ...any) int {
	var n int
	if err := p.store.Pool().QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		p.t.Fatal(err)
	}
	return n
}

// failTries makes the inserts into table fail as rules say: PL/pgSQL run
// before each row's insert with n, the try's number, counted by the
// sequence test_tries, which no rollback undoes.
func (p *pipeline) failTries(table, rules string) {
	p.t.Helper()
	if _, err := p.store.Pool().Exec(context.Background(), `
		CREATE SEQUENCE test_tries;
		CREATE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
		DECLARE n bigint := nextval('test_tries');
		BEGIN `+rules+`
			RETURN NEW;
		END $$;
		CREATE TRIGGER test_fail BEFORE INSERT ON `+table+` FOR EACH ROW EXECUTE FUNCTION test_fail()`); err != nil {
		p.t.Fatal(err)
	}
}

// ends is the sum of topic's end offsets: how many records it holds.
func (p *pipeline) ends(adm *kadm.Client, topic string) int64 {
	p.t.Helper()
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		p.t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// caughtUp waits until the outbox is published and group has committed
// every record of the events topic.
func (p *pipeline) caughtUp(group string) {
	p.t.Helper()
	adm := kadm.NewClient(p.client())
	p.eventually(group+" caught up", func() bool {
		g := p.broker.Cluster.GroupInfo(group)
		if g == nil || p.count(`SELECT count(*) FROM outbox`) > 0 {
			return false
		}
		total := int64(0)
		for _, c := range g.Commits[eventsTopic] {
			total += c.Offset
		}
		return total == p.ends(adm, eventsTopic)
	})
}

func (p *pipeline) contact(id string) (acmecrm.Contact, bool) {
	c, err := p.store.ContactBySource(context.Background(), "acmecrm", id)
	return c, err == nil
}

func TestWebhookEventReachesContacts(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	p.relay()
	p.consumer("g")
	at := time.Now().UTC()
	// A custom number crosses Kafka and lands in the contact as written.
	e2 := event("e2", acmecrm.EventContactUpdated, "c1", at.Add(time.Second), "Anna")
	e2.Event.Data.CustomFields = map[string]any{"crmId": json.Number("12345678901234567890")}
	p.record(event("e1", acmecrm.EventContactCreated, "c1", at, "Ann"), e2,
		event("e3", acmecrm.EventContactCreated, "c2", at, "Bob"), event("e4", acmecrm.EventContactDeleted, "c2", at.Add(time.Second), ""))
	p.eventually("all events processed", func() bool { return p.count(`SELECT count(*) FROM webhook_events WHERE status = 'processed'`) == 4 })
	c1, _ := p.contact("c1")
	c2, _ := p.contact("c2")
	if c1.FirstName != "Anna" || c2.Status != "deleted" || c2.DeletedAt == nil {
		t.Errorf("contacts: %+v / %+v", c1, c2)
	}
	var crmID string
	if err := p.store.Pool().QueryRow(context.Background(), `SELECT custom_fields->>'crmId' FROM contacts WHERE source_id = 'c1'`).Scan(&crmID); err != nil ||
		crmID != "12345678901234567890" || c1.CustomFields["crmId"] != json.Number("12345678901234567890") {
		t.Errorf("custom number: stored %q, read %#v (%v)", crmID, c1.CustomFields["crmId"], err)
	}
	// The consumer may apply a record before the relay's transaction that
	// published it commits (and deletes its outbox row).
	p.eventually("outbox drained", func() bool { return p.count(`SELECT count(*) FROM outbox`) == 0 })
	if n := p.count(`SELECT count(*) FROM webhook_events WHERE published_at IS NULL OR processed_at IS NULL`); n != 0 {
		t.Errorf("%d events without published/processed times", n)
	}
}

// A record that cannot be applied is retried, dead-lettered, and does not
// block later events of the same partition (same key).
func TestPoisonEventIsDeadLetteredWithoutBlockingThePartition(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	cl := p.client()
	ctx := context.Background()
	// Garbage from another producer, then an invalid contact, then a good one — all key c1.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: eventsTopic, Key: []byte("c1"), Value: []byte("not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	bad := event("e_bad", acmecrm.EventContactCreated, "c1", time.Now().UTC(), "")
	good := event("e_good", acmecrm.EventContactCreated, "c1", time.Now().UTC().Add(time.Second), "Ok")
	p.record(bad)
	p.record(good)
	p.relay()
	p.consumer("g")
	p.eventually("the good event applied", func() bool { c, ok := p.contact("c1"); return ok && c.FirstName == "Ok" })
	p.eventually("two dead letters", func() bool { return p.count(`SELECT count(*) FROM dead_letters`) == 2 })
	if n := p.count(`SELECT count(*) FROM webhook_events WHERE event_id = 'e_bad' AND status = 'dead' AND attempts = 3 AND last_error IS NOT NULL`); n != 1 {
		t.Errorf("the invalid event is not dead after 1 + 2 attempts")
	}
	// The DLQ topic has both, with the error headers.
	dl, err := kafka.NewClient(p.cfg, kgo.ConsumeTopics(dlqTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	got := 0
	deadline := time.Now().Add(20 * time.Second)
	for got < 2 && time.Now().Before(deadline) {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := dl.PollFetches(fctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h["error"] == "" || h["attempts"] == "" || h["original-topic"] != eventsTopic || h["original-offset"] == "" || h["original-partition"] == "" {
				t.Errorf("DLQ record headers: %v", h)
			}
			got++
		})
	}
	if got != 2 {
		t.Fatalf("DLQ records: %d", got)
	}
}

// Replaying a dead letter sends it through the same path again.
// After a failover the consumer may reach a server that has become a
// read-only standby. No event is at fault, so none may be dead-lettered:
// the consumer waits until it can write again, however many attempts that
// takes, and then applies the event. (It used to count each failure toward
// the event's retries and dead-letter it after 1 + 2 attempts.)
func TestReadOnlyDatabaseDeadLettersNothing(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	ctx := context.Background()
	cl := p.client()
	at := time.Now().UTC()
	value := fmt.Sprintf(`{"event_id":"e_ro","event_type":"contact.created","occurred_at":%q,"received_at":%q,"source":"acmecrm","contact_id":"c_ro",`+
		`"data":{"contact_id":"c_ro","acme_first_name":"Waited","acme_last_name":"Doe","acme_email":"ro@example.com"}}`, at.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: eventsTopic, Key: []byte("c_ro"), Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.ConnectConfig(ctx, p.store.Pool().Config().ConnConfig.Copy())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// New sessions of this test's database are read-only; ending the
	// existing ones makes the pool open new ones.
	readOnly := func(on bool) {
		t.Helper()
		set := "SET default_transaction_read_only = on"
		if !on {
			set = "RESET default_transaction_read_only"
		}
		if _, err := admin.Exec(ctx, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I `+set+`', current_database()); END $$`); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
	}
	rollbacks := func() int {
		t.Helper()
		var n int
		// The reading session's own snapshot of the statistics is dropped
		// first, so each call sees the counters as they are now.
		if _, err := admin.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
			t.Fatal(err)
		}
		if err := admin.QueryRow(ctx, `SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	readOnly(true)
	before := rollbacks()
	p.consumer("g")
	// Well past the 1 + 2 attempts after which a failing event is dead.
	p.eventually("ten failed attempts", func() bool { return rollbacks() >= before+10 })
	readOnly(false)
	p.eventually("the event applied", func() bool { c, ok := p.contact("c_ro"); return ok && c.FirstName == "Waited" })
	if n := p.count(`SELECT count(*) FROM dead_letters`); n != 0 {
		t.Errorf("%d dead letters for a database that was read-only", n)
	}
}

// An event's retries count its own failures, not the database's. The
// event fails once (as part of its batch, then on its own), then the
// database is unavailable for ten tries — raised with SQLSTATE 25006, what
// a standby that used to be the primary answers — then the event fails once
// more and then applies. That is two failures of the event, within its
// 1 + 2 attempts: it is applied, not dead-lettered. (The consumer used to
// count every try, so the failure after the outage was its twelfth and
// dead-lettered it at once.)
func TestAnOutageDoesNotUseUpAnEventsRetries(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	p.failTries("contacts", `
		IF n IN (1, 2, 13) THEN
			RAISE EXCEPTION 'the event fails (try %)', n;
		ELSIF n BETWEEN 3 AND 12 THEN
			RAISE EXCEPTION 'the database is read-only (try %)', n USING ERRCODE = '25006';
		END IF;`)
	p.relay()
	p.consumer("g")
	p.record(event("e_out", acmecrm.EventContactCreated, "c_out", time.Now().UTC(), "Kept"))
	p.eventually("the event settled", func() bool {
		return p.count(`SELECT count(*) FROM webhook_events WHERE event_id = 'e_out' AND status IN ('processed', 'dead')`) == 1
	})
	if c, ok := p.contact("c_out"); !ok || c.FirstName != "Kept" {
		t.Errorf("the event was not applied: %+v", c)
	}
	if n := p.count(`SELECT count(*) FROM dead_letters`); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	if n := p.count(`SELECT last_value FROM test_tries`); n != 14 {
		t.Errorf("%d tries of the insert, want 14 (this test did not go as planned)", n)
	}
}

// A dead letter goes to the DLQ topic once, even when recording it in the
// table has to wait for the database: the first five tries of the
// dead_letters insert fail with SQLSTATE 25006 (read-only). The consumer
// used to send the record to the topic again before each try: five copies
// of one dead letter.
func TestDeadLetterIsSentOnceWhileItsRowWaits(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	p.failTries("dead_letters", `
		IF n <= 5 THEN
			RAISE EXCEPTION 'the database is read-only (try %)', n USING ERRCODE = '25006';
		END IF;`)
	p.relay()
	p.consumer("g")
	p.record(event("e_bad", acmecrm.EventContactCreated, "c_bad", time.Now().UTC(), "")) // no name: invalid
	p.eventually("the dead letter recorded", func() bool { return p.count(`SELECT count(*) FROM dead_letters`) == 1 })
	if n := p.count(`SELECT last_value FROM test_tries`); n != 6 {
		t.Errorf("%d tries of the dead letter's insert, want 6 (this test did not go as planned)", n)
	}
	// Sent synchronously before its row is written: the topic's end is final.
	if sent := p.ends(kadm.NewClient(p.client()), dlqTopic); sent != 1 {
		t.Errorf("%d records on the DLQ topic for one dead letter", sent)
	}
}

// A consumer that stops after dead-lettering a record but before its offset
// is committed gets the record again, as does a group an operator rewinds.
// The record was settled: it is found among the dead letters and skipped,
// not tried and dead-lettered a second time (on the topic and in the
// table), and its webhook event stays dead after its first attempts.
func TestRedeliveredDeadLetterIsNotDeadLetteredAgain(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	if err := p.client().ProduceSync(context.Background(),
		&kgo.Record{Topic: eventsTopic, Key: []byte("c_bad"), Value: []byte("not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p.record(event("e_bad", acmecrm.EventContactCreated, "c_bad", time.Now().UTC(), "")) // no name: invalid
	p.record(event("e_good", acmecrm.EventContactCreated, "c_good", time.Now().UTC(), "Ok"))
	p.relay()
	stop := p.consumer("g1")
	p.caughtUp("g1")
	if n := p.count(`SELECT count(*) FROM dead_letters`); n != 2 {
		t.Fatalf("%d dead letters after the first delivery, want 2", n)
	}
	stop()
	p.consumer("g2") // a new group reads the topic from the start: every record again
	p.caughtUp("g2")
	if n := p.count(`SELECT count(*) FROM dead_letters`); n != 2 {
		t.Errorf("%d dead letters after the redelivery, want 2", n)
	}
	if n := p.ends(kadm.NewClient(p.client()), dlqTopic); n != 2 {
		t.Errorf("%d records on the DLQ topic after the redelivery, want 2", n)
	}
	if n := p.count(`SELECT count(*) FROM webhook_events WHERE event_id = 'e_bad' AND status = 'dead' AND attempts = 3`); n != 1 {
		t.Errorf("the redelivery tried the dead event again")
	}
	if _, ok := p.contact("c_good"); !ok {
		t.Errorf("the good event is not applied")
	}
}

// A record Kafka refuses for good — here larger than the producer's batch
// limit, as a broker's max.message.bytes refuses one — used to fail its
// whole batch on every attempt: the relay retried it forever and no row
// claimed with or after it was ever published. It now becomes a dead letter
// with the reason, the rows after it are published and applied, and once
// the limit is raised a replay applies it.
func TestRecordKafkaRefusesBecomesADeadLetter(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	ctx := context.Background()
	at := time.Now().UTC()
	big := event("e_big", acmecrm.EventContactCreated, "c_big", at, "Big")
	big.Event.Data.CustomFields = map[string]any{"essay": strings.Repeat("x", 1000), "more": strings.Repeat("y", 1000)}
	p.record(big, event("e_after", acmecrm.EventContactCreated, "c_after", at, "After"))
	stopRelay := p.relay(kgo.ProducerBatchMaxBytes(1500))
	p.consumer("g")
	p.eventually("the event after it applied", func() bool { c, ok := p.contact("c_after"); return ok && c.FirstName == "After" })
	p.eventually("a dead letter", func() bool { return p.count(`SELECT count(*) FROM dead_letters`) == 1 })
	if n := p.count(`SELECT count(*) FROM dead_letters WHERE event_id = 'e_big' AND topic = $1 AND kafka_partition = -1
		AND error LIKE 'refused by Kafka for good: MESSAGE_TOO_LARGE%'`, eventsTopic); n != 1 {
		t.Errorf("the dead letter does not say what happened")
	}
	if n := p.count(`SELECT count(*) FROM webhook_events WHERE event_id = 'e_big' AND status = 'dead' AND last_error LIKE '%MESSAGE_TOO_LARGE%'`); n != 1 {
		t.Errorf("the refused event is not dead")
	}
	if n := p.count(`SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("%d outbox rows left", n)
	}
	// The limit raised (a relay with the default), the replay applies it.
	stopRelay()
	p.relay()
	var id int64
	if err := p.store.Pool().QueryRow(ctx, `SELECT id FROM dead_letters WHERE event_id = 'e_big'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if n, err := p.store.ReplayDeadLetters(ctx, postgres.DeadLetterFilter{ID: id}); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	p.eventually("the replayed event applied", func() bool { c, ok := p.contact("c_big"); return ok && c.FirstName == "Big" })
}

// A dead letter the DLQ topic refuses for good (there: max.message.bytes
// 2,000) used to be retried for ever, and its partition waited behind it.
// It is kept in the table, saying so, and the partition moves on.
func TestDeadLetterTheDLQTopicRefusesIsKept(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	ctx := context.Background()
	cl := p.client()
	small := "2000"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": &small}, "small-dlq"); err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 3000) // incompressible: the producer compresses batches
	_, _ = rand.Read(noise)
	poison := &kgo.Record{Topic: eventsTopic, Key: []byte("c1"), Value: []byte("not json " + base64.StdEncoding.EncodeToString(noise))}
	if err := cl.ProduceSync(ctx, poison).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p.record(event("e_next", acmecrm.EventContactCreated, "c1", time.Now().UTC(), "Next"))
	p.relay()
	c, err := consumer.New(p.cfg, p.store, slog.New(slog.DiscardHandler), consumer.Options{
		Group: "g", Topic: eventsTopic, DLQTopic: "small-dlq", MaxRetries: 2, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c.Run)
	// A poll's valid events are applied together, so the next one may be
	// in before the poison is settled: wait for both.
	p.eventually("the next event on the partition applied", func() bool { c, ok := p.contact("c1"); return ok && c.FirstName == "Next" })
	p.eventually("the refused dead letter kept in the table", func() bool {
		return p.count(`SELECT count(*) FROM dead_letters WHERE error LIKE '%not on the dead-letter topic, which refused it: MESSAGE_TOO_LARGE%' AND length(payload) > 3000`) == 1
	})
}

func TestReplayDeadLetter(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	ctx := context.Background()
	ev := event("e_r", acmecrm.EventContactCreated, "c9", time.Now().UTC(), "Replayed")
	p.record(ev)
	// As if an earlier attempt had failed for a reason since fixed.
	if _, err := p.store.Pool().Exec(ctx, `DELETE FROM outbox`); err != nil {
		t.Fatal(err)
	}
	payload := fmt.Sprintf(`{"event_id":"e_r","event_type":"contact.created","occurred_at":%q,"received_at":%q,"source":"acmecrm","contact_id":"c9","data":{"contact_id":"c9","acme_first_name":"Replayed","acme_last_name":"Doe","acme_email":"x@example.com"}}`,
		ev.Event.OccurredAt.Format(time.RFC3339Nano), ev.Event.ReceivedAt.Format(time.RFC3339Nano))
	if err := p.store.RecordDeadLetter(ctx, postgres.DeadLetter{EventID: "e_r", EventType: "contact.created", ContactID: "c9",
		Topic: eventsTopic, Key: "c9", Payload: []byte(payload), Headers: map[string]string{"event-id": "e_r", "error": "db timeout"},
		Error: "db timeout", Attempts: 6}); err != nil {
		t.Fatal(err)
	}
	p.relay()
	p.consumer("g")
	n, err := p.store.ReplayDeadLetters(ctx, postgres.DeadLetterFilter{EventType: "contact.created"})
	if err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	p.eventually("the replayed event applied", func() bool { c, ok := p.contact("c9"); return ok && c.FirstName == "Replayed" })
	p.eventually("status processed", func() bool {
		return p.count(`SELECT count(*) FROM webhook_events WHERE event_id = 'e_r' AND status = 'processed'`) == 1
	})
	dls, _ := p.store.DeadLetters(ctx, postgres.DeadLetterFilter{})
	if len(dls) != 1 || dls[0].ReplayCount != 1 || dls[0].ReplayedAt == nil {
		t.Errorf("dead letter after replay: %+v", dls)
	}
}

// Kafka refusing produce requests: rows stay in the outbox, nothing is
// lost, and the backlog drains when Kafka is back.
func TestRelaySurvivesProduceFailures(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	failing := make(chan struct{})
	var refused atomic.Int32
	p.broker.Cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case <-failing:
			return nil, nil, false // healed: let the broker handle it
		default:
			p.broker.Cluster.KeepControl()
			refused.Add(1)
			return nil, errors.New("broker refuses produce"), true
		}
	})
	p.relay()
	for i := 0; i < 20; i++ {
		p.record(event(fmt.Sprintf("e%d", i), acmecrm.EventContactCreated, fmt.Sprintf("c%d", i), time.Now().UTC(), "A"))
	}
	p.eventually("produce attempts refused", func() bool { return refused.Load() >= 3 })
	if n := p.count(`SELECT count(*) FROM outbox`); n != 20 {
		t.Fatalf("outbox rows while Kafka refuses: %d, want 20", n)
	}
	close(failing)
	p.consumer("g")
	p.eventually("the backlog drained and applied", func() bool {
		return p.count(`SELECT count(*) FROM outbox`) == 0 && p.count(`SELECT count(*) FROM contacts`) == 20
	})
}

// Redelivering everything (a consumer that starts over) applies nothing twice.
func TestRedeliveryAppliesNothingTwice(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	p.relay()
	stop := p.consumer("g1")
	at := time.Now().UTC()
	for i := 0; i < 10; i++ {
		p.record(event(fmt.Sprintf("e%d", i), acmecrm.EventContactUpdated, "c1", at.Add(time.Duration(i)*time.Second), fmt.Sprintf("V%d", i)))
	}
	p.eventually("processed", func() bool { return p.count(`SELECT count(*) FROM webhook_events WHERE status = 'processed'`) == 10 })
	stop()
	before, _ := p.contact("c1")
	p.consumer("g2") // a new group reads the topic from the start
	p.caughtUp("g2")
	after, _ := p.contact("c1")
	if after.Version != before.Version || after.FirstName != "V9" || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("redelivery changed the contact: %+v -> %+v", before, after)
	}
	if n := p.count(`SELECT count(*) FROM processed_events`); n != 10 {
		t.Errorf("processed markers: %d", n)
	}
}

// A second consumer joining the group takes a share of the partitions.
func TestSecondConsumerSharesPartitions(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	p.consumer("shared")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.broker.Cluster.WaitGroupStable(ctx, "shared", 1); err != nil {
		t.Fatal(err)
	}
	p.consumer("shared")
	g, err := p.broker.Cluster.WaitGroupInfo(ctx, "shared", func(g *kfake.GroupInfo) bool {
		if g == nil || len(g.Members) != 2 {
			return false
		}
		for _, m := range g.Members {
			if m.NumAssigned() == 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("partitions not shared: %v", err)
	}
	if a, b := g.Members[0].NumAssigned(), g.Members[1].NumAssigned(); a+b != 3 {
		t.Errorf("assigned %d + %d partitions, want 3 in all", a, b)
	}
}

// Two relays at once publish each row once.
func TestTwoRelaysPublishEachRowOnce(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	for i := 0; i < 300; i++ {
		p.record(event(fmt.Sprintf("e%03d", i), acmecrm.EventContactCreated, fmt.Sprintf("c%d", i), time.Now().UTC(), "A"))
	}
	p.relay()
	p.relay()
	p.eventually("outbox drained", func() bool { return p.count(`SELECT count(*) FROM outbox`) == 0 })
	cl, err := kafka.NewClient(p.cfg, kgo.ConsumeTopics(eventsTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	total := 0
	deadline := time.Now().Add(20 * time.Second)
	for total < 300 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "event-id" {
					seen[string(h.Value)]++
				}
			}
			total++
		})
		cancel()
	}
	if total != 300 || len(seen) != 300 {
		t.Fatalf("%d records for %d distinct events, want 300 each", total, len(seen))
	}
}

// A relay claims from just below the highest id it has published; a row
// whose transaction commits long after later rows were published (so its
// id is far below that point) must still be published.
func TestRelayPublishesRowCommittedAfterLaterRows(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	ctx := context.Background()
	tx, err := p.store.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (topic, key, payload, headers) VALUES ($1, 'late', '{}', '{"event-id":"late"}')`, eventsTopic); err != nil {
		t.Fatal(err)
	}
	p.relay()
	const later = 3000 // several relay batches past the late row's id
	for i := 0; i < later; i += 500 {
		var evs []postgres.IncomingEvent
		for j := i; j < i+500; j++ {
			evs = append(evs, event(fmt.Sprintf("e%04d", j), acmecrm.EventContactCreated, fmt.Sprintf("c%d", j), time.Now().UTC(), "A"))
		}
		p.record(evs...)
	}
	p.eventually("later rows published", func() bool { return p.count(`SELECT count(*) FROM outbox`) == 0 })
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	p.eventually("late row published", func() bool { return p.count(`SELECT count(*) FROM outbox`) == 0 })

	cl, err := kafka.NewClient(p.cfg, kgo.ConsumeTopics(eventsTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	total, late := 0, 0
	deadline := time.Now().Add(20 * time.Second)
	for total < later+1 && time.Now().Before(deadline) {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		cl.PollFetches(fctx).EachRecord(func(r *kgo.Record) {
			total++
			if string(r.Key) == "late" {
				late++
			}
		})
		cancel()
	}
	if total != later+1 || late != 1 {
		t.Fatalf("%d records, %d of them the late row; want %d and 1", total, late, later+1)
	}
}
