package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/acmecrm/acmecrm"
)

// Contact change event types.
const (
	ContactCreated = "contact.created"
	ContactUpdated = "contact.updated"
	ContactDeleted = "contact.deleted"
)

const contactCols = `id, first_name, last_name, email, phone, company, title,
	street, city, state, zip_code, country, notes, status, tags, custom_fields,
	source, source_id, created_at, updated_at, deleted_at, version`

func scanContact(row pgx.Row) (acmecrm.Contact, error) {
	var c acmecrm.Contact
	a := &c.Address
	err := row.Scan(&c.ID, &c.FirstName, &c.LastName, &c.Email, &c.Phone, &c.Company, &c.Title,
		&a.Street, &a.City, &a.State, &a.ZipCode, &a.Country, &c.Notes, &c.Status, &c.Tags, &c.CustomFields,
		&c.Source, &c.SourceID, &c.CreatedAt, &c.UpdatedAt, &c.DeletedAt, &c.Version)
	return c, err
}

// fieldArgs are the editable fields as statement arguments $n…$n+13, in the
// order of fieldCols.
func fieldArgs(f acmecrm.ContactFields) []any {
	return []any{f.FirstName, f.LastName, f.Email, f.Phone, f.Company, f.Title,
		f.Address.Street, f.Address.City, f.Address.State, f.Address.ZipCode, f.Address.Country,
		f.Notes, f.Status, f.Tags, f.CustomFields}
}

// contactTx runs fn in a transaction that writes contacts, committing when
// it returns nil, and invalidates cached list totals.
func (s *Store) contactTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, fn)
	s.counts.invalidate()
	return translate(op, err)
}

// CreateContact inserts a contact and queues its change event, atomically
// and in one round trip: the id and timestamps are chosen here, so the event
// can be written next to the row in the same pipelined implicit transaction.
// An existing (source, sourceId) is a RESOURCE_ALREADY_EXISTS conflict.
func (s *Store) CreateContact(ctx context.Context, source, sourceID string, f acmecrm.ContactFields) (acmecrm.Contact, error) {
	now := s.opts.Now().UTC().Truncate(time.Microsecond) // PostgreSQL's precision
	c := acmecrm.Contact{ID: uuid.NewString(), ContactFields: f, Source: source, SourceID: sourceID,
		CreatedAt: now, UpdatedAt: now, Version: 1}
	outbox, err := s.contactChangeArgs(ContactCreated, c)
	if err != nil {
		return c, err
	}
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO contacts (first_name, last_name, email, phone, company, title,
		street, city, state, zip_code, country, notes, status, tags, custom_fields, source, source_id,
		id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19)`,
		append(fieldArgs(f), source, sourceID, c.ID, now)...)
	batch.Queue(insertOutboxSQL, outbox...)
	err = s.pool.SendBatch(ctx, batch).Close()
	s.counts.invalidate()
	if isUniqueViolation(err) {
		return c, acmecrm.Errorf(acmecrm.KindConflict, "RESOURCE_ALREADY_EXISTS",
			"a contact with source %q and sourceId %q already exists", source, sourceID)
	}
	return c, translate("create contact", err)
}

// Contact returns one contact, deleted or not.
func (s *Store) Contact(ctx context.Context, id string) (acmecrm.Contact, error) {
	c, err := scanContact(s.pool.QueryRow(ctx, `SELECT `+contactCols+` FROM contacts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, notFound("contact")
	}
	return c, translate("get contact", err)
}

// ContactBySource returns the contact with the given source and source id.
func (s *Store) ContactBySource(ctx context.Context, source, sourceID string) (acmecrm.Contact, error) {
	c, err := scanContact(s.pool.QueryRow(ctx, `SELECT `+contactCols+` FROM contacts WHERE source = $1 AND source_id = $2`, source, sourceID))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, notFound("contact")
	}
	return c, translate("get contact by source", err)
}

// VersionConflict is returned when a conditional write names a version that
// is no longer current.
type VersionConflict struct {
	Current, Provided int64
}

func (e *VersionConflict) Error() string {
	return fmt.Sprintf("version conflict: current %d, provided %d", e.Current, e.Provided)
}

// explainMiss tells why a conditional write on id matched no row: the
// contact is missing or deleted (not found), or its version moved on
// (*VersionConflict). Otherwise it is live at the provided version — the
// write's other conditions failed — and is returned as it is.
func (s *Store) explainMiss(ctx context.Context, tx pgx.Tx, id string, provided int64) (acmecrm.Contact, error) {
	c, err := scanContact(tx.QueryRow(ctx, `SELECT `+contactCols+` FROM contacts WHERE id = $1`, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows) || err == nil && c.DeletedAt != nil:
		return c, notFound("contact")
	case err != nil:
		return c, err
	case c.Version != provided:
		return c, &VersionConflict{Current: c.Version, Provided: provided}
	}
	return c, nil
}

