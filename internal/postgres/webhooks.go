package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acmecrm/acmecrm"
)

// Outcomes of recording a webhook.
const (
	OutcomeAccepted  = "accepted"
	OutcomeDuplicate = "duplicate"
	OutcomeIgnored   = "ignored"
)

// IncomingEvent is one verified, parsed webhook to record.
type IncomingEvent struct {
	Event    acmecrm.Event
	Scheme   string
	SecretID string
	Headers  map[string]string
	RawBody  []byte
	// TraceParent is the W3C trace context of the request, stored with the
	// outbox row so that the trace continues through Kafka ("" for none).
	TraceParent string

	// message and headers are Event and Headers as JSON, once Prepare ran.
	message, headers []byte
}

// Prepare encodes the event and its headers as they will be stored. The
// batcher calls it in the request's goroutine, so that the one goroutine
// writing a batch does not encode every event of it in turn; RecordEvents
// encodes whatever was not prepared.
func (in *IncomingEvent) Prepare() error {
	if in.message != nil {
		return nil
	}
	msg, err := json.Marshal(in.Event)
	if err != nil {
		return err
	}
	h, err := json.Marshal(in.Headers)
	if err != nil {
		return err
	}
	in.message, in.headers = msg, h
	return nil
}

// RecordEvents stores a batch of webhooks — the raw body, the headers, the
// normalised event and, for known event types, an outbox row for topic —
// in ONE statement (one transaction, one commit). It returns each event's
// outcome, index for index: accepted, duplicate (its event id was already
// stored, or appears earlier in the batch; no second outbox row) or ignored
// (unknown event type: stored, never published).
func (s *Store) RecordEvents(ctx context.Context, topic string, evs []IncomingEvent) ([]string, error) {
	outcomes := make([]string, len(evs))
	n := 0
	first := make(map[string]int, len(evs))
	strs := func() []string { return make([]string, 0, len(evs)) }
	blobs := func() [][]byte { return make([][]byte, 0, len(evs)) }
	ids, types, contacts, statuses, schemes, secrets, traceparents := strs(), strs(), strs(), strs(), strs(), strs(), strs()
	occurred, received := make([]time.Time, 0, len(evs)), make([]time.Time, 0, len(evs))
	headers, bodies, messages := blobs(), blobs(), blobs()
	index := make([]int, 0, len(evs))
	for i := range evs {
		in := &evs[i]
		if _, dup := first[in.Event.EventID]; dup {
			outcomes[i] = OutcomeDuplicate
			continue
		}
		first[in.Event.EventID] = i
		status := "received"
		outcomes[i] = OutcomeAccepted
		if !acmecrm.KnownEventType(in.Event.EventType) {
			status, outcomes[i] = "ignored", OutcomeIgnored
		}
		if err := in.Prepare(); err != nil {
			return nil, err
		}
		ids = append(ids, in.Event.EventID)
		types = append(types, in.Event.EventType)
		contacts = append(contacts, in.Event.ContactID)
		occurred = append(occurred, in.Event.OccurredAt)
		received = append(received, in.Event.ReceivedAt)
		statuses = append(statuses, status)
		schemes = append(schemes, in.Scheme)
		secrets = append(secrets, in.SecretID)
		headers = append(headers, in.headers)
		traceparents = append(traceparents, in.TraceParent)
		bodies = append(bodies, in.RawBody)
		messages = append(messages, in.message)
		index = append(index, i)
		n++
	}
	rows, err := s.pool.Query(ctx, `
		WITH input AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
			                     $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::bytea[], $11::bytea[], $13::text[])
			         WITH ORDINALITY AS t(event_id, event_type, contact_id, occurred_at, received_at,
			                              status, scheme, secret_id, headers, raw_body, message, traceparent, ord)
		), ins AS (
			INSERT INTO webhook_receipts (event_id, event_type, contact_id, occurred_at, received_at,
			                              scheme, secret_id, headers, raw_body, payload)
			SELECT event_id, event_type, contact_id, occurred_at, received_at,
			       scheme, secret_id, headers, raw_body, message
			FROM input ORDER BY ord
			ON CONFLICT (event_id) DO NOTHING
			RETURNING id, event_id
		), st AS (
			INSERT INTO webhook_event_state (id, status, event_type)
			SELECT ins.id, input.status, input.event_type FROM ins JOIN input USING (event_id)
			RETURNING id, status
		), ob AS (
			INSERT INTO outbox (topic, key, payload, headers)
			SELECT $12, input.contact_id, input.message,
			       jsonb_build_object('event-id', input.event_id, 'event-type', input.event_type, 'content-type', 'application/json')
			       || CASE WHEN input.traceparent <> '' THEN jsonb_build_object('traceparent', input.traceparent) ELSE '{}' END
			FROM ins JOIN input USING (event_id) JOIN st USING (id)
			WHERE st.status = 'received'
			ORDER BY input.ord
		), wake AS (
			-- One NOTIFY per batch wakes the relay at commit.
			SELECT pg_notify('`+OutboxChannel+`', '') WHERE EXISTS (SELECT 1 FROM st WHERE status = 'received')
		)
		SELECT event_id FROM ins LEFT JOIN wake ON true`,
		ids, types, contacts, occurred, received, statuses, schemes, secrets, headers, bodies, messages, topic, traceparents)
	if err != nil {
		return nil, translate("record events", err)
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate("record events", err)
	}
	stored := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		stored[id] = true
	}
	for j, i := range index {
		if !stored[ids[j]] {
			outcomes[i] = OutcomeDuplicate
		}
	}
	return outcomes, nil
}

