package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/acmecrm/acmecrm"
)

// ChangeEvent is the message published on the contacts topic for every API
// change of a contact (SPEC §6), for downstream consumers.
type ChangeEvent struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      acmecrm.Contact `json:"data"`
}

// insertOutboxSQL queues one message; the relay publishes it after the
// transaction commits.
const insertOutboxSQL = `INSERT INTO outbox (topic, key, payload, headers) VALUES ($1, $2, $3, $4)`

// contactChangeArgs are insertOutboxSQL's arguments for the change event of c.
func (s *Store) contactChangeArgs(typ string, c acmecrm.Contact) ([]any, error) {
	ev := ChangeEvent{ID: uuid.NewString(), Type: typ, Timestamp: s.opts.Now().UTC(), Data: c}
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	headers, err := json.Marshal(map[string]string{"event-id": ev.ID, "event-type": typ, "content-type": "application/json"})
	if err != nil {
		return nil, err
	}
	return []any{s.opts.ContactsTopic, c.ID, payload, headers}, nil
}

// queueContactChange writes the change event for c to the outbox in tx.
func (s *Store) queueContactChange(ctx context.Context, tx pgx.Tx, typ string, c acmecrm.Contact) error {
	args, err := s.contactChangeArgs(typ, c)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, insertOutboxSQL, args...); err != nil {
		return fmt.Errorf("insert outbox: %w", err)
	}
	return nil
}
