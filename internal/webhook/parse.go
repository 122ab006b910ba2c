package webhook

import (
	"bytes"
	"embed"
	"encoding/json"
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
}

// NewParser compiles the embedded schemas.
func NewParser() (*Parser, error) {
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
	return &Parser{canonical: canonical, legacy: legacy, printer: message.NewPrinter(language.English)}, nil
}

// Schema returns the JSON Schema document of a dialect ("canonical" or
// "legacy"), for publishing in API documents.
func Schema(dialect string) ([]byte, error) {
	return schemaFiles.ReadFile("schema/" + dialect + ".json")
}

// canonical is the canonical dialect's envelope.
type canonical struct {
	EventType string              `json:"event_type"`
	EventID   string              `json:"event_id"`
	Timestamp string              `json:"timestamp"`
	Data      acmecrm.AcmeContact `json:"data"`
}

// legacy is the original simulator's dialect.
type legacy struct {
	Event     string `json:"event"`
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		ID        string `json:"id"`
		FirstName string `json:"firstName"`
		LastName  string `json:"lastName"`
		Email     string `json:"email"`
		Phone     string `json:"phone"`
		Company   string `json:"company"`
		Title     string `json:"title"`
		CreatedAt string `json:"createdAt"`
		UpdatedAt string `json:"updatedAt"`
		DeletedAt string `json:"deletedAt"`
	} `json:"data"`
}

// Parse validates body and normalises it. Malformed JSON is
// MALFORMED_JSON; schema violations are INVALID_INPUT listing every failing
// path. An event type the service does not know is returned as it is (the
// caller stores it as ignored).
func (p *Parser) Parse(body []byte, receivedAt time.Time) (acmecrm.Event, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return acmecrm.Event{}, acmecrm.Errorf(acmecrm.KindInvalid, "MALFORMED_JSON", "the body is not valid JSON")
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
		return acmecrm.Event{}, p.problems(err)
	}

	ev := acmecrm.Event{ReceivedAt: receivedAt.UTC(), Source: acmecrm.SourceAcme}
	var ts string
	if isLegacy {
		var l legacy
		if err := json.Unmarshal(body, &l); err != nil {
			return acmecrm.Event{}, acmecrm.Errorf(acmecrm.KindInvalid, "INVALID_INPUT", "the body does not match the legacy dialect")
		}
		ev.EventID, ev.EventType, ts = l.ID, l.Event, l.Timestamp
		ev.Data = acmecrm.AcmeContact{
			ContactID: l.Data.ID, FirstName: l.Data.FirstName, LastName: l.Data.LastName, Email: l.Data.Email,
			Phone: l.Data.Phone, Company: l.Data.Company, Title: l.Data.Title,
			CreatedAt: l.Data.CreatedAt, UpdatedAt: l.Data.UpdatedAt,
		}
	} else {
		var c canonical
		if err := json.Unmarshal(body, &c); err != nil {
			return acmecrm.Event{}, acmecrm.Errorf(acmecrm.KindInvalid, "INVALID_INPUT", "the body does not match the AcmeCRM dialect")
		}
		ev.EventID, ev.EventType, ts, ev.Data = c.EventID, c.EventType, c.Timestamp, c.Data
	}
	occurred, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		var pr acmecrm.Problems
		pr.Add("timestamp", "must be an RFC 3339 date-time")
		return acmecrm.Event{}, pr.Err("invalid webhook payload")
	}
	ev.OccurredAt = occurred.UTC()
	ev.ContactID = ev.Data.ContactID
	if ev.EventType == acmecrm.EventContactDeleted {
		ev.Data = acmecrm.AcmeContact{ContactID: ev.ContactID} // only the id matters
	}
	return ev, nil
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
