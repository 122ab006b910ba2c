-- +goose Up
-- Search folds case beyond ASCII. ILIKE and lower() fold case by the
-- database's locale, and under the C locale (the local run's, and a common
-- choice elsewhere) only A–Z: "élodie" did not find "Élodie", nor "ÆRØ"
-- "Ærø". contact_search_fold lowercases with ICU's root locale where this
-- PostgreSQL has ICU (Debian's, the PGDG builds, the official images), else
-- with the database's own locale, as before. The folded text is a stored
-- generated column, and the trigram index covers it; the list query folds
-- its pattern with the same function.
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu') THEN
        EXECUTE $f$CREATE FUNCTION contact_search_fold(t text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
            AS 'SELECT lower(t COLLATE "und-x-icu")'$f$;
    ELSE
        EXECUTE $f$CREATE FUNCTION contact_search_fold(t text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
            AS 'SELECT lower(t)'$f$;
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE contacts ADD COLUMN search_text text
    GENERATED ALWAYS AS (contact_search_fold(first_name || ' ' || last_name || ' ' || email || ' ' || company)) STORED;
DROP INDEX contacts_search_idx;
CREATE INDEX contacts_search_idx ON contacts USING gin (search_text gin_trgm_ops);

-- +goose Down
DROP INDEX contacts_search_idx;
ALTER TABLE contacts DROP COLUMN search_text;
DROP FUNCTION contact_search_fold(text);
CREATE INDEX contacts_search_idx ON contacts
    USING gin ((first_name || ' ' || last_name || ' ' || email || ' ' || company) gin_trgm_ops);
