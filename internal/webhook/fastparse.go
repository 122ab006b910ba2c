package webhook

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/acmecrm/acmecrm"
)

// The fast path reads the common payload — a known event type, plain
// strings, simple e-mail addresses and timestamps — with a small JSON
// parser and checks it against the rules of the JSON Schemas by hand,
// without building a generic document for the schema validator (which cost
// a sixth of the receiver's CPU). It is only ever a shortcut: whenever a
// payload is not plainly valid, or uses anything the fast path does not
// check exactly as the schema does (quoted or IP-literal addresses, leap
// seconds, escaped surrogates, unknown event types, ...), it declines and
// the schema validator decides and reports, as before. So a payload the
// fast path accepts is one the schema accepts, normalised to the same
// event; FuzzFastPathAgreesWithSchema checks both.

var fastParsers fastjson.ParserPool

// fastParse returns the event fields of body and true, or false when the
// schema validator must decide. body is UTF-8: Parse refuses anything else
// (acmecrm.CheckJSONText) before either path reads it.
func fastParse(body []byte) (ev acmecrm.Event, ts string, legacy, ok bool) {
	if len(body) == 0 || hasEscapedSurrogate(body) || !json.Valid(body) {
		return ev, "", false, false
	}
	p := fastParsers.Get()
	defer fastParsers.Put(p)
	doc, err := p.ParseBytes(body)
	if err != nil || doc.Type() != fastjson.TypeObject {
		return ev, "", false, false
	}
	top, _ := doc.Object()
	// Members by name; a repeated name keeps its last value, as in
	// encoding/json (which the schema path decodes with).
	var eventType, event, eventID, id, timestamp, data *fastjson.Value
	top.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "event_type":
			eventType = v
		case "event":
			event = v
		case "event_id":
			eventID = v
		case "id":
			id = v
		case "timestamp":
			timestamp = v
		case "data":
			data = v
		}
	})
	legacy = event != nil && eventType == nil
	typeV, idV := eventType, eventID
	if legacy {
		typeV, idV = event, id
	}
	var good bool
	if ev.EventType, good = fastString(typeV, 1, 100); !good {
		return ev, "", false, false
	}
	if ev.EventID, good = fastString(idV, 1, 255); !good {
		return ev, "", false, false
	}
	if ts, good = fastString(timestamp, 0, -1); !good || !plainDateTime(ts) {
		return ev, "", false, false
	}
	if data == nil || data.Type() != fastjson.TypeObject {
		return ev, "", false, false
	}
	fields, _ := data.Object()
	switch ev.EventType {
	case acmecrm.EventContactCreated, acmecrm.EventContactUpdated:
		if legacy {
			ev.Data, good = fastLegacyContact(fields)
		} else {
			ev.Data, good = fastCanonicalContact(fields)
		}
	case acmecrm.EventContactDeleted:
		key := "contact_id"
		if legacy {
			key = "id"
		}
		ev.Data.ContactID, good = fastString(member(fields, key), 1, 255)
	default:
		return ev, "", false, false // only the data of known types is checked here
	}
	if !good {
		return ev, "", false, false
	}
	return ev, ts, legacy, true
}

// member is the last member named key (nil when there is none).
func member(o *fastjson.Object, key string) *fastjson.Value {
	var found *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		if string(k) == key {
			found = v
		}
	})
	return found
}

// fastString reads a string whose length in code points is within
// [minLen, maxLen] (maxLen < 0: unbounded).
func fastString(v *fastjson.Value, minLen, maxLen int) (string, bool) {
	if v == nil || v.Type() != fastjson.TypeString {
		return "", false
	}
	b, _ := v.StringBytes()
	if n := utf8.RuneCount(b); n < minLen || (maxLen >= 0 && n > maxLen) {
		return "", false
	}
	return string(b), true
}

// optString reads an optional string member: absent is "", true.
func optString(v *fastjson.Value, maxLen int) (string, bool) {
	if v == nil {
		return "", true
	}
	return fastString(v, 0, maxLen)
}

// contactFields are a contact's members by name (the last one wins) and
// whether every member read so far was valid.
type contactFields struct {
	m  map[string]*fastjson.Value
	ok bool
}

func collect(o *fastjson.Object) *contactFields {
	f := &contactFields{m: make(map[string]*fastjson.Value, o.Len()), ok: true}
	o.Visit(func(k []byte, v *fastjson.Value) { f.m[string(k)] = v })
	return f
}

// str reads a string member into dst: required ones with [minLen, maxLen]
// code points, optional ones (absent: "") with at most maxLen.
func (f *contactFields) str(dst *string, key string, required bool, minLen, maxLen int) {
	var good bool
	if required {
		*dst, good = fastString(f.m[key], minLen, maxLen)
	} else {
		*dst, good = optString(f.m[key], maxLen)
	}
	f.ok = f.ok && good
}

// contact reads the members both dialects' contact states share, under
// their names in the dialect (id, first, last, email, phone, company, title,
// created, updated).
func (f *contactFields) contact(names [9]string) acmecrm.AcmeContact {
	var c acmecrm.AcmeContact
	f.str(&c.ContactID, names[0], true, 1, 255)
	f.str(&c.FirstName, names[1], true, 1, 100)
	f.str(&c.LastName, names[2], true, 1, 100)
	f.str(&c.Email, names[3], true, 0, 255)
	f.ok = f.ok && plainEmail(c.Email)
	f.str(&c.Phone, names[4], false, 0, 50)
	f.str(&c.Company, names[5], false, 0, 200)
	f.str(&c.Title, names[6], false, 0, 200)
	f.str(&c.CreatedAt, names[7], false, 0, acmecrm.MaxAcmeTimestamp)
	f.str(&c.UpdatedAt, names[8], false, 0, acmecrm.MaxAcmeTimestamp)
	return c
}