// ReplaceContact sets every editable field of a live contact in one
// conditional statement (… WHERE id = $1 AND version = $2): a stale version
// is a *VersionConflict, never a lost update. It queues the change event in
// the same transaction. Fields equal to the stored ones change nothing —
// same version, same updated_at, no event — and changed reports false.
func (s *Store) ReplaceContact(ctx context.Context, id string, version int64, f acmecrm.ContactFields) (c acmecrm.Contact, changed bool, err error) {
	err = s.contactTx(ctx, "replace contact", func(tx pgx.Tx) error {
		var err error
		c, err = scanContact(tx.QueryRow(ctx, `UPDATE contacts SET
			first_name = $3, last_name = $4, email = $5, phone = $6, company = $7, title = $8,
			street = $9, city = $10, state = $11, zip_code = $12, country = $13, notes = $14,
			status = $15, tags = $16, custom_fields = $17, version = version + 1, updated_at = now()
			WHERE id = $1 AND version = $2 AND deleted_at IS NULL
			  AND (first_name, last_name, email, phone, company, title, street, city, state, zip_code,
			       country, notes, status, tags, custom_fields)
			      IS DISTINCT FROM ($3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::text[], $17::jsonb)
			RETURNING `+contactCols, append([]any{id, version}, fieldArgs(f)...)...))
		if errors.Is(err, pgx.ErrNoRows) {
			// Missing, deleted, stale — or else the same content at this
			// version, which changes nothing.
			c, err = s.explainMiss(ctx, tx, id, version)
			return err
		}
		if err != nil {
			return err
		}
		changed = true
		return s.queueContactChange(ctx, tx, ContactUpdated, c)
	})
	return c, changed, err
}

// DeleteContact soft-deletes a live contact: status deleted, deletedAt set,
// version + 1. A non-nil version makes it conditional like ReplaceContact.
func (s *Store) DeleteContact(ctx context.Context, id string, version *int64) (acmecrm.Contact, error) {
	var c acmecrm.Contact
	err := s.contactTx(ctx, "delete contact", func(tx pgx.Tx) error {
		var err error
		c, err = scanContact(tx.QueryRow(ctx, `UPDATE contacts SET
			status = 'deleted', deleted_at = now(), version = version + 1, updated_at = now()
			WHERE id = $1 AND deleted_at IS NULL AND ($2::bigint IS NULL OR version = $2)
			RETURNING `+contactCols, id, version))
		if errors.Is(err, pgx.ErrNoRows) {
			var provided int64
			if version != nil {
				provided = *version
			}
			cur, err := s.explainMiss(ctx, tx, id, provided)
			if err == nil { // live at that version: only a concurrent change explains the miss
				err = &VersionConflict{Current: cur.Version, Provided: provided}
			}
			return err
		}
		if err != nil {
			return err
		}
		return s.queueContactChange(ctx, tx, ContactDeleted, c)
	})
	return c, err
}

// UpsertAcmeContact creates or fully updates the AcmeCRM contact sourceID
// (POST /api/contacts/acme). An update that changes nothing leaves the row,
// its version and the outbox untouched, so re-sending a contact's own state
// cannot loop. It reports whether it created the contact.
func (s *Store) UpsertAcmeContact(ctx context.Context, sourceID string, f acmecrm.ContactFields) (c acmecrm.Contact, created bool, err error) {
	err = s.contactTx(ctx, "upsert acme contact", func(tx pgx.Tx) error {
		row := tx.QueryRow(ctx, `INSERT INTO contacts AS c (first_name, last_name, email, phone, company, title,
			street, city, state, zip_code, country, notes, status, tags, custom_fields, source, source_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
			ON CONFLICT (source, source_id) DO UPDATE SET
				first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, email = EXCLUDED.email,
				phone = EXCLUDED.phone, company = EXCLUDED.company, title = EXCLUDED.title,
				street = EXCLUDED.street, city = EXCLUDED.city, state = EXCLUDED.state,
				zip_code = EXCLUDED.zip_code, country = EXCLUDED.country, notes = EXCLUDED.notes,
				status = EXCLUDED.status, tags = EXCLUDED.tags, custom_fields = EXCLUDED.custom_fields,
				deleted_at = NULL, version = c.version + 1, updated_at = now()
			WHERE (c.first_name, c.last_name, c.email, c.phone, c.company, c.title, c.street, c.city, c.state,
			       c.zip_code, c.country, c.notes, c.status, c.tags, c.custom_fields, c.deleted_at IS NULL)
			   IS DISTINCT FROM
			      (EXCLUDED.first_name, EXCLUDED.last_name, EXCLUDED.email, EXCLUDED.phone, EXCLUDED.company,
			       EXCLUDED.title, EXCLUDED.street, EXCLUDED.city, EXCLUDED.state, EXCLUDED.zip_code,
			       EXCLUDED.country, EXCLUDED.notes, EXCLUDED.status, EXCLUDED.tags, EXCLUDED.custom_fields, true)
			RETURNING `+contactCols+`, xmax = 0`, append(fieldArgs(f), acmecrm.SourceAcme, sourceID)...)
		var a = &c.Address
		err := row.Scan(&c.ID, &c.FirstName, &c.LastName, &c.Email, &c.Phone, &c.Company, &c.Title,
			&a.Street, &a.City, &a.State, &a.ZipCode, &a.Country, &c.Notes, &c.Status, &c.Tags, &c.CustomFields,
			&c.Source, &c.SourceID, &c.CreatedAt, &c.UpdatedAt, &c.DeletedAt, &c.Version, &created)
		if errors.Is(err, pgx.ErrNoRows) {
			// Nothing changed: answer with the row as it is.
			c, err = scanContact(tx.QueryRow(ctx, `SELECT `+contactCols+` FROM contacts WHERE source = $1 AND source_id = $2`,
				acmecrm.SourceAcme, sourceID))
			return err
		}
		if err != nil {
			return err
		}
		typ := ContactUpdated
		if created {
			typ = ContactCreated
		}
		return s.queueContactChange(ctx, tx, typ, c)
	})
	return c, created, err
}
