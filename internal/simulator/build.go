package simulator

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

// Payload is AcmeCRM's canonical webhook body (SPEC §3).
type Payload struct {
	EventType string              `json:"event_type"`
	EventID   string              `json:"event_id"`
	Timestamp string              `json:"timestamp"`
	Data      acmecrm.AcmeContact `json:"data"`
}

// NewEventID returns a fresh AcmeCRM-style event id.
func NewEventID() string { return "evt_" + uuid.NewString() }

// internalContact is contact data in the service's own (camelCase) format;
// a contact as the REST API returns it is accepted whole.
type internalContact struct {
	ID       string `json:"id"`
	Source   string `json:"source"`
	SourceID string `json:"sourceId"`
	acmecrm.ContactFields
	CreatedAt *time.Time `json:"createdAt"`
	UpdatedAt *time.Time `json:"updatedAt"`
	DeletedAt *time.Time `json:"deletedAt"`
	Version   *int64     `json:"version"`
}

// Build turns the simulator's input into a canonical payload: data is a
// contact in the internal (camelCase) or AcmeCRM (acme_*) format. The
// contact id is contact_id, or sourceId, or id; a created event without any
// gets a fresh one. Every problem is reported at once, with paths.
func Build(eventType string, data json.RawMessage, eventID string, at time.Time) (Payload, error) {
	var p acmecrm.Problems
	if !acmecrm.KnownEventType(eventType) {
		p.Add("eventType", "must be one of contact.created, contact.updated, contact.deleted")
	}
	a, ok := decodeData(data, &p)
	if !ok {
		return Payload{}, p.Err("invalid simulator request")
	}
	if a.ContactID == "" {
		if eventType == acmecrm.EventContactCreated {
			a.ContactID = "sim_" + uuid.NewString()
		} else {
			p.Add("data.contact_id", "is required (contact_id, sourceId or id)")
		}
	}
	ts := webhook.FormatTimestamp(at)
	if eventType == acmecrm.EventContactDeleted {
		a = acmecrm.AcmeContact{ContactID: a.ContactID}
	} else {
		fields := acmecrm.FromAcme(a)
		fields.Validate(&p, "data.", false)
		if a.CreatedAt == "" {
			a.CreatedAt = ts
		}
		a.UpdatedAt = ts
	}
	if err := p.Err("invalid simulator request"); err != nil {
		return Payload{}, err
	}
	return Payload{EventType: eventType, EventID: eventID, Timestamp: ts, Data: a}, nil
}

// FromContact is the AcmeCRM event that mirrors an API change of one of
// AcmeCRM's own contacts (the auto-trigger): contact id = sourceId.
func FromContact(eventType string, c acmecrm.Contact, eventID string, at time.Time) Payload {
	ts := webhook.FormatTimestamp(at)
	a := acmecrm.AcmeContact{ContactID: c.SourceID}
	if eventType != acmecrm.EventContactDeleted {
		a = acmecrm.ToAcme(c.SourceID, c.ContactFields)
		a.CreatedAt = webhook.FormatTimestamp(c.CreatedAt)
		a.UpdatedAt = ts
	}
	return Payload{EventType: eventType, EventID: eventID, Timestamp: ts, Data: a}
}

// Body is the payload's JSON, the bytes that are signed and sent.
func (p Payload) Body() []byte {
	b, err := json.Marshal(p)
	if err != nil {
		panic("simulator: marshal payload: " + err.Error()) // only strings, string slices and JSON values
	}
	return b
}

// decodeData reads data in either format, strictly (unknown fields are
// problems), into AcmeCRM's format.
func decodeData(data json.RawMessage, p *acmecrm.Problems) (acmecrm.AcmeContact, bool) {
	var keys map[string]json.RawMessage
	if len(bytes.TrimSpace(data)) == 0 || json.Unmarshal(data, &keys) != nil || keys == nil {
		p.Add("data", "must be a contact object (internal camelCase or AcmeCRM acme_* fields)")
		return acmecrm.AcmeContact{}, false
	}
	acme := false
	for k := range keys {
		if k == "contact_id" || strings.HasPrefix(k, "acme_") {
			acme = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if acme {
		var a acmecrm.AcmeContact
		if err := dec.Decode(&a); err != nil {
			p.Add("data", "invalid AcmeCRM contact: %s", strings.TrimPrefix(err.Error(), "json: "))
			return a, false
		}
		return a, true
	}
	var c internalContact
	if err := dec.Decode(&c); err != nil {
		p.Add("data", "invalid contact: %s", strings.TrimPrefix(err.Error(), "json: "))
		return acmecrm.AcmeContact{}, false
	}
	if c.Source != "" && c.Source != acmecrm.SourceAcme {
		p.Add("data.source", "must be %s (the simulator plays AcmeCRM)", acmecrm.SourceAcme)
	}
	id := c.SourceID
	if id == "" {
		id = c.ID
	}
	c.ContactFields.Normalize()
	if c.Status == acmecrm.StatusDeleted {
		c.Status = acmecrm.StatusActive // a deleted contact is sent as contact.deleted, not as a status
	}
	return acmecrm.ToAcme(id, c.ContactFields), true
}
