package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lockEventsInOrder locks the webhook_event_state rows of the event ids in
// $1 in id order. The relay and the consumer both update batches of these
// rows, often the same ones at the same moment; locking in one order means
// they wait for each other instead of deadlocking.
const lockEventsInOrder = `SELECT s.id FROM webhook_event_state s JOIN webhook_receipts r USING (id)
	WHERE r.event_id = ANY($1) ORDER BY s.id FOR UPDATE OF s`

// eventStateByID selects the state row of the event id in $1.
const eventStateByID = `id = (SELECT id FROM webhook_receipts WHERE event_id = $1)`

// OutboxChannel is the LISTEN/NOTIFY channel that wakes the outbox relay.
const OutboxChannel = "acmecrm_outbox"

// relayLock is the transaction-level advisory lock a relay holds while it
// claims and publishes a batch ("acmecrm outbox relay" in an int64).
const relayLock int64 = 0x61636d65_72656c79

// OutboxMessage is one queued Kafka record.
type OutboxMessage struct {
	ID      int64
	Topic   string
	Key     string
	Payload []byte
	Headers map[string]string
}

// PublishOutbox claims up to n unpublished rows with ids from from on, in
// id order, hands them to publish, and — only if publish succeeds — deletes them and
// marks their webhook events published, all in one transaction. If publish
// fails the rows stay for the next attempt. Rows publish reports refused
// for good (Kafka will never take that record: too large, say) become dead
// letters instead, with the reason, and their events dead, so that one
// record cannot hold back every row after it; once the cause is fixed they
// are replayed like any dead letter. It returns how many rows it handled
// and the highest id among them; none while another relay is publishing
// (relays take turns, so that rows reach Kafka in id order).
//
// Published rows are deleted, and until VACUUM removes them a scan from
// the start of the table walks over every one; from lets a relay start
// past the rows it has published itself (see outbox.Relay).
func (s *Store) PublishOutbox(ctx context.Context, from int64, n int, publish func(context.Context, []OutboxMessage) (refused map[int64]error, err error)) (int, int64, error) {
	var count int
	var last int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One relay publishes at a time. Two claiming side by side take
		// different rows (a later batch may hold a later event of the same
		// contact) and may land them in Kafka in either order. So a relay
		// claims only while it holds this lock, and one that finds it taken
		// claims nothing until its next wake-up: rows reach Kafka in id
		// order whatever the number of relays. The lock ends with the
		// holder's transaction, also when it dies.
		//
		// The table holds few live rows but, between vacuums, many pages of
		// deleted ones: the planner then prefers reading every page to the
		// index, which is the one plan that stays cheap here.
		//
		// A relay that stops talking in the middle of its turn (cut off
		// from the database without the server noticing) loses its session
		// after RelayStall, and the turn with it.
		var turn bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1), set_config('enable_seqscan', 'off', true),
				set_config('idle_in_transaction_session_timeout', $2, true)`,
			relayLock, strconv.FormatInt(s.opts.RelayStall.Milliseconds(), 10)).Scan(&turn, new(string), new(string)); err != nil || !turn {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, topic, key, payload, headers FROM outbox
			WHERE id >= $2 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, n, from)
		if err != nil {
			return err
		}
		msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxMessage, error) {
			var m OutboxMessage
			var h []byte
			if err := r.Scan(&m.ID, &m.Topic, &m.Key, &m.Payload, &h); err != nil {
				return m, err
			}
			return m, json.Unmarshal(h, &m.Headers)
		})
		if err != nil || len(msgs) == 0 {
			return err
		}
		refused, err := publish(ctx, msgs)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		ids := make([]int64, len(msgs))
		events := make([]string, 0, len(msgs))
		var deadIDs []int64
		var deadEvents, deadErrors []string
		for i, m := range msgs {
			ids[i] = m.ID
			if cause, ok := refused[m.ID]; ok {
				deadIDs, deadEvents, deadErrors = append(deadIDs, m.ID), append(deadEvents, m.Headers["event-id"]), append(deadErrors, cause.Error())
				continue
			}
			if id := m.Headers["event-id"]; id != "" {
				events = append(events, id)
			}
		}
		if len(deadIDs) > 0 {
			// Never in Kafka: no partition or offset (-1).
			if _, err := tx.Exec(ctx, `INSERT INTO dead_letters (event_id, event_type, contact_id, topic, kafka_partition, kafka_offset,
					key, payload, headers, error, attempts)
				SELECT coalesce(o.headers->>'event-id', ''), coalesce(o.headers->>'event-type', ''), o.key, o.topic, -1, -1,
					o.key, o.payload, o.headers, left(d.error, 2000), 1
				FROM outbox o JOIN unnest($1::bigint[], $2::text[]) AS d(id, error) USING (id) ORDER BY o.id`, deadIDs, deadErrors); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE webhook_event_state w SET status = 'dead', dead_at = now(), last_error = left(d.error, 2000)
				FROM (`+lockEventsInOrder+`) l, webhook_receipts r, unnest($1::text[], $2::text[]) AS d(event_id, error)
				WHERE w.id = l.id AND r.id = l.id AND r.event_id = d.event_id`, deadEvents, deadErrors); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = ANY($1)`, ids); err != nil {
			return err
		}
		// The consumer may already have applied an event (it can read the
		// record before this transaction commits): keep its later status.
		if _, err := tx.Exec(ctx, `UPDATE webhook_event_state w SET published_at = coalesce(w.published_at, now()),
				status = CASE WHEN w.status = 'received' THEN 'published' ELSE w.status END
			FROM (`+lockEventsInOrder+`) l WHERE w.id = l.id`, events); err != nil {
			return err
		}
		count, last = len(msgs), msgs[len(msgs)-1].ID
		return nil
	})
	return count, last, translate("publish outbox", err)
}

// TopicBacklog is one topic's unpublished outbox rows.
type TopicBacklog struct {
	Topic     string
	Rows      int
	OldestAge time.Duration
}

// backlogLine bounds how far OutboxBacklog looks along the line of
// unpublished rows for a topic's first one.
const backlogLine = 10000

// OutboxBacklog is the number of unpublished rows of each topic that has
// any, and how long the first in line of each has waited. The rows are
// kept counts (outbox_counts, migration 00014), so reading them costs the
// same at ten rows and at ten million. The relay publishes in id order, so
// a topic's first row in line is found from the front of the primary key;
// one that waits behind more than backlogLine rows of other topics is
// given the age of the row at that place, older than its own: it cannot
// be published before them.
func (s *Store) OutboxBacklog(ctx context.Context) ([]TopicBacklog, error) {
	// The table keeps the pages of published (deleted) rows: after an
	// outage of 2,000,000 rows, 200,000 of them, which the planner may
	// prefer reading to the index. With sequential scans priced out, the
	// plan's cost is large enough for PostgreSQL to compile it first
	// (~100 ms of JIT for a query of well under 1 ms), hence jit = off.
	// SET LOCAL lasts until the rollback; begun in one round trip.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN READ ONLY; SET LOCAL enable_seqscan = off; SET LOCAL jit = off"})
	if err != nil {
		return nil, translate("outbox backlog", err)
	}
	// Read only: ending it by a rollback is the same as a commit.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, `
		SELECT c.topic, c.n, coalesce(
			(SELECT f.created_at FROM (SELECT topic, created_at FROM outbox ORDER BY id LIMIT $1) f WHERE f.topic = c.topic LIMIT 1),
			(SELECT created_at FROM outbox ORDER BY id OFFSET $1 - 1 LIMIT 1),
			now())
		FROM (SELECT topic, sum(n)::bigint AS n FROM outbox_counts GROUP BY topic HAVING sum(n) <> 0) c
		ORDER BY c.topic`, backlogLine)
	if err != nil {
		return nil, translate("outbox backlog", err)
	}
	now := s.opts.Now()
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TopicBacklog, error) {
		var b TopicBacklog
		var oldest time.Time
		err := r.Scan(&b.Topic, &b.Rows, &oldest)
		b.OldestAge = max(now.Sub(oldest), 0)
		return b, err
	})
	return out, translate("outbox backlog", err)
}

// Listener waits for outbox notifications on a connection of its own.
type Listener struct {
	conn *pgxpool.Conn
}

// ListenOutbox starts listening for outbox notifications.
func (s *Store) ListenOutbox(ctx context.Context) (*Listener, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, translate("listen", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+OutboxChannel); err != nil {
		conn.Release()
		return nil, translate("listen", err)
	}
	return &Listener{conn: conn}, nil
}

// Wait returns when a notification arrives or after timeout (nil either
// way), or with an error if the connection broke.
func (l *Listener) Wait(ctx context.Context, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := l.conn.Conn().WaitForNotification(wctx)
	if err != nil && (errors.Is(err, context.DeadlineExceeded) || (ctx.Err() == nil && wctx.Err() != nil)) {
		return nil
	}
	return err
}

// Close releases the connection (closing it: it is in LISTEN state).
func (l *Listener) Close() {
	_ = l.conn.Conn().Close(context.Background())
	l.conn.Release()
}
