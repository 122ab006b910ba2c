-- +goose Up
-- The event tracking (GET /api/metrics/events) counted the webhooks by
-- type and status with one pass over webhook_events, a join of the narrow
-- state rows with the ~1 KB receipts: ~1 s of three processes per million
-- webhooks kept, so with the default 30 days of retention it grew past the
-- request timeout. The figures are now kept as they change.
--
-- webhook_event_counts holds signed deltas: a statement that inserts,
-- updates or deletes state rows adds, through the statement-level trigger
-- below, one row per (event type, status) it changed. Nothing is ever
-- updated in place, so concurrent writers (two ingest writers, the relay,
-- the consumer, retention) never wait for each other's row locks; the
-- figures are sum(n) per group, and CompactEventCounts folds the deltas
-- into one row per group from time to time. Being a trigger, it counts
-- every writer: this build, an older build still running during a rolling
-- upgrade, an operator's SQL.
--
-- The state row now carries its event type, so that the trigger needs
-- only the rows it is given: retention deletes a receipt and its state in
-- one statement, after which the receipt cannot be read. An older build
-- inserts state rows without it; a row trigger fills it from the receipt.
--
-- This migration writes every state row once (the event type) and counts
-- them: a few seconds per million webhooks kept, during which writers of
-- webhook events wait.
ALTER TABLE webhook_event_state ADD COLUMN event_type text;
UPDATE webhook_event_state s SET event_type = r.event_type FROM webhook_receipts r WHERE r.id = s.id;

CREATE TABLE webhook_event_counts (
    event_type        text NOT NULL,
    status            text NOT NULL,
    n                 bigint NOT NULL,
    last_received_at  timestamptz,  -- the latest insert among the delta's rows
    last_processed_at timestamptz   -- the latest processed_at among them
);
ALTER TABLE webhook_event_counts SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0);
INSERT INTO webhook_event_counts (event_type, status, n, last_received_at, last_processed_at)
SELECT s.event_type, s.status, count(*), max(r.received_at), max(s.processed_at)
FROM webhook_event_state s JOIN webhook_receipts r USING (id) GROUP BY 1, 2;

-- +goose StatementBegin
CREATE FUNCTION webhook_event_state_type() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT r.event_type INTO NEW.event_type FROM webhook_receipts r WHERE r.id = NEW.id;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER webhook_event_state_type BEFORE INSERT ON webhook_event_state
    FOR EACH ROW WHEN (NEW.event_type IS NULL) EXECUTE FUNCTION webhook_event_state_type();

-- +goose StatementBegin
CREATE FUNCTION webhook_event_counts_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO webhook_event_counts (event_type, status, n, last_received_at, last_processed_at)
        SELECT coalesce(event_type, ''), status, count(*), now(), max(processed_at) FROM new_rows GROUP BY 1, 2;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO webhook_event_counts (event_type, status, n, last_processed_at)
        SELECT event_type, status, sum(d), max(processed_at) FROM (
            SELECT coalesce(event_type, '') AS event_type, status, -1 AS d, NULL::timestamptz AS processed_at FROM old_rows
            UNION ALL
            SELECT coalesce(event_type, ''), status, 1, processed_at FROM new_rows
        ) d GROUP BY 1, 2 HAVING sum(d) <> 0;
    ELSE
        INSERT INTO webhook_event_counts (event_type, status, n)
        SELECT coalesce(event_type, ''), status, -count(*) FROM old_rows GROUP BY 1, 2;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER webhook_event_counts_insert AFTER INSERT ON webhook_event_state
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION webhook_event_counts_delta();
CREATE TRIGGER webhook_event_counts_update AFTER UPDATE ON webhook_event_state
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION webhook_event_counts_delta();
CREATE TRIGGER webhook_event_counts_delete AFTER DELETE ON webhook_event_state
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION webhook_event_counts_delta();

-- +goose Down
DROP TRIGGER webhook_event_counts_delete ON webhook_event_state;
DROP TRIGGER webhook_event_counts_update ON webhook_event_state;
DROP TRIGGER webhook_event_counts_insert ON webhook_event_state;
DROP FUNCTION webhook_event_counts_delta();
DROP TRIGGER webhook_event_state_type ON webhook_event_state;
DROP FUNCTION webhook_event_state_type();
DROP TABLE webhook_event_counts;
ALTER TABLE webhook_event_state DROP COLUMN event_type;
