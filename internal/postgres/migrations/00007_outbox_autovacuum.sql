-- +goose Up
-- The outbox is a queue: every row is deleted soon after it is written.
-- Vacuum it after a fixed number of dead rows (not a fraction of a table
-- that is nearly empty) and without cost-based throttling, so that its
-- dead rows do not pile up between autovacuum rounds.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0);

-- +goose Down
ALTER TABLE outbox RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_insert_threshold, autovacuum_vacuum_cost_delay);
