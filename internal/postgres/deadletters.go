package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// MarkEventFailed records a failed processing attempt on the webhook event.
func (s *Store) MarkEventFailed(ctx context.Context, eventID string, cause error) error {
	_, err := s.pool.Exec(ctx, `UPDATE webhook_event_state SET status = 'failed', failed_at = now(), attempts = attempts + 1,
		last_error = left($2, 2000) WHERE `+eventStateByID+` AND status <> 'processed'`, eventID, cause.Error())
	return translate("mark failed", err)
}

// DeadLetter is an event that failed processing after every retry.
type DeadLetter struct {
	ID          int64             `json:"id"`
	EventID     string            `json:"eventId"`
	EventType   string            `json:"eventType"`
	ContactID   string            `json:"contactId"`
	Topic       string            `json:"topic"`
	Partition   int32             `json:"partition"`
	Offset      int64             `json:"offset"`
	Key         string            `json:"key"`
	Payload     []byte            `json:"-"`
	Headers     map[string]string `json:"headers"`
	Error       string            `json:"error"`
	Attempts    int               `json:"attempts"`
	CreatedAt   time.Time         `json:"createdAt"`
	ReplayCount int               `json:"replayCount"`
	ReplayedAt  *time.Time        `json:"replayedAt"`
}

// RecordDeadLetter stores a dead letter and marks its webhook event dead,
// in one transaction.
func (s *Store) RecordDeadLetter(ctx context.Context, d DeadLetter) error {
	h, err := json.Marshal(d.Headers)
	if err != nil {
		return err
	}
	return translate("dead letter", pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO dead_letters (event_id, event_type, contact_id, topic, kafka_partition, kafka_offset,
			key, payload, headers, error, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, left($10, 2000), $11)`,
			d.EventID, d.EventType, d.ContactID, d.Topic, d.Partition, d.Offset, d.Key, d.Payload, h, d.Error, d.Attempts); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE webhook_event_state SET status = 'dead', dead_at = now(), last_error = left($2, 2000), attempts = $3
			WHERE `+eventStateByID, d.EventID, d.Error, d.Attempts)
		return err
	}))
}

// DeadLettered reports whether the Kafka record at topic, partition and
// offset, carrying eventID, was dead-lettered already (the index of
// migration 00019 finds it). The event id guards against a topic that was
// recreated and numbers its records from zero again.
func (s *Store) DeadLettered(ctx context.Context, topic string, partition int32, offset int64, eventID string) (bool, error) {
	var found bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM dead_letters
		WHERE kafka_offset = $3 AND kafka_partition = $2 AND topic = $1 AND event_id = $4)`,
		topic, partition, offset, eventID).Scan(&found)
	return found, translate("dead letter lookup", err)
}

// DeadLetterFilter selects dead letters: by id, by event type, only those
// never replayed, or all. Limit and Before page a list (newest first; only
// ids below Before); replays take every dead letter selected.
type DeadLetterFilter struct {
	ID          int64
	EventType   string
	NotReplayed bool
	Limit       int
	Before      int64
}

const deadLetterCols = `id, event_id, event_type, coalesce(contact_id, ''), topic, kafka_partition, kafka_offset, key, payload,
	headers, error, attempts, created_at, replay_count, replayed_at`

func scanDeadLetter(r pgx.CollectableRow) (DeadLetter, error) {
	var d DeadLetter
	var h []byte
	err := r.Scan(&d.ID, &d.EventID, &d.EventType, &d.ContactID, &d.Topic, &d.Partition, &d.Offset, &d.Key, &d.Payload,
		&h, &d.Error, &d.Attempts, &d.CreatedAt, &d.ReplayCount, &d.ReplayedAt)
	if err == nil {
		err = json.Unmarshal(h, &d.Headers)
	}
	return d, err
}

// where is the WHERE clause of the filters f sets, and its arguments;
// only the filters given are in it, so that PostgreSQL can use their
// indexes (migration 00018). before adds "id < f.Before".
func (f DeadLetterFilter) where(before bool) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.ID != 0 {
		add("id = $%d", f.ID)
	}
	if f.EventType != "" {
		add("event_type = $%d", f.EventType)
	}
	if f.NotReplayed {
		conds = append(conds, "replay_count = 0")
	}
	if before && f.Before != 0 {
		add("id < $%d", f.Before)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// DeadLetters lists dead letters, newest first.
func (s *Store) DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	where, args := f.where(true)
	args = append(args, f.Limit)
	rows, err := s.pool.Query(ctx, `SELECT `+deadLetterCols+` FROM dead_letters`+where+
		` ORDER BY id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, translate("list dead letters", err)
	}
	out, err := pgx.CollectRows(rows, scanDeadLetter)
	return out, translate("list dead letters", err)
}

// ReplayDeadLetters queues the selected dead letters for processing again:
// each goes back to its original topic through the outbox (so it takes the
// same idempotent path as any event) and its webhook event back to
// received. It returns how many it queued.
func (s *Store) ReplayDeadLetters(ctx context.Context, f DeadLetterFilter) (int, error) {
	var n int
	where, args := f.where(false)
	err := s.pool.QueryRow(ctx, `WITH picked AS (
			UPDATE dead_letters SET replay_count = replay_count + 1, replayed_at = now()`+where+`
			RETURNING event_id, topic, key, payload, headers
		), queued AS (
			INSERT INTO outbox (topic, key, payload, headers)
			SELECT topic, key, payload, headers - 'error' - 'attempts' FROM picked
		), reset AS (
			UPDATE webhook_event_state SET status = 'received', last_error = NULL
			WHERE id IN (SELECT r.id FROM webhook_receipts r JOIN picked USING (event_id))
		)
		SELECT count(*), pg_notify('`+OutboxChannel+`', '') FROM picked`, args...).Scan(&n, new(any))
	return n, translate("replay dead letters", err)
}
