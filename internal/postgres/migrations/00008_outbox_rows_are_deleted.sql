-- +goose Up
-- The relay deletes an outbox row in the transaction that records its
-- publication, so every row in the table is unpublished: published_at was
-- never set, and the partial index on unpublished ids held exactly the
-- primary key's entries. Dropping both saves an index insertion for every
-- webhook and every contact change.
DROP INDEX outbox_unpublished_idx;
ALTER TABLE outbox DROP COLUMN published_at;

-- +goose Down
ALTER TABLE outbox ADD COLUMN published_at timestamptz;
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
