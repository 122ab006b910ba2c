package webhook

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fastSeeds are payloads at and around every rule the fast path checks by
// hand: each is accepted by both paths, declined by the fast path, or
// rejected by both — never accepted by the fast path alone.
var fastSeeds = []string{
	`{"event_type":"contact.created","event_id":"evt_1","timestamp":"2025-05-17T17:06:39-07:00","data":{"contact_id":"1234","acme_first_name":"John","acme_last_name":"Doe","acme_email":"john.doe@example.com","acme_phone":"555","acme_company":"Acme","acme_title":"Eng","acme_address":"1 Main St","acme_notes":"a \"quoted\"\nline","acme_status":"Active","acme_tags":["vip","b"],"acme_custom_fields":{"tier":"gold","score":3.50,"big":12345678901234567890,"ok":true,"no":false},"changed_fields":["acme_email"],"acme_created_at":"x","acme_updated_at":"y","a_future_field":{"x":[1]}}}`,
	`{"event":"contact.updated","id":"evt_9","timestamp":"2025-05-19T10:00:00.000Z","data":{"id":"c-9","firstName":"Ann","lastName":"Lee","email":"ann@example.com","phone":"1","company":"Co","title":"CTO","createdAt":"2025-01-01T00:00:00Z","updatedAt":"z","deletedAt":"q"}}`,
	`{"event_type":"contact.deleted","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"c-9","acme_first_name":5}}`,
	`{"event":"contact.deleted","id":"e","timestamp":"2025-05-19T10:00:00+05:30","data":{"id":"c-9"}}`,
	`{"event":"contact.deleted","event_type":"contact.deleted","id":"x","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"c"}}`,
	`{"event_type":"contact.merged","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{}}`,
	`{"event_type":"contact.created","event_id":"e","event_id":"f","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co","acme_email":"bad"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2024-02-29T23:59:59.123456789Z","data":{"contact_id":"1","acme_first_name":"Zoë","acme_last_name":"Ünal","acme_email":"o'brien+tag@sub-1.example.org.","acme_status":"LEAD"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2023-02-29T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T23:59:60Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19t10:00:00z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00+24:00","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"\"quoted\"@b.co"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@[127.0.0.1]"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a..b@c.d"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@-b.c"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b@c.d"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"","acme_last_name":"b","acme_email":"a@b.co"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co","acme_phone":null}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co","acme_status":"ſctive"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co","acme_tags":[""]}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co","acme_tags":[]}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co","acme_custom_fields":{"":1}}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co","acme_custom_fields":{"k":null}}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co","acme_custom_fields":{"k":1,"k":"two"}}}`,
	`{"event_type":"contact.created","event_id":"e\u0000","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}}`,
	`{"event_type":"contact.created","event_id":"\ud83d\ude00","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}}`,
	`{"event_type":"contact.created","event_id":"\ud800","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}}`,
	`{"event_type":"contact.created","event_id":"\u00e9","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}}`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"}} x`,
	`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":[]}`,
	`{"event\u005ftype":"contact.created","event_id":"e\/x\\y\ty","timestamp":"2025-05-19T10:00:00Z","data":{"contact\u005fid":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co","acme_custom_fields":{"k\u00e9":-0.0e-0}}}`,
	`[1]`, `"s"`, `null`, `{}`, ``, `{"event_type":"contact.created","event_id":"e",}`,
}

// boundarySeeds are the limits that keep a normalised event well below
// Kafka's default 1 MB record limit (changed_fields and the CRM's own
// timestamps were unbounded), at and one past each limit.
func boundarySeeds() []string {
	person := `"contact_id":"1","acme_first_name":"a","acme_last_name":"b","acme_email":"a@b.co"`
	hook := func(data string) string {
		return `{"event_type":"contact.updated","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{` + person + `,` + data + `}}`
	}
	list := func(n int, item string) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	x := func(n int) string { return strings.Repeat("é", n) }
	return []string{
		hook(`"changed_fields":[` + list(100, `"f"`) + `]`), hook(`"changed_fields":[` + list(101, `"f"`) + `]`),
		hook(`"changed_fields":["` + x(200) + `"]`), hook(`"changed_fields":["` + x(201) + `"]`),
		hook(`"acme_created_at":"` + x(100) + `"`), hook(`"acme_updated_at":"` + x(101) + `"`),
		`{"event":"contact.created","id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"id":"1","firstName":"a","lastName":"b","email":"a@b.co","createdAt":"` + x(100) + `"}}`,
		`{"event":"contact.updated","id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"id":"1","firstName":"a","lastName":"b","email":"a@b.co","deletedAt":"` + x(101) + `"}}`,
	}
}

// Whatever the fast path accepts, the schema path accepts and normalises
// to the same event.
func FuzzFastPathAgreesWithSchema(f *testing.F) {
	for _, s := range append(fastSeeds, boundarySeeds()...) {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"event_type":"contact.created","event_id":"e","timestamp":"2025-05-19T10:00:00Z","data":{"contact_id":"1","acme_first_name":"` +
		strings.Repeat("é", 100) + `","acme_last_name":"b","acme_email":"a@b.co","acme_tags":["` + strings.Repeat("t", 51) + `"]}}`))
	p := newParser(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return // Parse refuses it before either path (CheckJSONText)
		}
		fast, fastTS, fastLegacy, ok := fastParse(body)
		if !ok {
			return
		}
		slow, slowTS, slowLegacy, err := p.parseWithSchema(body)
		if err != nil {
			t.Fatalf("the fast path accepted what the schema rejects (%v):\n%s", err, body)
		}
		if fastTS != slowTS || fastLegacy != slowLegacy || !reflect.DeepEqual(fast, slow) {
			t.Fatalf("the paths read different events:\n fast %+v %q\n slow %+v %q\n%s", fast, fastTS, slow, slowTS, body)
		}
	})
}

// The fast path takes the ordinary payloads of both dialects (else it
// would save nothing) and declines what it does not check itself.
func TestFastPathCoversOrdinaryPayloads(t *testing.T) {
	t.Parallel()
	for i, want := range map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true, 7: true,
		5: false, 9: false, 13: false, 14: false, 28: false} {
		if _, _, _, ok := fastParse([]byte(fastSeeds[i])); ok != want {
			t.Errorf("seed %d: fast path ok = %v, want %v", i, ok, want)
		}
	}
}

// The boundary seeds alternate: at a limit (both paths accept it), one
// past it (the receiver refuses it).
func TestNormalisedEventFieldsAreBounded(t *testing.T) {
	t.Parallel()
	p := newParser(t)
	for i, body := range boundarySeeds() {
		atLimit := i%2 == 0
		if _, _, _, ok := fastParse([]byte(body)); ok != atLimit {
			t.Errorf("seed %d: fast path ok = %v, want %v", i, ok, atLimit)
		}
		_, err := p.Parse([]byte(body), received)
		if atLimit && err != nil {
			t.Errorf("seed %d, at the limit: %v", i, err)
		}
		if !atLimit && code(err) != "INVALID_INPUT" {
			t.Errorf("seed %d, one past the limit: %v", i, err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	p := newParser(b)
	body := []byte(fastSeeds[0])
	b.Run("fast path", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Parse(body, received); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("schema", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ev, ts, legacy, err := p.parseWithSchema(body)
			if err == nil {
				_, err = finish(ev, ts, legacy, received, 5*time.Minute)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
