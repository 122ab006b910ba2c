package webhook

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/acmecrm/acmecrm"
)

func newParser(t testing.TB) *Parser {
	t.Helper()
	p, err := NewParser(5 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var received = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestParseCanonicalExample(t *testing.T) {
	t.Parallel()
	body := `{"event_type":"contact.created","event_id":"evt_12345","timestamp":"2025-05-17T17:06:39-07:00",
	  "data":{"contact_id":"1234","acme_first_name":"John","acme_last_name":"Doe","acme_email":"john.doe@example.com",
	  "acme_phone":"555-123-4567","acme_company":"Acme Inc","acme_title":"Engineer",
	  "acme_address":"1 Main St, Springfield, IL 62701, USA","acme_notes":"","acme_status":"Active",
	  "acme_tags":["vip"],"acme_custom_fields":{"tier":"gold","score":3},"changed_fields":["acme_email"],
	  "a_future_field":"tolerated"}}`
	ev, err := newParser(t).Parse([]byte(body), received)
	if err != nil {
		t.Fatal(err)
	}
	if ev.EventID != "evt_12345" || ev.EventType != "contact.created" || ev.ContactID != "1234" || ev.Source != "acmecrm" ||
		!ev.OccurredAt.Equal(time.Date(2025, 5, 18, 0, 6, 39, 0, time.UTC)) || !ev.ReceivedAt.Equal(received) ||
		ev.Data.Email != "john.doe@example.com" || ev.Data.CustomFields["tier"] != "gold" {
		t.Errorf("event = %+v", ev)
	}
}

// Both dialects of the same change normalise to the same event.
func TestDialectsNormaliseToTheSameEvent(t *testing.T) {
	t.Parallel()
	p := newParser(t)
	canonicalBody := `{"event_type":"contact.updated","event_id":"evt_9","timestamp":"2025-05-19T10:00:00Z",
	  "data":{"contact_id":"c-9","acme_first_name":"Ann","acme_last_name":"Lee","acme_email":"ann@example.com",
	  "acme_phone":"1","acme_company":"Co","acme_title":"CTO","acme_created_at":"2025-01-01T00:00:00Z","acme_updated_at":"2025-05-19T10:00:00Z"}}`
	legacyBody := `{"event":"contact.updated","id":"evt_9","timestamp":"2025-05-19T10:00:00.000Z",
	  "data":{"id":"c-9","firstName":"Ann","lastName":"Lee","email":"ann@example.com","phone":"1","company":"Co",
	  "title":"CTO","createdAt":"2025-01-01T00:00:00Z","updatedAt":"2025-05-19T10:00:00Z"}}`
	a, err := p.Parse([]byte(canonicalBody), received)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Parse([]byte(legacyBody), received)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("dialects differ:\n canonical %+v\n legacy    %+v", a, b)
	}
	del1, err1 := p.Parse([]byte(`{"event_type":"contact.deleted","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"c-9","acme_first_name":"x"}}`), received)
	del2, err2 := p.Parse([]byte(`{"event":"contact.deleted","id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"id":"c-9","deletedAt":"2025-05-19T10:00:00Z"}}`), received)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(del1, del2) || del1.Data.FirstName != "" {
		t.Fatalf("deletes: %+v %v / %+v %v", del1, err1, del2, err2)
	}
}

func problemPaths(t *testing.T, err error) []string {
	t.Helper()
	e, ok := err.(*acmecrm.Error)
	if !ok || e.Code != "INVALID_INPUT" {
		t.Fatalf("err = %v, want INVALID_INPUT", err)
	}
	var paths []string
	for _, fe := range e.Details.(map[string]any)["errors"].([]acmecrm.FieldError) {
		paths = append(paths, fe.Path)
	}
	return paths
}

func TestSchemaErrorsListEveryPath(t *testing.T) {
	t.Parallel()
	p := newParser(t)
	_, err := p.Parse([]byte(`{"event_type":"contact.created","event_id":"","timestamp":"yesterday",
	  "data":{"contact_id":"1","acme_first_name":"","acme_email":"not-an-email","acme_phone":5,
	  "acme_tags":["ok",""],"acme_status":"Zombie","acme_custom_fields":{"deep":{"x":1}}}}`), received)
	got := strings.Join(problemPaths(t, err), " ")
	for _, want := range []string{"event_id", "timestamp", "data.acme_first_name", "data", "data.acme_email", "data.acme_phone", "data.acme_tags.1", "data.acme_status", "data.acme_custom_fields.deep"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("no problem at %s in %q", want, got)
		}
	}
	for name, body := range map[string]string{
		"missing envelope":  `{}`,
		"data not object":   `{"event_type":"contact.deleted","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":[]}`,
		"delete without id": `{"event_type":"contact.deleted","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{}}`,
		"array":             `[1,2]`,
		"NUL in id":         `{"event_type":"contact.deleted","event_id":"e\u0000","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1"}}`,
		"long event id":     `{"event_type":"contact.deleted","event_id":"` + strings.Repeat("e", 256) + `","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1"}}`,
	} {
		if _, err := p.Parse([]byte(body), received); code(err) != "INVALID_INPUT" {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, body := range []string{``, `{`, `{"a":}`, "\xff"} {
		if _, err := p.Parse([]byte(body), received); code(err) != "MALFORMED_JSON" {
			t.Errorf("%q: %v", body, err)
		}
	}
	// A nesting bomb is refused, and the sender is told why.
	bomb := `{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_custom_fields":{"a":` +
		strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}}}`
	if _, err := p.Parse([]byte(bomb), received); code(err) != "MALFORMED_JSON" || !strings.Contains(err.Error(), "depth") {
		t.Errorf("nesting bomb: %v", err)
	}
}

// What the consumer would refuse is refused at the door, with the path in
// the sender's dialect: accepted, it could only be retried and dead-lettered.
func TestContactProblemsAreRefusedAtTheDoor(t *testing.T) {
	t.Parallel()
	p := newParser(t)
	for body, want := range map[string][]string{
		`{"event_type":"contact.created","event_id":"e1","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b"}}`:                                                       {"data.acme_email"},
		`{"event_type":"contact.updated","event_id":"e2","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co","acme_tags":["x"],"acme_custom_fields":{"n":1e400}}}`: {"data.acme_custom_fields.n"},
		`{"event":"contact.created","id":"e3","timestamp":"2025-05-19T10:00:00Z","data":{"id":"1","firstName":"a","lastName":"b","email":"\"a b\"@example.com"}}`:                                                                           {"data.email"},
	} {
		_, err := p.Parse([]byte(body), received)
		if got := problemPaths(t, err); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("problems at %v, want %v (%v)\n%s", got, want, err, body)
		}
	}
	// A delete carries no contact to check.
	if _, err := p.Parse([]byte(`{"event_type":"contact.deleted","event_id":"e5","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1"}}`), received); err != nil {
		t.Errorf("delete: %v", err)
	}
}

func TestUnknownEventTypeParsesForIgnoring(t *testing.T) {
	t.Parallel()
	ev, err := newParser(t).Parse([]byte(`{"event_type":"contact.merged","event_id":"e1","timestamp":"2025-05-19T10:00:00Z","data":{"whatever":1}}`), received)
	if err != nil || ev.EventType != "contact.merged" || acmecrm.KnownEventType(ev.EventType) {
		t.Fatalf("%+v %v", ev, err)
	}
}

// Events apply by timestamp, so an event dated in the future would outrank
// every real change to its contact until that date (a year-9999 update
// froze its contact for good). Beyond the clock skew the receiver tolerates
// in signatures it is refused; any past date is fine.
func TestEventsFromTheFutureAreRefused(t *testing.T) {
	t.Parallel()
	p := newParser(t) // 5 minutes ahead at most
	body := func(ts string, legacy bool) []byte {
		if legacy {
			return []byte(`{"event":"contact.deleted","id":"e1","timestamp":"` + ts + `","data":{"id":"c1"}}`)
		}
		return []byte(`{"event_type":"contact.updated","event_id":"e1","timestamp":"` + ts + `",` +
			`"data":{"contact_id":"c1","acme_first_name":"A","acme_last_name":"B","acme_email":"a@example.com"}}`)
	}
	for _, legacy := range []bool{false, true} {
		for _, ts := range []string{"9999-12-31T23:59:59Z", received.Add(5*time.Minute + time.Second).Format(time.RFC3339), "2026-01-01T01:00:00+00:30"} {
			_, err := p.Parse(body(ts, legacy), received)
			if code(err) != "INVALID_INPUT" {
				t.Errorf("timestamp %s (legacy %v): err = %v, want a refusal", ts, legacy, err)
				continue
			}
			fe := err.(*acmecrm.Error).Details.(map[string]any)["errors"].([]acmecrm.FieldError)
			if len(fe) != 1 || fe[0].Path != "timestamp" || !strings.Contains(fe[0].Message, "ahead of this server's clock") {
				t.Errorf("timestamp %s: problems %v, want one at timestamp", ts, fe)
			}
		}
		for _, ts := range []string{received.Add(5 * time.Minute).Format(time.RFC3339), "2001-01-01T00:00:00Z", "2026-01-01T05:00:00+05:00"} {
			if _, err := p.Parse(body(ts, legacy), received); err != nil {
				t.Errorf("timestamp %s (legacy %v): %v", ts, legacy, err)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}}`))
	f.Add([]byte(`{"event":"contact.deleted","id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"id":"1"}}`))
	f.Add([]byte(`{"event_type":1}`))
	f.Add([]byte(`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b"}}`))
	f.Add([]byte(`{"event_type":"contact.x\u0000","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{}}`))
	f.Add([]byte("{\"event\":\"contact.deleted\",\"id\":\"e\xff\",\"timestamp\":\"2025-05-19T10:00:00Z\",\"data\":{\"id\":\"1\"}}"))
	p := newParser(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := p.Parse(body, received)
		if err != nil {
			if c := code(err); c != "INVALID_INPUT" && c != "MALFORMED_JSON" {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		// Whatever is accepted has the fields the pipeline relies on.
		if ev.EventID == "" || ev.EventType == "" || ev.OccurredAt.IsZero() {
			t.Fatalf("accepted an incomplete event: %+v", ev)
		}
		if acmecrm.KnownEventType(ev.EventType) && ev.OccurredAt.After(received.Add(5*time.Minute)) {
			t.Fatalf("accepted an event from the future: %+v", ev)
		}
		if acmecrm.KnownEventType(ev.EventType) && ev.ContactID == "" {
			t.Fatalf("accepted a contact event without contact id: %+v", ev)
		}
		// Nothing is changed quietly: a body that is not UTF-8 is refused,
		// not stored with U+FFFD in place of its bytes.
		if !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not UTF-8: %q", body)
		}
		// A contact event accepted here is one the consumer can apply.
		if ev.EventType == acmecrm.EventContactCreated || ev.EventType == acmecrm.EventContactUpdated {
			var p acmecrm.Problems
			fields := acmecrm.FromAcme(ev.Data)
			if fields.Validate(&p, "", false); len(p) > 0 {
				t.Fatalf("accepted a contact the consumer refuses: %v\n%s", p, body)
			}
		}
		// What the receiver's statement stores as text must be storable.
		if !acmecrm.ValidText(ev.EventID + ev.EventType + ev.ContactID) {
			t.Fatalf("accepted identifiers PostgreSQL cannot store: %q %q %q", ev.EventID, ev.EventType, ev.ContactID)
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("cannot encode the event: %v", err)
		}
	})
}

