package postgres

import (
	"context"
	"time"
)

// EventStats is the event tracking of SPEC §9, read from the durable
// state (webhook_events, outbox, dead_letters), so every instance reports
// the same figures and a restart loses none of them.
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

// EventStats reads the event tracking figures. The counts are one pass
// over webhook_events: their cost grows with the events kept.
func (s *Store) EventStats(ctx context.Context) (EventStats, error) {
	st := EventStats{ByEventType: map[string]EventCounts{}, RecentErrors: []EventError{}}
	rows, err := s.pool.Query(ctx, `SELECT event_type, status, count(*), max(received_at), max(processed_at)
		FROM webhook_events GROUP BY event_type, status`)
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
		st.Totals.add(status, n)
		c := st.ByEventType[typ]
		c.add(status, n)
		st.ByEventType[typ] = c
		st.LastReceivedAt = latest(st.LastReceivedAt, received)
		st.LastProcessedAt = latest(st.LastProcessedAt, processed)
	}
	if err := rows.Err(); err != nil {
		return st, translate("event stats", err)
	}
	st.Backlog.Unprocessed = st.Totals.Pending

	rows, err = s.pool.Query(ctx, `SELECT event_id, event_type, status, attempts, last_error, coalesce(dead_at, failed_at, received_at)
		FROM webhook_events WHERE status IN ('failed', 'dead') AND last_error IS NOT NULL
		ORDER BY coalesce(dead_at, failed_at, received_at) DESC LIMIT $1`, recentErrorsLimit)
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

	var oldest *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox),
			(SELECT min(created_at) FROM outbox),
			(SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL)`).Scan(
		&st.Backlog.OutboxRows, &oldest, &st.Backlog.DeadLetters); err != nil {
		return st, translate("event stats", err)
	}
	if oldest != nil {
		st.Backlog.OutboxOldestAgeSeconds = max(s.opts.Now().Sub(*oldest), 0).Seconds()
	}
	return st, nil
}

func latest(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.After(*a)) {
		return b
	}
	return a
}
