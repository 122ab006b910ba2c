package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acmecrm/acmecrm"
)

// Outcomes of applying a CRM event to the contacts table.
const (
	AppliedChanged   = "applied"   // the contact now reflects the event
	AppliedStale     = "stale"     // a newer event was applied before: no effect
	AppliedDuplicate = "duplicate" // this event was processed before: no effect
)

// ApplyContactEvent applies one CRM event in one transaction (SPEC §2.3,
// §2.5): a processed-event marker (a second delivery changes nothing), the
// ordering guard (the contact changes only if the event is newer than the
// last one applied to it, by event time then event id), and the webhook's
// status. A delete is a tombstone that older events cannot undo; a newer
// create or update after it restores the contact. A CRM event that changes
// no field does not bump the version.
func (s *Store) ApplyContactEvent(ctx context.Context, ev acmecrm.Event) (string, error) {
	var outcome string
	err := s.contactTx(ctx, "apply contact event", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO processed_events (event_id, outcome) VALUES ($1, 'pending') ON CONFLICT DO NOTHING`, ev.EventID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			outcome = AppliedDuplicate
			return nil
		}
		outcome, err = applyEvent(ctx, tx, ev)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE processed_events SET outcome = $2 WHERE event_id = $1`, ev.EventID, outcome); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE webhook_event_state SET status = 'processed', processed_at = now(),
				published_at = coalesce(published_at, now()), attempts = attempts + 1, last_error = NULL
			WHERE `+eventStateByID, ev.EventID)
		return err
	})
	return outcome, err
}

// eventFields validates a CRM event and returns the contact fields it sets:
// the mapped contact for a create/update, an empty tombstone for a delete.
func eventFields(ev acmecrm.Event) (acmecrm.ContactFields, error) {
	var fields acmecrm.ContactFields
	if ev.ContactID == "" {
		return fields, fmt.Errorf("event %s has no contact id", ev.EventID)
	}
	switch ev.EventType {
	case acmecrm.EventContactCreated, acmecrm.EventContactUpdated:
		fields = acmecrm.FromAcme(ev.Data)
		var p acmecrm.Problems
		fields.Validate(&p, "data.", false)
		if err := p.Err("invalid contact in event"); err != nil {
			return fields, err
		}
	case acmecrm.EventContactDeleted:
		fields.Normalize()
		fields.Status = acmecrm.StatusDeleted
	default:
		return fields, fmt.Errorf("event %s: cannot apply event type %q", ev.EventID, ev.EventType)
	}
	return fields, nil
}

// ValidateEvent reports whether ev can be applied at all (a consumer sends
// events that cannot to the retry and dead-letter path one by one).
func ValidateEvent(ev acmecrm.Event) error {
	_, err := eventFields(ev)
	return err
}

// changed compares a contact row (c) with the incoming one (EXCLUDED).
const changed = `(c.first_name, c.last_name, c.email, c.phone, c.company, c.title, c.street, c.city, c.state,
			 c.zip_code, c.country, c.notes, c.status, c.tags, c.custom_fields, c.deleted_at)
			IS DISTINCT FROM
			(EXCLUDED.first_name, EXCLUDED.last_name, EXCLUDED.email, EXCLUDED.phone, EXCLUDED.company,
			 EXCLUDED.title, EXCLUDED.street, EXCLUDED.city, EXCLUDED.state, EXCLUDED.zip_code,
			 EXCLUDED.country, EXCLUDED.notes, EXCLUDED.status, EXCLUDED.tags, EXCLUDED.custom_fields,
			 EXCLUDED.deleted_at)`

// alreadyDeleted: the event is a delete and the contact is deleted already.
const alreadyDeleted = `(EXCLUDED.deleted_at IS NOT NULL AND c.deleted_at IS NOT NULL)`

// keepIfDeleted sets each content column from the event, except when
// alreadyDeleted: then the row keeps its content.
func keepIfDeleted(cols ...string) string {
	var b strings.Builder
	for _, col := range cols {
		fmt.Fprintf(&b, "%s = CASE WHEN %s THEN c.%s ELSE EXCLUDED.%s END,\n\t\t", col, alreadyDeleted, col, col)
	}
	return b.String()
}

// upsertGuard finishes an INSERT INTO contacts AS c (…): insert, or update
// only if the event is newer than the last applied one (by event time, then
// event id). A delete leaves a tombstone: status deleted, no personal data
// (the CRM deleted the contact; and a tombstone is the same whatever
// preceded it, which is what makes any delivery order converge). A
// create/update replaces every field and clears deleted_at (a restore).
// Re-applying a contact's own state does not bump its version; in
// particular a delete of a contact that is deleted already (by an earlier
// delete, or through the API) moves only deleted_at, to the newest delete's
// time, which keeps consecutive deletes convergent in any order.
var upsertGuard = `ON CONFLICT (source, source_id) DO UPDATE SET
		` + keepIfDeleted("first_name", "last_name", "email", "phone", "company", "title", "street", "city", "state",
	"zip_code", "country", "notes", "tags", "custom_fields", "status") + `deleted_at = EXCLUDED.deleted_at,
		last_event_at = EXCLUDED.last_event_at, last_event_id = EXCLUDED.last_event_id,
		-- An event that changes nothing bumps neither the version nor
		-- updated_at (so the row can be updated in place, without touching
		-- its indexes: a HOT update).
		version = c.version + CASE WHEN NOT ` + alreadyDeleted + ` AND ` + changed + ` THEN 1 ELSE 0 END,
		updated_at = CASE WHEN NOT ` + alreadyDeleted + ` AND ` + changed + ` THEN now() ELSE c.updated_at END
	WHERE c.last_event_at IS NULL
	   OR (c.last_event_at, c.last_event_id) < (EXCLUDED.last_event_at, EXCLUDED.last_event_id)`

func applyEvent(ctx context.Context, tx pgx.Tx, ev acmecrm.Event) (string, error) {
	fields, err := eventFields(ev)
	if err != nil {
		return "", err
	}
	at := ev.OccurredAt
	var deletedAt *time.Time
	if ev.EventType == acmecrm.EventContactDeleted {
		deletedAt = &at
	}
	row := tx.QueryRow(ctx, `INSERT INTO contacts AS c (first_name, last_name, email, phone, company, title,
			street, city, state, zip_code, country, notes, status, tags, custom_fields, source, source_id,
			deleted_at, last_event_at, last_event_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
		`+upsertGuard+`
		RETURNING xmax = 0, version`,
		append(fieldArgs(fields), acmecrm.SourceAcme, ev.ContactID, deletedAt, at, ev.EventID)...)
	var inserted bool
	var version int64
	err = row.Scan(&inserted, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return AppliedStale, nil
	}
	if err != nil {
		return "", err
	}
	return AppliedChanged, nil
}
