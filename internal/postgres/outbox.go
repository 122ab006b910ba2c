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

// notifyChannel is the LISTEN/NOTIFY channel the outbox relay waits on.
const notifyChannel = "outbox"

// insertOutbox queues one message in tx. The relay publishes it after the
// transaction commits; a NOTIFY (delivered at commit) wakes the relay.
func insertOutbox(ctx context.Context, tx pgx.Tx, topic, key string, payload []byte, headers map[string]string) error {
	h, err := json.Marshal(headers)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (topic, key, payload, headers) VALUES ($1, $2, $3, $4)`, topic, key, payload, h); err != nil {
		return fmt.Errorf("insert outbox: %w", err)
	}
	_, err = tx.Exec(ctx, `SELECT pg_notify($1, '')`, notifyChannel)
	return err
}

// queueContactChange writes the change event for c to the outbox in tx.
func (s *Store) queueContactChange(ctx context.Context, tx pgx.Tx, typ string, c acmecrm.Contact) error {
	ev := ChangeEvent{ID: uuid.NewString(), Type: typ, Timestamp: s.opts.Now().UTC(), Data: c}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return insertOutbox(ctx, tx, s.opts.ContactsTopic, c.ID, b, map[string]string{
		"event-id": ev.ID, "event-type": typ, "content-type": "application/json",
	})
}
