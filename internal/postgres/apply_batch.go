package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acmecrm/acmecrm"
)

// ApplyContactEvents applies a batch of valid CRM events in one
// transaction: the same markers and ordering guard as ApplyContactEvent,
// but a handful of statements and one commit for the whole batch. Within
// the batch only each contact's newest event can decide its row, so only
// that one is written; the others are recorded as processed (stale). Every
// event must have passed ValidateEvent. It returns the ids of the events
// that were new (the others were duplicates).
func (s *Store) ApplyContactEvents(ctx context.Context, evs []acmecrm.Event) ([]string, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	var fresh []string
	err := s.contactTx(ctx, "apply contact events", func(tx pgx.Tx) error {
		ids := make([]string, len(evs))
		for i, ev := range evs {
			ids[i] = ev.EventID
		}
		rows, err := tx.Query(ctx, `INSERT INTO processed_events (event_id, outcome)
			SELECT DISTINCT unnest($1::text[]), 'applied' ON CONFLICT DO NOTHING RETURNING event_id`, ids)
		if err != nil {
			return err
		}
		newIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		fresh = newIDs
		if len(newIDs) == 0 {
			return nil
		}
		isNew := make(map[string]bool, len(newIDs))
		for _, id := range newIDs {
			isNew[id] = true
		}
		// The newest new event of each contact.
		newest := map[string]acmecrm.Event{}
		for _, ev := range evs {
			if !isNew[ev.EventID] {
				continue
			}
			cur, ok := newest[ev.ContactID]
			if !ok || ev.OccurredAt.After(cur.OccurredAt) || (ev.OccurredAt.Equal(cur.OccurredAt) && ev.EventID > cur.EventID) {
				newest[ev.ContactID] = ev
			}
		}
		var (
			text      [15][]string // first_name … status, source_id, last_event_id
			tags, cf  []string     // JSON arrays / objects
			deletedAt []*time.Time
			at        []time.Time
		)
		for _, ev := range newest {
			f, err := eventFields(ev)
			if err != nil {
				return err
			}
			for i, v := range []string{f.FirstName, f.LastName, f.Email, f.Phone, f.Company, f.Title, f.Address.Street,
				f.Address.City, f.Address.State, f.Address.ZipCode, f.Address.Country, f.Notes, f.Status, ev.ContactID, ev.EventID} {
				text[i] = append(text[i], v)
			}
			tj, err := json.Marshal(f.Tags)
			if err != nil {
				return err
			}
			cj, err := json.Marshal(f.CustomFields)
			if err != nil {
				return err
			}
			tags, cf = append(tags, string(tj)), append(cf, string(cj))
			var d *time.Time
			if ev.EventType == acmecrm.EventContactDeleted {
				t := ev.OccurredAt
				d = &t
			}
			deletedAt, at = append(deletedAt, d), append(at, ev.OccurredAt)
		}
		args := []any{}
		for _, col := range text {
			args = append(args, col)
		}
		args = append(args, tags, cf, deletedAt, at, acmecrm.SourceAcme)
		if _, err := tx.Exec(ctx, `INSERT INTO contacts AS c (first_name, last_name, email, phone, company, title,
				street, city, state, zip_code, country, notes, status, source_id, last_event_id,
				tags, custom_fields, deleted_at, last_event_at, source)
			SELECT f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15,
			       ARRAY(SELECT jsonb_array_elements_text(f16)), f17, f18, f19, $20
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
			            $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
			            $16::jsonb[], $17::jsonb[], $18::timestamptz[], $19::timestamptz[])
			     AS t(f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19)
			`+upsertGuard, args...); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE webhook_event_state w SET status = 'processed', processed_at = now(),
				published_at = coalesce(w.published_at, now()), attempts = w.attempts + 1, last_error = NULL
			FROM (`+lockEventsInOrder+`) l WHERE w.id = l.id`, newIDs)
		return err
	})
	return fresh, err
}
