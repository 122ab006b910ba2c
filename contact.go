package acmecrm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Contact statuses (SPEC §6).
const (
	StatusActive   = "active"
	StatusInactive = "inactive"
	StatusLead     = "lead"
	StatusDeleted  = "deleted"
)

// SourceAcme is the source of contacts that AcmeCRM owns.
const SourceAcme = "acmecrm"

// Address is a contact's postal address.
type Address struct {
	Street  string `json:"street"`
	City    string `json:"city"`
	State   string `json:"state"`
	ZipCode string `json:"zipCode"`
	Country string `json:"country"`
}

// ContactFields are the editable fields of a contact: what a create, a full
// replace (PUT) or a CRM event sets.
type ContactFields struct {
	FirstName    string       `json:"firstName"`
	LastName     string       `json:"lastName"`
	Email        string       `json:"email"`
	Phone        string       `json:"phone"`
	Company      string       `json:"company"`
	Title        string       `json:"title"`
	Address      Address      `json:"address"`
	Notes        string       `json:"notes"`
	Status       string       `json:"status"`
	Tags         []string     `json:"tags"`
	CustomFields CustomFields `json:"customFields"`
}

// Contact is the internal format served by the REST API (SPEC §6).
type Contact struct {
	ID string `json:"id"`
	ContactFields
	Source    string     `json:"source"`
	SourceID  string     `json:"sourceId"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
	DeletedAt *time.Time `json:"deletedAt"`
	Version   int64      `json:"version"`
}

// Field limits of SPEC §6.
const (
	maxName       = 100
	maxEmail      = 255
	maxPhone      = 50
	maxCompany    = 200
	maxNotes      = 2000
	maxTag        = 50
	maxTags       = 100
	maxCustom     = 100
	maxCustomKey  = 100
	maxCustomText = 1000
	maxSource     = 50
	maxSourceID   = 255
)

var sourcePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Normalize fills defaults so that absent optional fields mean empty:
// status active, no tags, no custom fields; and trims names and email.
func (f *ContactFields) Normalize() {
	f.FirstName = strings.TrimSpace(f.FirstName)
	f.LastName = strings.TrimSpace(f.LastName)
	f.Email = strings.TrimSpace(f.Email)
	if f.Status == "" {
		f.Status = StatusActive
	}
	if f.Tags == nil {
		f.Tags = []string{}
	}
	if f.CustomFields == nil {
		f.CustomFields = map[string]any{}
	}
}

// Validate adds every problem of f to p, with paths under prefix (for
// example "" or "data."). allowDeleted permits status "deleted", which only
// the CRM's own events and soft delete may set.
func (f *ContactFields) Validate(p *Problems, prefix string, allowDeleted bool) {
	text := func(path, v string, min, max int) {
		n := utf8.RuneCountInString(v)
		switch {
		case !utf8.ValidString(v):
			p.Add(prefix+path, "must be valid UTF-8")
		case min > 0 && n < min:
			p.Add(prefix+path, "is required")
		case n > max:
			p.Add(prefix+path, "must be at most %d characters", max)
		case strings.ContainsRune(v, 0):
			p.Add(prefix+path, "must not contain NUL characters")
		}
	}
	text("firstName", f.FirstName, 1, maxName)
	text("lastName", f.LastName, 1, maxName)
	if f.Email == "" {
		p.Add(prefix+"email", "is required")
	} else if !ValidEmail(f.Email) {
		p.Add(prefix+"email", "must be a valid email address")
	}
	text("phone", f.Phone, 0, maxPhone)
	text("company", f.Company, 0, maxCompany)
	text("title", f.Title, 0, maxCompany)
	text("notes", f.Notes, 0, maxNotes)
	text("address.street", f.Address.Street, 0, 200)
	text("address.city", f.Address.City, 0, 100)
	text("address.state", f.Address.State, 0, 100)
	text("address.zipCode", f.Address.ZipCode, 0, 20)
	text("address.country", f.Address.Country, 0, 100)
	switch f.Status {
	case StatusActive, StatusInactive, StatusLead:
	case StatusDeleted:
		if !allowDeleted {
			p.Add(prefix+"status", "cannot be set to deleted; use DELETE")
		}
	default:
		p.Add(prefix+"status", "must be one of active, inactive, lead")
	}
	if len(f.Tags) > maxTags {
		p.Add(prefix+"tags", "must have at most %d tags", maxTags)
	}
	for i, t := range f.Tags {
		text(fmt.Sprintf("tags[%d]", i), t, 1, maxTag)
	}
	if len(f.CustomFields) > maxCustom {
		p.Add(prefix+"customFields", "must have at most %d entries", maxCustom)
	}
	for k, v := range f.CustomFields {
		path := "customFields." + k
		if k == "" || utf8.RuneCountInString(k) > maxCustomKey {
			p.Add(prefix+"customFields", "keys must be 1–%d characters", maxCustomKey)
			continue
		}
		switch v := v.(type) {
		case string:
			text(path, v, 0, maxCustomText)
		case json.Number:
			// Beyond a double's range most readers of the contact (Kafka
			// consumers, browsers) would get Infinity or fail.
			if _, err := v.Float64(); err != nil {
				p.Add(prefix+path, "must be a number within the range of a double (about ±1.8e308)")
			}
		case float64, bool:
		default:
			p.Add(prefix+path, "must be a string, number or boolean")
		}
	}
}

// CustomFields are a contact's own fields by name: strings, numbers and
// booleans. Decoded from JSON — a request, a jsonb column, a Kafka record —
// their numbers stay as written (json.Number): as float64 a 20-digit id
// would lose digits, and a number beyond a double's range could not be read
// at all (DECISIONS #72).
type CustomFields map[string]any

// UnmarshalJSON decodes an object with json.Number for numbers.
func (c *CustomFields) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return err
	}
	*c = m
	return nil
}

// ValidateSource checks a (source, sourceId) pair.
func ValidateSource(p *Problems, source, sourceID string) {
	switch {
	case source == "":
		p.Add("source", "is required")
	case len(source) > maxSource || !sourcePattern.MatchString(source):
		p.Add("source", "must be 1–%d lower-case letters, digits, '.', '_' or '-'", maxSource)
	}
	switch {
	case sourceID == "":
		p.Add("sourceId", "is required")
	case len(sourceID) > maxSourceID || !utf8.ValidString(sourceID) || strings.ContainsRune(sourceID, 0):
		p.Add("sourceId", "must be 1–%d characters", maxSourceID)
	}
}

// ValidEmail reports whether s is a plain address (no display name) of at
// most 255 bytes with a dotted domain.
func ValidEmail(s string) bool {
	if len(s) > maxEmail || strings.ContainsAny(s, "<>") || HasInvisible(s) {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	domain := s[at+1:]
	return at > 0 && strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}
