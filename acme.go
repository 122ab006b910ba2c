package acmecrm

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// AcmeContact is a contact in AcmeCRM's own format: the `data` of a webhook
// and the body of POST /api/contacts/acme (SPEC §3, §6).
type AcmeContact struct {
	ContactID     string       `json:"contact_id"`
	FirstName     string       `json:"acme_first_name,omitempty"`
	LastName      string       `json:"acme_last_name,omitempty"`
	Email         string       `json:"acme_email,omitempty"`
	Phone         string       `json:"acme_phone,omitempty"`
	Company       string       `json:"acme_company,omitempty"`
	Title         string       `json:"acme_title,omitempty"`
	Address       string       `json:"acme_address,omitempty"`
	Notes         string       `json:"acme_notes,omitempty"`
	Status        string       `json:"acme_status,omitempty"`
	Tags          []string     `json:"acme_tags,omitempty"`
	CustomFields  CustomFields `json:"acme_custom_fields,omitempty"`
	CreatedAt     string       `json:"acme_created_at,omitempty"`
	UpdatedAt     string       `json:"acme_updated_at,omitempty"`
	ChangedFields []string     `json:"changed_fields,omitempty"`
}

// Bounds of the members of an AcmeCRM contact that FromAcme does not map
// (the CRM's own timestamps and changed_fields, kept for audit in a
// webhook's raw body): the receiver's (its JSON Schema says the same, and
// its fast path reads these), which keep every event far below the size of
// a Kafka record.
const (
	MaxAcmeTimestamp   = 100
	MaxChangedFields   = 100
	MaxChangedFieldLen = 200
)

// ValidateAudit adds the problems of the members FromAcme does not map:
// acme_created_at, acme_updated_at and changed_fields. With FromAcme's
// fields validated too, a contact is held to the rules the receiver holds
// a webhook's data to.
func (a AcmeContact) ValidateAudit(p *Problems) {
	if utf8.RuneCountInString(a.CreatedAt) > MaxAcmeTimestamp {
		p.Add("acme_created_at", "must be at most %d characters", MaxAcmeTimestamp)
	}
	if utf8.RuneCountInString(a.UpdatedAt) > MaxAcmeTimestamp {
		p.Add("acme_updated_at", "must be at most %d characters", MaxAcmeTimestamp)
	}
	if len(a.ChangedFields) > MaxChangedFields {
		p.Add("changed_fields", "must have at most %d names", MaxChangedFields)
	}
	for i, f := range a.ChangedFields {
		if utf8.RuneCountInString(f) > MaxChangedFieldLen {
			p.Add(fmt.Sprintf("changed_fields[%d]", i), "must be at most %d characters", MaxChangedFieldLen)
		}
	}
}

// FromAcme maps an AcmeCRM contact to the internal editable fields
// (SPEC §6). An absent optional field means empty; the status is lower-cased
// and defaults to active. The result is normalised but not validated.
func FromAcme(a AcmeContact) ContactFields {
	f := ContactFields{
		FirstName:    a.FirstName,
		LastName:     a.LastName,
		Email:        a.Email,
		Phone:        a.Phone,
		Company:      a.Company,
		Title:        a.Title,
		Address:      ParseAddress(a.Address),
		Notes:        a.Notes,
		Status:       strings.ToLower(strings.TrimSpace(a.Status)),
		Tags:         append([]string(nil), a.Tags...),
		CustomFields: copyMap(a.CustomFields),
	}
	f.Normalize()
	return f
}

// ToAcme maps internal fields back to AcmeCRM's format (for the simulator).
// FromAcme(ToAcme(f)) == f for every normalised, valid f whose address
// parts have no commas or repeated spaces, whose state has no digit in its
// last word and whose zip code has no space (see ParseAddress).
func ToAcme(contactID string, f ContactFields) AcmeContact {
	status := f.Status
	if status != "" {
		status = strings.ToUpper(status[:1]) + status[1:]
	}
	return AcmeContact{
		ContactID:    contactID,
		FirstName:    f.FirstName,
		LastName:     f.LastName,
		Email:        f.Email,
		Phone:        f.Phone,
		Company:      f.Company,
		Title:        f.Title,
		Address:      FormatAddress(f.Address),
		Notes:        f.Notes,
		Status:       status,
		Tags:         append([]string(nil), f.Tags...),
		CustomFields: copyMap(f.CustomFields),
	}
}

func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ParseAddress splits AcmeCRM's one-line address "street, city, STATE ZIP,
// country" into parts. Missing parts are empty; whitespace is collapsed.
// Positions count, so ", Springfield" has an empty street. It is forgiving,
// because the CRM's users type addresses by hand:
//
//   - 4+ comma-separated parts: the last three are city, "STATE ZIP" and
//     country; everything before them is the street ("Apt 4, 1 Main St");
//   - 3 parts: street, city, "STATE ZIP" (no country);
//   - 2 parts: street, city;
//   - 1 part: street.
//
// "STATE ZIP" splits at the last space when the last word contains a digit
// ("IL 62701", "NY 10001-1234", "62701"); otherwise it is all state
// ("Bavaria", "New York").
func ParseAddress(s string) Address {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.Join(strings.Fields(p), " ")
	}
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	var a Address
	switch n := len(parts); {
	case n == 0:
	case n == 1:
		a.Street = parts[0]
	case n == 2:
		a.Street, a.City = parts[0], parts[1]
	case n == 3:
		a.Street, a.City = parts[0], parts[1]
		a.State, a.ZipCode = splitStateZip(parts[2])
	default:
		a.Street = strings.Join(parts[:n-3], ", ")
		a.City = parts[n-3]
		a.State, a.ZipCode = splitStateZip(parts[n-2])
		a.Country = parts[n-1]
	}
	return a
}

func splitStateZip(s string) (state, zip string) {
	i := strings.LastIndexByte(s, ' ')
	last := s[i+1:]
	if strings.ContainsAny(last, "0123456789") {
		if i < 0 {
			return "", last
		}
		return s[:i], last
	}
	return s, ""
}

// FormatAddress is the inverse of ParseAddress: "street, city, STATE ZIP,
// country", leaving out empty parts at the end so that it parses back the
// same.
func FormatAddress(a Address) string {
	stateZip := strings.TrimSpace(a.State + " " + a.ZipCode)
	parts := []string{a.Street, a.City, stateZip, a.Country}
	// Trailing empty parts are dropped; inner ones stay, as positions.
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, ", ")
}

// acmePaths names the AcmeCRM field behind each internal field, so that
// validation problems point at what the caller sent.
var acmePaths = map[string]string{
	"firstName": "acme_first_name", "lastName": "acme_last_name", "email": "acme_email",
	"phone": "acme_phone", "company": "acme_company", "title": "acme_title", "notes": "acme_notes",
	"status": "acme_status", "tags": "acme_tags", "customFields": "acme_custom_fields",
}

// AcmePath maps a ContactFields validation path ("email", "tags[1]",
// "address.city") to the AcmeCRM field it came from, so that problems point
// at what the caller sent.
func AcmePath(path string) string {
	head, rest, _ := strings.Cut(path, ".")
	if strings.HasPrefix(head, "address") {
		return "acme_address"
	}
	if i := strings.IndexByte(head, '['); i > 0 {
		rest, head = head[i:], head[:i]
		return acmePaths[head] + rest
	}
	if a, ok := acmePaths[head]; ok {
		if rest != "" {
			return a + "." + rest
		}
		return a
	}
	return path
}
