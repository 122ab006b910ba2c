-- +goose NO TRANSACTION
-- +goose Up
-- The event tracking's recent errors (GET /api/metrics/events) are the
-- latest failed and dead webhooks. Found through the status index, they
-- were all read and sorted to keep twenty: 0.83 s at 125,000 failed or dead
-- webhooks, growing with them, so after a large outage the endpoint slowed
-- as operators turned to it. This index holds only those webhooks, in the
-- endpoint's order, so it reads twenty. It is built concurrently: writers
-- of webhook events do not wait for it. A build that failed leaves an
-- invalid index, which the next run drops and builds again.
DROP INDEX CONCURRENTLY IF EXISTS webhook_event_state_errors_idx;
CREATE INDEX CONCURRENTLY webhook_event_state_errors_idx ON webhook_event_state ((coalesce(dead_at, failed_at)) DESC NULLS LAST)
    WHERE status IN ('failed', 'dead') AND last_error IS NOT NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS webhook_event_state_errors_idx;
