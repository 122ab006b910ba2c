-- +goose Up
-- Leave room in each page so that a CRM event that changes no indexed
-- column updates its row in place (a HOT update, no index writes).
ALTER TABLE contacts SET (fillfactor = 85);

-- +goose Down
ALTER TABLE contacts RESET (fillfactor);
