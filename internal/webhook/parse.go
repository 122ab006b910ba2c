package webhook

import (
	"bytes"
	"embed"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/acmecrm/acmecrm"
)

//go:embed schema/*.json
var schemaFiles embed.FS

// Parser validates payloads against the JSON Schemas of both dialects.
type Parser struct {
	canonical, legacy *jsonschema.Schema
	printer           *message.Printer
	maxAhead          time.Duration
}

// NewParser compiles the embedded schemas. An event whose timestamp is
// more than maxAhead later than its arrival is refused (the receiver passes
// ACME_WEBHOOK_MAX_AGE, the clock skew it tolerates in signatures): events
// apply by timestamp, so one dated in the future would win over every real
// change to its contact until that date.
func NewParser(maxAhead time.Duration) (*Parser, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	load := func(name string) (*jsonschema.Schema, error) {
		b, err := schemaFiles.ReadFile("schema/" + name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		if err := c.AddResource(name, doc); err != nil {
			return nil, err
		}
		return c.Compile(name)
	}
	canonical, err := load("canonical.json")
	if err != nil {
		return nil, err
	}
	legacy, err := load("legacy.json")
	if err != nil {
		return nil, err
	}
	return &Parser{canonical: canonical, legacy: legacy, printer: message.NewPrinter(language.English), maxAhead: maxAhead}, nil
}

// Schema returns the JSON Schema document of a dialect ("canonical" or
// "legacy"), for publishing in API documents.
func Schema(dialect string) ([]byte, error) {
	return schemaFiles.ReadFile("schema/" + dialect + ".json")
}

// Parse validates body and normalises it. Malformed JSON is
// MALFORMED_JSON; schema violations are INVALID_INPUT listing every failing
// path. An event type the service does not know is returned as it is (the
// caller stores it as ignored).
func (p *Parser) Parse(body []byte, receivedAt time.Time) (acmecrm.Event, error) {
	// Text PostgreSQL cannot store (not UTF-8, or U+0000 anywhere) is refused
	// here, not when its batch's statement or the consumer fails on it.
	if err := acmecrm.CheckJSONText(body); err != nil {
		return acmecrm.Event{}, err
	}
	ev, ts, legacy, ok := fastParse(body)
	if !ok {
		var err error
		if ev, ts, legacy, err = p.parseWithSchema(body); err != nil {
			return acmecrm.Event{}, err
		}
	}
	return finish(ev, ts, legacy, receivedAt, p.maxAhead)
}

// parseWithSchema validates body with the JSON Schema of its dialect and
// reads the event from it (its timestamp as written).
func (p *Parser) parseWithSchema(body []byte) (acmecrm.Event, string, bool, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return acmecrm.Event{}, "", false, acmecrm.Errorf(acmecrm.KindInvalid, "MALFORMED_JSON", "the body is empty")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		// The decoder's message says where and why (a byte, the end, the
		// nesting depth), as the REST API's does; it holds nothing secret.
		return acmecrm.Event{}, "", false, acmecrm.Errorf(acmecrm.KindInvalid, "MALFORMED_JSON", "the body is not valid JSON: %v", err)
	}
	obj, _ := doc.(map[string]any)
	_, isLegacy := obj["event"]
	if _, ok := obj["event_type"]; ok || !isLegacy {
		isLegacy = false
	}
	schema := p.canonical
	if isLegacy {
		schema = p.legacy
	}
	if err := schema.Validate(doc); err != nil {
		return acmecrm.Event{}, "", false, p.problems(err)
	}

	// The document is valid: read it directly, without a second parse.
	var ev acmecrm.Event
	data, _ := obj["data"].(map[string]any)
	var ts string
	if isLegacy {
		ev.EventID, ev.EventType, ts = str(obj, "id"), str(obj, "event"), str(obj, "timestamp")
		ev.Data = acmecrm.AcmeContact{
			ContactID: str(data, "id"), FirstName: str(data, "firstName"), LastName: str(data, "lastName"),
			Email: str(data, "email"), Phone: str(data, "phone"), Company: str(data, "company"), Title: str(data, "title"),
			CreatedAt: str(data, "createdAt"), UpdatedAt: str(data, "updatedAt"),
		}
	} else {
		ev.EventID, ev.EventType, ts = str(obj, "event_id"), str(obj, "event_type"), str(obj, "timestamp")
		ev.Data = acmecrm.AcmeContact{
			ContactID: str(data, "contact_id"), FirstName: str(data, "acme_first_name"), LastName: str(data, "acme_last_name"),
			Email: str(data, "acme_email"), Phone: str(data, "acme_phone"), Company: str(data, "acme_company"),
			Title: str(data, "acme_title"), Address: str(data, "acme_address"), Notes: str(data, "acme_notes"),
			Status: str(data, "acme_status"), Tags: strs(data, "acme_tags"), ChangedFields: strs(data, "changed_fields"),
			CreatedAt: str(data, "acme_created_at"), UpdatedAt: str(data, "acme_updated_at"),
		}
		if cf, ok := data["acme_custom_fields"].(map[string]any); ok {
			ev.Data.CustomFields = cf
		}
	}
	return ev, ts, isLegacy, nil
}

