package acmecrm

import "time"

// Contact event types from AcmeCRM.
const (
	EventContactCreated = "contact.created"
	EventContactUpdated = "contact.updated"
	EventContactDeleted = "contact.deleted"
)

// KnownEventType reports whether t is an event type the service applies;
// others are stored as ignored.
func KnownEventType(t string) bool {
	return t == EventContactCreated || t == EventContactUpdated || t == EventContactDeleted
}

// Event is a webhook normalised from either dialect: what is stored with the
// webhook and published on the contact-events topic (key = ContactID).
type Event struct {
	EventID    string      `json:"event_id"`
	EventType  string      `json:"event_type"`
	OccurredAt time.Time   `json:"occurred_at"`
	ReceivedAt time.Time   `json:"received_at"`
	Source     string      `json:"source"`
	ContactID  string      `json:"contact_id"`
	Data       AcmeContact `json:"data"`
}
