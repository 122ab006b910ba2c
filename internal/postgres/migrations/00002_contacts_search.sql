-- +goose Up
-- Case-insensitive substring search over name, email and company (SPEC §6)
-- served by a trigram index on the same expression the list query uses.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX contacts_search_idx ON contacts
    USING gin ((first_name || ' ' || last_name || ' ' || email || ' ' || company) gin_trgm_ops);
CREATE INDEX contacts_first_name_idx ON contacts (first_name, id);
CREATE INDEX contacts_last_name_idx ON contacts (last_name, id);
CREATE INDEX contacts_email_idx ON contacts (email, id);
CREATE INDEX contacts_company_idx ON contacts (company, id);

-- +goose Down
DROP INDEX contacts_company_idx;
DROP INDEX contacts_email_idx;
DROP INDEX contacts_last_name_idx;
DROP INDEX contacts_first_name_idx;
DROP INDEX contacts_search_idx;
