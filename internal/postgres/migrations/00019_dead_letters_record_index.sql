-- +goose NO TRANSACTION
-- +goose Up
-- A record the consumer dead-lettered is settled: when Kafka delivers it
-- again (the consumer stopped before committing its offset, or an
-- operator rewound the group), the consumer finds its dead letter by the
-- record's place — topic, partition, offset, and the event id, in case a
-- topic was recreated and its offsets begin again — and moves on instead
-- of retrying it and dead-lettering it a second time (DECISIONS.md #119).
-- That lookup is made for every record of a batch that failed, so it must
-- not walk the dead letters, which reach a million in the incidents they
-- are for. Built concurrently, so writers do not wait; a build that failed
-- leaves an invalid index, which the next run drops and builds again.
DROP INDEX CONCURRENTLY IF EXISTS dead_letters_record_idx;
CREATE INDEX CONCURRENTLY dead_letters_record_idx ON dead_letters (kafka_offset, kafka_partition, topic);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS dead_letters_record_idx;