// WebhookEvent is a stored webhook with its life so far.
type WebhookEvent struct {
	ID          int64             `json:"-"`
	EventID     string            `json:"eventId"`
	EventType   string            `json:"eventType"`
	ContactID   string            `json:"contactId"`
	Status      string            `json:"status"`
	Scheme      string            `json:"scheme"`
	SecretID    string            `json:"secretId"`
	OccurredAt  *time.Time        `json:"occurredAt"`
	ReceivedAt  time.Time         `json:"receivedAt"`
	PublishedAt *time.Time        `json:"publishedAt"`
	ProcessedAt *time.Time        `json:"processedAt"`
	FailedAt    *time.Time        `json:"failedAt"`
	DeadAt      *time.Time        `json:"deadAt"`
	Attempts    int               `json:"attempts"`
	LastError   *string           `json:"lastError"`
	Headers     map[string]string `json:"headers,omitempty"`
	RawBody     []byte            `json:"-"`
	Payload     json.RawMessage   `json:"payload,omitempty"`
}

const webhookCols = `id, event_id, event_type, coalesce(contact_id, ''), status, scheme, secret_id, occurred_at, received_at,
	published_at, processed_at, failed_at, dead_at, attempts, last_error`

func scanWebhook(row pgx.Row, extra ...any) (WebhookEvent, error) {
	var e WebhookEvent
	dest := append([]any{&e.ID, &e.EventID, &e.EventType, &e.ContactID, &e.Status, &e.Scheme, &e.SecretID, &e.OccurredAt,
		&e.ReceivedAt, &e.PublishedAt, &e.ProcessedAt, &e.FailedAt, &e.DeadAt, &e.Attempts, &e.LastError}, extra...)
	err := row.Scan(dest...)
	return e, err
}

// WebhookQuery filters the event audit list. Before is a cursor: only
// events with a smaller internal id (older) are listed. Window, when not 0,
// bounds the ids one page looks at (below Before, or below the newest
// event): for filters no index serves, so that a page costs the same
// whatever the log's size and however rare the matches.
type WebhookQuery struct {
	Status, Type, ContactID string
	Pending                 bool // received or published, not yet processed
	Before                  int64
	Limit                   int
	Window                  int64
}

// WebhookEvents lists stored webhooks, newest first, and the cursor of the
// next page (0 when there is none). With a Window a page may hold fewer
// than Limit events, and still be followed by another.
func (s *Store) WebhookEvents(ctx context.Context, q WebhookQuery) ([]WebhookEvent, int64, error) {
	var hi, lo int64
	if q.Window > 0 {
		hi = q.Before
		if hi == 0 {
			if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) + 1 FROM webhook_receipts`).Scan(&hi); err != nil {
				return nil, 0, translate("list webhooks", err)
			}
		}
		lo = max(hi-q.Window, 1)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+webhookCols+` FROM webhook_events
		WHERE ($1 = '' OR status = $1) AND ($2 = '' OR event_type = $2) AND ($3 = '' OR contact_id = $3)
		  AND (NOT $4 OR status IN ('received', 'published', 'failed'))
		  AND ($5 = 0 OR id < $5) AND ($7 = 0 OR id >= $7)
		ORDER BY id DESC LIMIT $6`, q.Status, q.Type, q.ContactID, q.Pending, q.Before, q.Limit, lo)
	if err != nil {
		return nil, 0, translate("list webhooks", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (WebhookEvent, error) { return scanWebhook(r) })
	if err != nil {
		return nil, 0, translate("list webhooks", err)
	}
	var next int64
	switch {
	case len(evs) == q.Limit:
		next = evs[len(evs)-1].ID
	case lo > 1:
		// The window ended before the page filled: go on below it, if
		// anything older is stored.
		var older bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_receipts WHERE id < $1)`, lo).Scan(&older); err != nil {
			return nil, 0, translate("list webhooks", err)
		}
		if older {
			next = lo
		}
	}
	return evs, next, nil
}

// WebhookEvent returns one stored webhook with its raw body, headers and
// normalised payload.
func (s *Store) WebhookEvent(ctx context.Context, eventID string) (WebhookEvent, error) {
	var headers, raw, payload []byte
	row := s.pool.QueryRow(ctx, `SELECT `+webhookCols+`, headers, raw_body, coalesce(payload, 'null') FROM webhook_events WHERE event_id = $1`, eventID)
	e, err := scanWebhook(row, &headers, &raw, &payload)
	e.RawBody, e.Payload = raw, payload
	if errors.Is(err, pgx.ErrNoRows) {
		return e, notFound("webhook event")
	}
	if err != nil {
		return e, translate("get webhook", err)
	}
	if err := json.Unmarshal(headers, &e.Headers); err != nil {
		return e, fmt.Errorf("webhook headers: %w", err)
	}
	return e, nil
}