// RFC 3339 lets "T" and "Z" be written in lower case (§5.6), and the JSON
// Schema's date-time format takes them: such a timestamp is the same time,
// not a 400 that would make the CRM give up on the event.
func TestLowerCaseDateTimesAreTheSameTime(t *testing.T) {
	t.Parallel()
	p := newParser(t)
	body := func(ts string) []byte {
		return []byte(`{"event_type":"contact.updated","event_id":"evt_lc","timestamp":"` + ts +
			`","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}}`)
	}
	want := time.Date(2025, 5, 19, 10, 0, 0, 500_000_000, time.UTC)
	for _, ts := range []string{"2025-05-19t10:00:00.5z", "2025-05-19t12:00:00.5+02:00", "2025-05-19T10:00:00.5z"} {
		ev, err := p.Parse(body(ts), received)
		if err != nil || !ev.OccurredAt.Equal(want) {
			t.Errorf("%s: %v %v, want %v", ts, ev.OccurredAt, err, want)
		}
		// The schema path reads it the same way.
		if _, _, _, err := p.parseWithSchema(body(ts)); err != nil {
			t.Errorf("%s: the schema refuses it: %v", ts, err)
		}
	}
	if _, err := p.Parse(body("2025-05-19x10:00:00z"), received); err == nil {
		t.Error("a date-time with x for T was accepted")
	}
}
