package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// EventStats is the event tracking of SPEC §9, read from the durable
// state (webhook_event_counts, webhook_events, outbox, dead_letters), so
// every instance reports the same figures and a restart loses none of them.
type EventStats struct {
	Totals          EventCounts            `json:"totals"`
	ByEventType     map[string]EventCounts `json:"byEventType"`
	RecentErrors    []EventError           `json:"recentErrors"`
	LastReceivedAt  *time.Time             `json:"lastReceivedAt"`
	LastProcessedAt *time.Time             `json:"lastProcessedAt"`
	Backlog         EventBacklog           `json:"backlog"`
}

// EventCounts are webhooks by where they stand. Processed = succeeded +
// failed: succeeded reached the contacts table, failed ran out of retries
// (dead-lettered). Pending are on their way (received, published, or
// retrying after an error); ignored had an unknown event type.
type EventCounts struct {
	Received  int64 `json:"received"`
	Processed int64 `json:"processed"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	Retrying  int64 `json:"retrying"`
	Pending   int64 `json:"pending"`
	Ignored   int64 `json:"ignored"`
}

func (c *EventCounts) add(status string, n int64) {
	c.Received += n
	switch status {
	case "processed":
		c.Succeeded += n
		c.Processed += n
	case "dead":
		c.Failed += n
		c.Processed += n
	case "ignored":
		c.Ignored += n
	case "failed":
		c.Retrying += n
		c.Pending += n
	default: // received, published
		c.Pending += n
	}
}

// EventError is one of the most recent processing errors.
type EventError struct {
	EventID   string    `json:"eventId"`
	EventType string    `json:"eventType"`
	Status    string    `json:"status"`
	Attempts  int       `json:"attempts"`
	Error     string    `json:"error"`
	At        time.Time `json:"at"`
}

// EventBacklog is the work not yet done.
type EventBacklog struct {
	// OutboxRows are records not yet published to Kafka; OutboxOldestAgeSeconds
	// the age of the oldest (0 when none).
	OutboxRows             int64   `json:"outboxRows"`
	OutboxOldestAgeSeconds float64 `json:"outboxOldestAgeSeconds"`
	// Unprocessed are stored webhooks not yet applied (= Totals.Pending).
	Unprocessed int64 `json:"unprocessed"`
	// DeadLetters are dead-lettered events not replayed yet.
	DeadLetters int64 `json:"deadLetters"`
}

// recentErrorsLimit bounds EventStats.RecentErrors.
const recentErrorsLimit = 20

// EventStats reads the event tracking figures. The counts are the sums of
// webhook_event_counts, which triggers keep as the state rows change
// (migration 00010), so reading them costs the same however many webhooks
// are kept: no more than one row per event type and status, plus the
// deltas written since the last CompactEventCounts.
func (s *Store) EventStats(ctx context.Context) (EventStats, error) {
	st := EventStats{ByEventType: map[string]EventCounts{}, RecentErrors: []EventError{}}
	rows, err := s.pool.Query(ctx, `SELECT event_type, status, sum(n)::bigint, max(last_received_at), max(last_processed_at)
		FROM webhook_event_counts GROUP BY event_type, status`)
	if err != nil {
		return st, translate("event stats", err)
	}
	for rows.Next() {
		var typ, status string
		var n int64
		var received, processed *time.Time
		if err := rows.Scan(&typ, &status, &n, &received, &processed); err != nil {
			rows.Close()
			return st, translate("event stats", err)
		}
		// The latest times stay when every webhook they came from has
		// been pruned.
		st.LastReceivedAt = latest(st.LastReceivedAt, received)
		st.LastProcessedAt = latest(st.LastProcessedAt, processed)
		if n == 0 {
			continue
		}
		st.Totals.add(status, n)
		c := st.ByEventType[typ]
		c.add(status, n)
		st.ByEventType[typ] = c
	}
	if err := rows.Err(); err != nil {
		return st, translate("event stats", err)
	}
	st.Backlog.Unprocessed = st.Totals.Pending

	// The index webhook_event_state_errors_idx (migration 00011) holds
	// exactly these rows in this order, so this reads recentErrorsLimit of
	// them however many failed.
	rows, err = s.pool.Query(ctx, `SELECT r.event_id, r.event_type, s.status, s.attempts, s.last_error, coalesce(s.dead_at, s.failed_at, r.received_at)
		FROM webhook_event_state s JOIN webhook_receipts r USING (id)
		WHERE s.status IN ('failed', 'dead') AND s.last_error IS NOT NULL
		ORDER BY coalesce(s.dead_at, s.failed_at) DESC NULLS LAST LIMIT $1`, recentErrorsLimit)
	if err != nil {
		return st, translate("event stats", err)
	}
	for rows.Next() {
		var e EventError
		if err := rows.Scan(&e.EventID, &e.EventType, &e.Status, &e.Attempts, &e.Error, &e.At); err != nil {
			rows.Close()
			return st, translate("event stats", err)
		}
		st.RecentErrors = append(st.RecentErrors, e)
	}
	if err := rows.Err(); err != nil {
		return st, translate("event stats", err)
	}

	backlog, err := s.OutboxBacklog(ctx)
	if err != nil {
		return st, err
	}
	for _, b := range backlog {
		st.Backlog.OutboxRows += int64(b.Rows)
		st.Backlog.OutboxOldestAgeSeconds = max(st.Backlog.OutboxOldestAgeSeconds, b.OldestAge.Seconds())
	}
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(n), 0)::bigint FROM dead_letter_counts WHERE NOT replayed`).Scan(&st.Backlog.DeadLetters); err != nil {
		return st, translate("event stats", err)
	}
	return st, nil
}

