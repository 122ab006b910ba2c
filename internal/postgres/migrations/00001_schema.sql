-- +goose Up
-- The schema for everything SPEC.md describes. Later migrations add to it;
-- this file is never edited once released.

-- Users of the REST API (SPEC §5). Passwords are stored as bcrypt/argon2id
-- hashes only.
CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 255),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'user')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The local copy of each contact (SPEC §6). (source, source_id) identifies a
-- CRM contact; last_event_at/last_event_id are the ordering guard of SPEC
-- §2.5: a CRM event is applied only if it is newer than these.
CREATE TABLE contacts (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    first_name     text NOT NULL DEFAULT '',
    last_name      text NOT NULL DEFAULT '',
    email          text NOT NULL DEFAULT '',
    phone          text NOT NULL DEFAULT '',
    company        text NOT NULL DEFAULT '',
    title          text NOT NULL DEFAULT '',
    street         text NOT NULL DEFAULT '',
    city           text NOT NULL DEFAULT '',
    state          text NOT NULL DEFAULT '',
    zip_code       text NOT NULL DEFAULT '',
    country        text NOT NULL DEFAULT '',
    notes          text NOT NULL DEFAULT '',
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'lead', 'deleted')),
    tags           text[] NOT NULL DEFAULT '{}',
    custom_fields  jsonb NOT NULL DEFAULT '{}',
    source         text NOT NULL,
    source_id      text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    version        bigint NOT NULL DEFAULT 1,
    last_event_at  timestamptz,
    last_event_id  text,
    UNIQUE (source, source_id)
);
CREATE INDEX contacts_created_at_idx ON contacts (created_at, id);
CREATE INDEX contacts_updated_at_idx ON contacts (updated_at, id);

-- Every webhook we acknowledged (SPEC §3): the raw body byte-exact, the
-- headers that matter, the normalised event, and its life: received →
-- published → processed | failed | dead, or ignored.
CREATE TABLE webhook_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      text NOT NULL UNIQUE CHECK (length(event_id) BETWEEN 1 AND 255),
    event_type    text NOT NULL,
    contact_id    text,
    occurred_at   timestamptz,
    received_at   timestamptz NOT NULL DEFAULT now(),
    status        text NOT NULL CHECK (status IN ('received', 'published', 'processed', 'failed', 'dead', 'ignored')),
    scheme        text NOT NULL DEFAULT '',
    secret_id     text NOT NULL DEFAULT '',
    headers       jsonb NOT NULL DEFAULT '{}',
    raw_body      bytea NOT NULL,
    payload       jsonb,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    published_at  timestamptz,
    processed_at  timestamptz,
    failed_at     timestamptz,
    dead_at       timestamptz
);
CREATE INDEX webhook_events_status_idx ON webhook_events (status, id);
CREATE INDEX webhook_events_contact_idx ON webhook_events (contact_id, id);

-- The transactional outbox (SPEC §2.2): rows written in the same transaction
-- as the change they announce, published to Kafka afterwards by the relay.
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic         text NOT NULL,
    key           text NOT NULL,
    payload       bytea NOT NULL,
    headers       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

-- Processed-event markers (SPEC §2.3), written in the same transaction as
-- the contact change, so a redelivered event has no further effect.
CREATE TABLE processed_events (
    event_id      text PRIMARY KEY,
    contact_id    uuid,
    outcome       text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now()
);

-- Events that failed processing after every retry (SPEC §2.6), replayable.
CREATE TABLE dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         text NOT NULL,
    event_type       text NOT NULL DEFAULT '',
    contact_id       text,
    topic            text NOT NULL,
    kafka_partition  integer NOT NULL,
    kafka_offset     bigint NOT NULL,
    key              text NOT NULL DEFAULT '',
    payload          bytea NOT NULL,
    headers          jsonb NOT NULL DEFAULT '{}',
    error            text NOT NULL,
    attempts         integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    replay_count     integer NOT NULL DEFAULT 0,
    replayed_at      timestamptz
);
CREATE INDEX dead_letters_event_idx ON dead_letters (event_id);

-- The simulator's durable deliveries and their attempts (SPEC §7).
CREATE TABLE simulator_deliveries (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id                text NOT NULL,
    event_type              text NOT NULL,
    target_url              text NOT NULL,
    body                    bytea NOT NULL,
    status                  text NOT NULL CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts                integer NOT NULL DEFAULT 0,
    max_attempts            integer NOT NULL,
    next_attempt_at         timestamptz NOT NULL DEFAULT now(),
    bad_signature           boolean NOT NULL DEFAULT false,
    timestamp_skew_seconds  integer NOT NULL DEFAULT 0,
    last_status_code        integer,
    last_error              text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    delivered_at            timestamptz
);
CREATE INDEX simulator_deliveries_due_idx ON simulator_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX simulator_deliveries_event_idx ON simulator_deliveries (event_id);

CREATE TABLE simulator_attempts (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id       uuid NOT NULL REFERENCES simulator_deliveries (id) ON DELETE CASCADE,
    attempt           integer NOT NULL,
    started_at        timestamptz NOT NULL,
    status_code       integer,
    latency_ms        integer NOT NULL,
    error             text,
    response_excerpt  text,
    UNIQUE (delivery_id, attempt)
);

-- +goose Down
DROP TABLE simulator_attempts;
DROP TABLE simulator_deliveries;
DROP TABLE dead_letters;
DROP TABLE processed_events;
DROP TABLE outbox;
DROP TABLE webhook_events;
DROP TABLE contacts;
DROP TABLE users;
