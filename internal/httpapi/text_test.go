package httpapi

import (
	"strings"
	"testing"
	"time"
)

// Text PostgreSQL cannot hold (bytes that are not UTF-8, U+0000) is easy to
// send — %FF or %00 in a URL, \u0000 in JSON — and used to reach queries,
// failing there as a 500 or, in a webhook, later in the consumer. Every way
// in now answers 400 naming the place, and nothing is written.
func TestUnstorableTextIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()

	hook := func(id, data string) string {
		return `{"event_type":"contact.created","event_id":"` + id + `","timestamp":"2025-05-17T17:06:39Z","data":{` + data + `}}`
	}
	person := `"acme_last_name":"Doe","acme_email":"jd@example.com"`
	webhooks := []struct {
		name, body, code, path string
	}{
		{"NUL in a name", hook("evt_t1", `"contact_id":"c1","acme_first_name":"Jo\u0000hn",`+person), "INVALID_INPUT", "data.acme_first_name"},
		{"NUL in a tag", hook("evt_t2", `"contact_id":"c2","acme_first_name":"J",`+person+`,"acme_tags":["ok","x\u0000"]`), "INVALID_INPUT", "data.acme_tags.1"},
		{"NUL in a custom field's name", hook("evt_t3", `"contact_id":"c3","acme_first_name":"J",`+person+`,"acme_custom_fields":{"k\u0000":"v"}`), "INVALID_INPUT", "data.acme_custom_fields"},
		{"NUL in the contact id", hook("evt_t4", `"contact_id":"c\u00004"`), "INVALID_INPUT", "data.contact_id"},
		{"NUL in an unknown event type", `{"event_type":"contact.x\u0000","event_id":"evt_t5","timestamp":"2025-05-17T17:06:39Z","data":{}}`, "INVALID_INPUT", "event_type"},
		{"not UTF-8", hook("evt_t6", "\"contact_id\":\"c\xff6\",\"acme_first_name\":\"J\","+person), "MALFORMED_JSON", ""},
	}
	for _, c := range webhooks {
		r := b.post(c.body, webhookSecret, now)
		if r.status != 400 || r.errCode() != c.code || !strings.Contains(string(r.body), names(c.path)) {
			t.Errorf("webhook, %s: %d %s, want 400 %s at %q", c.name, r.status, r.body, c.code, c.path)
		}
	}
	if n := b.count(`SELECT count(*) FROM webhook_events WHERE event_id LIKE 'evt_t%'`) + b.count(`SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("refused webhooks wrote %d rows", n)
	}
	// The signature is still judged first.
	if r := b.post(webhooks[0].body, []byte("guess"), now); r.status != 401 {
		t.Errorf("forged webhook with a NUL: %d %s", r.status, r.body)
	}

	// JSON bodies of the REST API.
	withKey := newContact("t-1")
	withKey["customFields"] = map[string]any{"k\x00": "v"}
	bodies := []struct {
		name, method, path, token string
		body                      any
		code, where               string
	}{
		{"NUL in a custom field's name", "POST", "/api/contacts", b.user, withKey, "INVALID_INPUT", "customFields"},
		{"not UTF-8", "POST", "/api/contacts", b.user, "{\"source\":\"api\",\"sourceId\":\"t-2\",\"firstName\":\"J\xe9\",\"lastName\":\"D\",\"email\":\"t2@example.com\"}", "MALFORMED_JSON", ""},
		{"NUL in a login", "POST", "/api/auth/login", "", `{"username":"admin\u0000@acmecrm.com","password":"x"}`, "INVALID_INPUT", "username"},
		{"NUL in an AcmeCRM-format id", "POST", "/api/contacts/acme", b.user, `{"contact_id":"z\u00001","acme_first_name":"A","acme_last_name":"B","acme_email":"z1@example.com"}`, "INVALID_INPUT", "contact_id"},
	}
	for _, c := range bodies {
		r := b.call(c.method, c.path, c.token, c.body)
		if r.status != 400 || r.errCode() != c.code || !strings.Contains(string(r.body), names(c.where)) {
			t.Errorf("%s %s, %s: %d %s, want 400 %s at %q", c.method, c.path, c.name, r.status, r.body, c.code, c.where)
		}
	}
	created := b.create(newContact("t-3"))
	if r := b.call("PATCH", "/api/contacts/"+created["id"].(string), b.user, `{"customFields":{"a\u0000":1}}`, "If-Match", `"1"`); r.status != 400 || r.errCode() != "INVALID_INPUT" {
		t.Errorf("PATCH with a NUL in a member name: %d %s", r.status, r.body)
	}
	if n := b.count(`SELECT count(*) FROM contacts WHERE source_id LIKE 't-%' OR source_id LIKE 'z%'`); n != 1 {
		t.Errorf("%d contacts, want only the one created", n)
	}

	// Paths and queries.
	urls := []struct{ token, url, where string }{
		{b.user, "/api/contacts?search=%00abc", "search"},
		{b.user, "/api/contacts?search=%FFabc", "search"},
		{b.user, "/api/contacts?source=%FF", "source"},
		{b.user, "/api/contacts?%00=1", "(query)"},
		{b.user, "/api/contacts/source/acme/%FFx", "(path)"},
		{b.user, "/api/contacts/source/%00/x", "(path)"},
		{b.user, "/api/webhooks?contactId=%00", "contactId"},
		{b.user, "/api/webhooks/pending?contactId=%FF", "contactId"},
		{b.user, "/api/webhooks/%00", "(path)"},
		{b.user, "/api/webhooks/%FF", "(path)"},
		{b.admin, "/api/admin/dead-letters?eventType=%FF", "eventType"},
	}
	for _, u := range urls {
		r := b.call("GET", u.url, u.token, nil)
		if r.status != 400 || r.errCode() != "INVALID_INPUT" || !strings.Contains(string(r.body), names(u.where)) {
			t.Errorf("GET %s: %d %s, want 400 at %q", u.url, r.status, r.body, u.where)
		}
	}
	// Without a token the answer is still 401: nothing is said before it.
	if r := b.call("GET", "/api/contacts?search=%00", "", nil); r.status != 401 {
		t.Errorf("unauthenticated: %d %s", r.status, r.body)
	}
}

// names is what a refusal's body must contain for path: the problem's path,
// or for a malformed body (no path) what is wrong with it.
func names(path string) string {
	if path == "" {
		return "not valid UTF-8"
	}
	return `"path":"` + path + `"`
}

// A query Go cannot parse in full used to lose the pairs it could not read:
// `?search=%zz` listed every contact, `?limit=5;x` gave the default page.
// And of a parameter given twice the first value won without a word. Both
// are now 400s that name the place, on every route that reads a query.
func TestMalformedQueriesAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, name := range []string{"Qxone", "Qxtwo"} {
		c := newContact(name)
		c["firstName"] = name
		b.create(c)
	}

	bad := []struct{ token, url, where, says string }{
		{b.user, "/api/contacts?search=%zz", "(query)", "invalid URL escape"},
		{b.user, "/api/contacts?search=ab%", "(query)", "invalid URL escape"},
		{b.user, "/api/contacts?limit=1;page=2", "(query)", "semicolon"},
		{b.user, "/api/contacts?limit=1&limit=2", "limit", "must be given once"},
		{b.user, "/api/contacts?search=qxone&search=qxtwo", "search", "must be given once"},
		{b.user, "/api/webhooks?status=processed&status=dead", "status", "must be given once"},
		{b.user, "/api/webhooks/pending?cursor=%g0", "(query)", "invalid URL escape"},
		{b.admin, "/api/admin/dead-letters?limit=1&limit=1", "limit", "must be given once"},
		{b.admin, "/api/simulator/webhooks/history?offset=0;", "(query)", "semicolon"},
	}
	for _, c := range bad {
		r := b.call("GET", c.url, c.token, nil)
		if r.status != 400 || r.errCode() != "INVALID_INPUT" || !strings.Contains(string(r.body), names(c.where)) || !strings.Contains(string(r.body), c.says) {
			t.Errorf("GET %s: %d %s, want 400 at %q saying %q", c.url, r.status, r.body, c.where, c.says)
		}
	}
	// Well-formed queries, escapes included, still work.
	good := []string{
		"/api/contacts?search=qxone",
		"/api/contacts?search=%71xone",
		"/api/contacts?search=Qx%6Fne&limit=5&page=1",
		"/api/contacts?search=qxone&",
	}
	for _, u := range good {
		r := b.call("GET", u, b.user, nil)
		if r.status != 200 || !strings.Contains(string(r.body), `"totalItems":1`) {
			t.Errorf("GET %s: %d %s, want the one contact Qxone", u, r.status, r.body)
		}
	}
}

// encoding/json stops at the first unknown member and names it without
// its path, so `{"address":{"zip":…}}` was refused as an unknown "zip".
// Every unknown member is now named with its full path, and nothing is
// written.
func TestUnknownMembersAreNamedWithTheirPaths(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newContact("u-1")
	c["address"] = map[string]any{"street": "1 Main St", "zip": "62701"}
	c["isAdmin"] = true
	r := b.call("POST", "/api/contacts", b.user, c)
	if r.status != 400 || r.errCode() != "INVALID_INPUT" || !strings.Contains(string(r.body), `"path":"address.zip"`) || !strings.Contains(string(r.body), `"path":"isAdmin"`) {
		t.Errorf("POST with two unknown members: %d %s", r.status, r.body)
	}
	if n := b.count(`SELECT count(*) FROM contacts WHERE source_id = 'u-1'`); n != 0 {
		t.Errorf("refused contact stored (%d rows)", n)
	}
	created := b.create(newContact("u-2"))
	r = b.call("PATCH", "/api/contacts/"+created["id"].(string), b.user, `{"address":{"zip":"1"}}`, "If-Match", `"1"`)
	if r.status != 400 || !strings.Contains(string(r.body), `"path":"address.zip"`) {
		t.Errorf("PATCH with an unknown nested member: %d %s", r.status, r.body)
	}
	r = b.call("POST", "/api/auth/login", "", `{"username":"x@example.com","password":"pw","remember":true}`)
	if r.status != 400 || !strings.Contains(string(r.body), `"path":"remember"`) {
		t.Errorf("login with an unknown member: %d %s", r.status, r.body)
	}
	// Members of custom fields are the contact's own: never unknown.
	ok := newContact("u-3")
	ok["customFields"] = map[string]any{"zip": "x", "Address": 1}
	if r := b.call("POST", "/api/contacts", b.user, ok); r.status != 201 {
		t.Errorf("custom fields named like known members: %d %s", r.status, r.body)
	}
}
