-- +goose Up
-- The event counts (migration 00010) followed every insert, update and
-- delete of the webhook state rows, but not TRUNCATE, which fires no
-- trigger of those kinds: an operator who emptied the event log (TRUNCATE
-- webhook_receipts, webhook_event_state) kept counts of webhooks that no
-- longer existed, for good. TRUNCATE now adds the negation of every
-- group's count. Unlike contact_counts (00012), the rows are not emptied:
-- they also hold the latest received and processed times, which are the
-- latest ever, pruned or not. No state row changes meanwhile (TRUNCATE
-- holds the table alone), and a fold in progress sums what it deletes, so
-- the deltas stay exact whichever commits first.
-- +goose StatementBegin
CREATE FUNCTION webhook_event_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_event_counts (event_type, status, n)
    SELECT event_type, status, -sum(n) FROM webhook_event_counts GROUP BY 1, 2 HAVING sum(n) <> 0;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER webhook_event_counts_truncate AFTER TRUNCATE ON webhook_event_state
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_event_counts_truncated();

-- +goose Down
DROP TRIGGER webhook_event_counts_truncate ON webhook_event_state;
DROP FUNCTION webhook_event_counts_truncated();