func latest(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.After(*a)) {
		return b
	}
	return a
}

// CompactCounts folds the deltas of the kept counts into one row per
// group: the event counts (webhook_event_counts, migration 00010), the
// contact totals (contact_counts, migration 00012), the outbox backlog
// (outbox_counts, migration 00014) and the dead letters
// (dead_letter_counts, migration 00017); a group whose total is zero goes,
// except for the event counts, whose rows keep the latest times. It is exact whatever runs beside it: the rows it folds are
// those its statements delete, and deltas committed meanwhile stay for the
// next time. It returns how many rows it folded.
func (s *Store) CompactCounts(ctx context.Context) (int64, error) {
	batch := &pgx.Batch{}
	var events, contacts, outbox, deadLetters int64
	batch.Queue(`
WITH gone AS (
	DELETE FROM webhook_event_counts RETURNING *
), folded AS (
	INSERT INTO webhook_event_counts (event_type, status, n, last_received_at, last_processed_at)
	SELECT event_type, status, sum(n), max(last_received_at), max(last_processed_at) FROM gone GROUP BY 1, 2
)
SELECT count(*) FROM gone`).QueryRow(func(r pgx.Row) error { return r.Scan(&events) })
	batch.Queue(`
WITH gone AS (
	DELETE FROM contact_counts RETURNING *
), folded AS (
	INSERT INTO contact_counts (source, status, deleted, n)
	SELECT source, status, deleted, sum(n) FROM gone GROUP BY 1, 2, 3 HAVING sum(n) <> 0
)
SELECT count(*) FROM gone`).QueryRow(func(r pgx.Row) error { return r.Scan(&contacts) })
	batch.Queue(`
WITH gone AS (
	DELETE FROM outbox_counts RETURNING *
), folded AS (
	INSERT INTO outbox_counts (topic, n) SELECT topic, sum(n) FROM gone GROUP BY 1 HAVING sum(n) <> 0
)
SELECT count(*) FROM gone`).QueryRow(func(r pgx.Row) error { return r.Scan(&outbox) })
	batch.Queue(`
WITH gone AS (
	DELETE FROM dead_letter_counts RETURNING *
), folded AS (
	INSERT INTO dead_letter_counts (event_type, replayed, n) SELECT event_type, replayed, sum(n) FROM gone GROUP BY 1, 2 HAVING sum(n) <> 0
)
SELECT count(*) FROM gone`).QueryRow(func(r pgx.Row) error { return r.Scan(&deadLetters) })
	if err := s.pool.SendBatch(ctx, batch).Close(); err != nil {
		return 0, translate("compact counts", err)
	}
	return events + contacts + outbox + deadLetters, nil
}
