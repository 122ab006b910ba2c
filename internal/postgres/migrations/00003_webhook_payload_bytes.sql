-- +goose Up
-- The normalised event is stored as the exact bytes published to Kafka:
-- parsing it into jsonb on every insert cost more than anything else in
-- the receiver's statement, and nothing queries inside it.
ALTER TABLE webhook_events ALTER COLUMN payload TYPE bytea USING convert_to(payload::text, 'UTF8');

-- +goose Down
ALTER TABLE webhook_events ALTER COLUMN payload TYPE jsonb USING convert_from(payload, 'UTF8')::jsonb;
