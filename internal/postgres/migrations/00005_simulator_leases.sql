-- +goose Up
-- A delivery being attempted is 'delivering' with next_attempt_at as its
-- lease: a worker that dies mid-attempt leaves a row that becomes due again
-- when the lease runs out. The due index covers both states.
DROP INDEX simulator_deliveries_due_idx;
CREATE INDEX simulator_deliveries_due_idx ON simulator_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'delivering');
CREATE INDEX simulator_deliveries_created_idx ON simulator_deliveries (created_at DESC, id DESC);
ALTER TABLE simulator_deliveries ADD COLUMN source text NOT NULL DEFAULT 'api'
    CHECK (source IN ('api', 'auto-trigger'));

-- +goose Down
ALTER TABLE simulator_deliveries DROP COLUMN source;
DROP INDEX simulator_deliveries_created_idx;
DROP INDEX simulator_deliveries_due_idx;
CREATE INDEX simulator_deliveries_due_idx ON simulator_deliveries (next_attempt_at) WHERE status = 'pending';
