-- +goose Up
-- A webhook is written once and its processing state several times (the
-- relay marks it published, the consumer processed, failed or dead). With
-- both in one table every state change copied the whole ~1.5 KB row (raw
-- body, payload, headers) and wrote all four of its index entries again.
-- The receipt is now immutable (webhook_receipts) and the state lives in a
-- narrow row of its own (webhook_event_state, same id); the view
-- webhook_events joins them, so queries that read the event log (the audit
-- API, operators' SQL) see the same columns as before.
ALTER TABLE webhook_events RENAME TO webhook_receipts;
ALTER INDEX webhook_events_pkey RENAME TO webhook_receipts_pkey;
ALTER INDEX webhook_events_event_id_key RENAME TO webhook_receipts_event_id_key;
ALTER INDEX webhook_events_contact_idx RENAME TO webhook_receipts_contact_idx;

CREATE TABLE webhook_event_state (
    id            bigint PRIMARY KEY,  -- = webhook_receipts.id, written in the same statement
    status        text NOT NULL CHECK (status IN ('received', 'published', 'processed', 'failed', 'dead', 'ignored')),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    published_at  timestamptz,
    processed_at  timestamptz,
    failed_at     timestamptz,
    dead_at       timestamptz
);
INSERT INTO webhook_event_state (id, status, attempts, last_error, published_at, processed_at, failed_at, dead_at)
SELECT id, status, attempts, last_error, published_at, processed_at, failed_at, dead_at FROM webhook_receipts;
CREATE INDEX webhook_event_state_status_idx ON webhook_event_state (status, id);

ALTER TABLE webhook_receipts DROP COLUMN status, DROP COLUMN attempts, DROP COLUMN last_error,
    DROP COLUMN published_at, DROP COLUMN processed_at, DROP COLUMN failed_at, DROP COLUMN dead_at;

CREATE VIEW webhook_events AS
SELECT r.id, r.event_id, r.event_type, r.contact_id, r.occurred_at, r.received_at,
       s.status, r.scheme, r.secret_id, r.headers, r.raw_body, r.payload,
       s.attempts, s.last_error, s.published_at, s.processed_at, s.failed_at, s.dead_at
FROM webhook_receipts r JOIN webhook_event_state s USING (id);

-- +goose Down
DROP VIEW webhook_events;
ALTER TABLE webhook_receipts
    ADD COLUMN status text NOT NULL DEFAULT 'received'
        CHECK (status IN ('received', 'published', 'processed', 'failed', 'dead', 'ignored')),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error text,
    ADD COLUMN published_at timestamptz,
    ADD COLUMN processed_at timestamptz,
    ADD COLUMN failed_at timestamptz,
    ADD COLUMN dead_at timestamptz;
UPDATE webhook_receipts r SET status = s.status, attempts = s.attempts, last_error = s.last_error,
    published_at = s.published_at, processed_at = s.processed_at, failed_at = s.failed_at, dead_at = s.dead_at
FROM webhook_event_state s WHERE s.id = r.id;
ALTER TABLE webhook_receipts ALTER COLUMN status DROP DEFAULT;
DROP TABLE webhook_event_state;
ALTER INDEX webhook_receipts_contact_idx RENAME TO webhook_events_contact_idx;
ALTER INDEX webhook_receipts_event_id_key RENAME TO webhook_events_event_id_key;
ALTER INDEX webhook_receipts_pkey RENAME TO webhook_events_pkey;
ALTER TABLE webhook_receipts RENAME TO webhook_events;
CREATE INDEX webhook_events_status_idx ON webhook_events (status, id);
