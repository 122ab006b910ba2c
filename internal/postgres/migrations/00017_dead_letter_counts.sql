-- +goose Up
-- The event tracking's backlog.deadLetters (dead letters not replayed)
-- was a count(*) of dead_letters: 0.2–0.35 s of both cores at 1,000,000,
-- read at every computation of GET /api/metrics/events. Dead letters
-- pile up in exactly the incidents that dashboard is for (a consumer
-- that refuses every event dead-letters each after its retries), and
-- those not replayed are kept whatever their age. They are now kept as
-- they change, the way migrations 00010, 00012 and 00014 keep their
-- counts: dead_letter_counts holds signed deltas per (event type,
-- replayed or not), inserted by statement triggers (a consumer's or a
-- relay's dead letter, a replay of any number, retention's deletes: one
-- or two rows each), and folded by CompactCounts.
--
-- Writers of dead letters wait while this migration counts them (about
-- 0.2 s per million).
LOCK TABLE dead_letters IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE dead_letter_counts (
    event_type text NOT NULL,
    replayed   boolean NOT NULL,
    n          bigint NOT NULL
);
ALTER TABLE dead_letter_counts SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0);
INSERT INTO dead_letter_counts (event_type, replayed, n)
SELECT event_type, replayed_at IS NOT NULL, count(*) FROM dead_letters GROUP BY 1, 2;

-- +goose StatementBegin
CREATE FUNCTION dead_letter_counts_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO dead_letter_counts (event_type, replayed, n)
        SELECT event_type, replayed_at IS NOT NULL, count(*) FROM new_rows GROUP BY 1, 2;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO dead_letter_counts (event_type, replayed, n)
        SELECT event_type, replayed, sum(d) FROM (
            SELECT event_type, replayed_at IS NOT NULL AS replayed, -1 AS d FROM old_rows
            UNION ALL
            SELECT event_type, replayed_at IS NOT NULL, 1 FROM new_rows
        ) d GROUP BY 1, 2 HAVING sum(d) <> 0;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO dead_letter_counts (event_type, replayed, n)
        SELECT event_type, replayed_at IS NOT NULL, -count(*) FROM old_rows GROUP BY 1, 2;
    ELSE
        -- TRUNCATE dead_letters: as for contact_counts (00012).
        TRUNCATE dead_letter_counts;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER dead_letter_counts_insert AFTER INSERT ON dead_letters
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dead_letter_counts_rows();
CREATE TRIGGER dead_letter_counts_update AFTER UPDATE ON dead_letters
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dead_letter_counts_rows();
CREATE TRIGGER dead_letter_counts_delete AFTER DELETE ON dead_letters
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION dead_letter_counts_rows();
CREATE TRIGGER dead_letter_counts_truncate AFTER TRUNCATE ON dead_letters
    FOR EACH STATEMENT EXECUTE FUNCTION dead_letter_counts_rows();

-- +goose Down
DROP TRIGGER dead_letter_counts_truncate ON dead_letters;
DROP TRIGGER dead_letter_counts_delete ON dead_letters;
DROP TRIGGER dead_letter_counts_update ON dead_letters;
DROP TRIGGER dead_letter_counts_insert ON dead_letters;
DROP FUNCTION dead_letter_counts_rows();
DROP TABLE dead_letter_counts;
