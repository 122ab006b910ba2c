-- +goose Up
-- The outbox backlog (acmecrm_outbox_backlog_rows at every /metrics
-- scrape of every instance, and GET /api/metrics/events) was a count(*)
-- and a min(created_at) of the whole outbox: 0.33 s of both cores at
-- 2,000,000 rows. The outbox is small while Kafka takes records, but
-- during an outage it grows with every webhook — and past the scrape's
-- 2 s timeout the backlog gauges vanish (scrape_success 0) just when
-- AcmeOutboxStuck should fire. The rows per topic are now kept as they
-- change, the way migrations 00010 and 00012 keep the event counts and
-- the contact totals; the oldest row of a topic is found from the front
-- of the primary key (the relay publishes in id order).
--
-- outbox_counts holds signed deltas per topic: an insert or delete
-- statement adds one row per topic it changed (the receiver's batches,
-- the relay's published batches: one row each), an update that moves a
-- row to another topic adds two, TRUNCATE empties it. Rows are only ever
-- inserted, so writers never wait for each other's row locks; a topic's
-- backlog is sum(n), and CompactCounts folds the deltas from time to time.
--
-- Writers of the outbox wait while this migration counts its rows.
LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE outbox_counts (
    topic text NOT NULL,
    n     bigint NOT NULL
);
ALTER TABLE outbox_counts SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0);
INSERT INTO outbox_counts (topic, n) SELECT topic, count(*) FROM outbox GROUP BY 1;

-- +goose StatementBegin
CREATE FUNCTION outbox_counts_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO outbox_counts (topic, n) SELECT topic, count(*) FROM new_rows GROUP BY 1;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO outbox_counts (topic, n) SELECT topic, -count(*) FROM old_rows GROUP BY 1;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO outbox_counts (topic, n) VALUES (OLD.topic, -1), (NEW.topic, 1);
    ELSE
        -- TRUNCATE outbox: as for contact_counts (00012), TRUNCATE holds
        -- the table alone and waits for a fold in progress.
        TRUNCATE outbox_counts;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_counts_insert AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION outbox_counts_rows();
CREATE TRIGGER outbox_counts_delete AFTER DELETE ON outbox
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION outbox_counts_rows();
CREATE TRIGGER outbox_counts_truncate AFTER TRUNCATE ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_counts_rows();
CREATE TRIGGER outbox_counts_update AFTER UPDATE ON outbox FOR EACH ROW
    WHEN (OLD.topic IS DISTINCT FROM NEW.topic)
    EXECUTE FUNCTION outbox_counts_rows();

-- +goose Down
DROP TRIGGER outbox_counts_update ON outbox;
DROP TRIGGER outbox_counts_truncate ON outbox;
DROP TRIGGER outbox_counts_delete ON outbox;
DROP TRIGGER outbox_counts_insert ON outbox;
DROP FUNCTION outbox_counts_rows();
DROP TABLE outbox_counts;