func fastLegacyContact(o *fastjson.Object) (acmecrm.AcmeContact, bool) {
	f := collect(o)
	c := f.contact([9]string{"id", "firstName", "lastName", "email", "phone", "company", "title", "createdAt", "updatedAt"})
	var deleted string
	f.str(&deleted, "deletedAt", false, 0, 100)
	return c, f.ok
}

func fastCanonicalContact(o *fastjson.Object) (acmecrm.AcmeContact, bool) {
	f := collect(o)
	c := f.contact([9]string{"contact_id", "acme_first_name", "acme_last_name", "acme_email", "acme_phone", "acme_company",
		"acme_title", "acme_created_at", "acme_updated_at"})
	f.str(&c.Address, "acme_address", false, 0, 600)
	f.str(&c.Notes, "acme_notes", false, 0, 2000)
	f.str(&c.Status, "acme_status", false, 0, -1)
	if !f.ok {
		return c, false
	}
	if _, present := f.m["acme_status"]; present && !plainStatus(c.Status) {
		return c, false
	}
	var ok bool
	if c.Tags, ok = fastStrings(f.m["acme_tags"], 100, 1, 50); !ok {
		return c, false
	}
	if c.ChangedFields, ok = fastStrings(f.m["changed_fields"], acmecrm.MaxChangedFields, 0, acmecrm.MaxChangedFieldLen); !ok {
		return c, false
	}
	if c.CustomFields, ok = fastCustomFields(f.m["acme_custom_fields"]); !ok {
		return c, false
	}
	return c, true
}

// fastStrings reads an optional array of strings (nil when absent, as the
// schema path reads it).
func fastStrings(v *fastjson.Value, maxItems, minLen, maxLen int) ([]string, bool) {
	if v == nil {
		return nil, true
	}
	if v.Type() != fastjson.TypeArray {
		return nil, false
	}
	items, _ := v.Array()
	if maxItems >= 0 && len(items) > maxItems {
		return nil, false
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := fastString(it, minLen, maxLen)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// fastCustomFields reads acme_custom_fields: at most 100 members named
// with 1–100 code points, each a string of at most 1,000 code points, a
// number (kept as its literal, like json.Number) or a boolean.
func fastCustomFields(v *fastjson.Value) (map[string]any, bool) {
	if v == nil {
		return nil, true
	}
	if v.Type() != fastjson.TypeObject {
		return nil, false
	}
	o, _ := v.Object()
	out := make(map[string]any, o.Len())
	ok := true
	o.Visit(func(k []byte, fv *fastjson.Value) {
		if n := utf8.RuneCount(k); n < 1 || n > 100 {
			ok = false
			return
		}
		switch fv.Type() {
		case fastjson.TypeString:
			s, good := fastString(fv, 0, 1000)
			ok = ok && good
			out[string(k)] = s
		case fastjson.TypeNumber:
			out[string(k)] = json.Number(fv.MarshalTo(nil))
		case fastjson.TypeTrue:
			out[string(k)] = true
		case fastjson.TypeFalse:
			out[string(k)] = false
		default:
			ok = false
		}
	})
	if !ok || len(out) > 100 {
		return nil, false
	}
	return out, true
}

// plainStatus is the schema's ^(?i:active|inactive|lead)$ for ASCII input.
func plainStatus(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return strings.EqualFold(s, "active") || strings.EqualFold(s, "inactive") || strings.EqualFold(s, "lead")
}

// plainEmail accepts the addresses format "email" accepts that have an
// unquoted local part and a host name (not an IP literal).
func plainEmail(s string) bool {
	if len(s) > 254 {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	if len(local) > 64 || local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		ch := local[i]
		if !isAlnum(ch) && strings.IndexByte(".!#$%&'*+-/=?^_`{|}~", ch) < 0 {
			return false
		}
	}
	domain = strings.TrimSuffix(domain, ".")
	if len(domain) > 253 {
		return false
	}
	for label := range strings.SplitSeq(domain, ".") {
		if len(label) < 1 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if !isAlnum(label[i]) && label[i] != '-' {
				return false
			}
		}
	}
	return true
}

func isAlnum(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9'
}

// plainDateTime accepts YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM) with a
// real calendar date, hours 0–23, minutes and seconds 0–59 (no leap
// second) and an offset of at most 23:59: all of which format
// "date-time" accepts.
func plainDateTime(s string) bool {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	second, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || second > 59 {
		return false
	}
	rest := s[19:]
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	if rest == "Z" || rest == "z" {
		return true
	}
	if len(rest) != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' {
		return false
	}
	zh, ok1 := digits(rest[1:3])
	zm, ok2 := digits(rest[4:6])
	return ok1 && ok2 && zh <= 23 && zm <= 59
}

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// hasEscapedSurrogate reports a \uD800–\uDFFF escape anywhere (JSON
// decoders differ on lone surrogates; such bodies take the schema path).
func hasEscapedSurrogate(body []byte) bool {
	for i := bytes.Index(body, []byte(`\u`)); i >= 0; {
		if i+3 < len(body) && (body[i+2] == 'd' || body[i+2] == 'D') && strings.IndexByte("89abcdefABCDEF", body[i+3]) >= 0 {
			return true
		}
		j := bytes.Index(body[i+2:], []byte(`\u`))
		if j < 0 {
			break
		}
		i += 2 + j
	}
	return false
}