// finish applies what both paths share to a valid payload's event: the
// checks JSON Schema cannot express, the timestamps and the source.
func finish(ev acmecrm.Event, ts string, legacy bool, receivedAt time.Time, maxAhead time.Duration) (acmecrm.Event, error) {
	ev.ReceivedAt, ev.Source = receivedAt.UTC(), acmecrm.SourceAcme
	var pr acmecrm.Problems
	occurred, err := parseDateTime(ts)
	switch {
	case err != nil:
		pr.Add("timestamp", "must be an RFC 3339 date-time")
	case occurred.After(receivedAt.Add(maxAhead)):
		pr.Add("timestamp", "is more than %s ahead of this server's clock: an event from the future would outrank every later change to its contact", maxAhead)
	}
	// The contact passes the consumer's own validation, or it is refused
	// now: accepted, it could only be retried and dead-lettered there.
	if ev.EventType == acmecrm.EventContactCreated || ev.EventType == acmecrm.EventContactUpdated {
		var fp acmecrm.Problems
		fields := acmecrm.FromAcme(ev.Data)
		fields.Validate(&fp, "", false)
		for _, e := range fp {
			path := e.Path // the legacy dialect uses the internal names
			if !legacy {
				path = acmecrm.AcmePath(path)
			}
			pr = append(pr, acmecrm.FieldError{Path: "data." + path, Message: e.Message})
		}
	}
	if err := pr.Err("invalid webhook payload"); err != nil {
		return acmecrm.Event{}, err
	}
	ev.OccurredAt = occurred.UTC()
	ev.ContactID = ev.Data.ContactID
	if ev.EventType == acmecrm.EventContactDeleted {
		ev.Data = acmecrm.AcmeContact{ContactID: ev.ContactID} // only the id matters
	}
	return ev, nil
}

// str reads a string member (the schema has checked its type).
func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// strs reads an array of strings.
func strs(m map[string]any, key string) []string {
	list, ok := m[key].([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// problems turns a schema validation error into every failing path.
func (p *Parser) problems(err error) error {
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return acmecrm.Errorf(acmecrm.KindInvalid, "INVALID_INPUT", "invalid webhook payload")
	}
	var pr acmecrm.Problems
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		path := strings.Join(e.InstanceLocation, ".")
		if path == "" {
			path = "(body)"
		}
		msg := e.ErrorKind.LocalizedString(p.printer)
		if key := path + msg; !seen[key] {
			seen[key] = true
			pr.Add(path, "%s", msg)
		}
	}
	walk(ve)
	sort.SliceStable(pr, func(i, j int) bool { return pr[i].Path < pr[j].Path })
	return pr.Err("invalid webhook payload")
}
