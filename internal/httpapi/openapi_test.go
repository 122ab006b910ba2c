package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

// contract is the OpenAPI document, ready to check responses against.
type contract struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	paths    []string // documented path templates
}

func loadContract(t *testing.T) *contract {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(OpenAPI))
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	c := &contract{doc: doc.(map[string]any), compiler: jsonschema.NewCompiler()}
	c.compiler.DefaultDraft(jsonschema.Draft2020)
	c.compiler.AssertFormat()
	if err := c.compiler.AddResource("urn:openapi", doc); err != nil {
		t.Fatal(err)
	}
	for p := range c.doc["paths"].(map[string]any) {
		c.paths = append(c.paths, p)
	}
	return c
}

var paramRE = regexp.MustCompile(`\{[^}]+\}`)

// template finds the documented path a request path matches; literal
// segments win over parameters (/api/webhooks/pending over {eventId}).
func (c *contract) template(path string) (string, bool) {
	best, bestParams := "", 99
	segs := strings.Split(path, "/")
	for _, tpl := range c.paths {
		tsegs := strings.Split(tpl, "/")
		if len(tsegs) != len(segs) {
			continue
		}
		params, ok := 0, true
		for i, ts := range tsegs {
			if paramRE.MatchString(ts) && segs[i] != "" {
				params++
			} else if ts != segs[i] {
				ok = false
				break
			}
		}
		if ok && params < bestParams {
			best, bestParams = tpl, params
		}
	}
	return best, best != ""
}

// deref follows a local $ref of the document.
func (c *contract) deref(v any) (any, string) {
	m, ok := v.(map[string]any)
	if !ok {
		return v, ""
	}
	ref, ok := m["$ref"].(string)
	if !ok {
		return v, ""
	}
	var cur any = c.doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cur = cur.(map[string]any)[strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")]
	}
	return cur, strings.TrimPrefix(ref, "#")
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// check validates one real response against the document.
func (c *contract) check(method, path string, r response) error {
	tpl, ok := c.template(path)
	if !ok {
		return fmt.Errorf("%s %s: path not documented", method, path)
	}
	op, ok := c.doc["paths"].(map[string]any)[tpl].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if !ok {
		return fmt.Errorf("%s %s: method not documented", method, tpl)
	}
	code := strconv.Itoa(r.status)
	raw, ok := op["responses"].(map[string]any)[code]
	if !ok {
		return fmt.Errorf("%s %s: status %d not documented", method, tpl, r.status)
	}
	resp, base := c.deref(raw)
	if base == "" {
		base = "/paths/" + pointerEscape(tpl) + "/" + strings.ToLower(method) + "/responses/" + code
	}
	rm := resp.(map[string]any)
	headers, _ := rm["headers"].(map[string]any)
	for name := range headers {
		if name != "Location" && r.header.Get(name) == "" {
			return fmt.Errorf("%s %s %d: documented header %s missing", method, tpl, r.status, name)
		}
	}
	content, _ := rm["content"].(map[string]any)
	if len(content) == 0 {
		if len(r.body) > 0 {
			return fmt.Errorf("%s %s %d: a body where none is documented", method, tpl, r.status)
		}
		return nil
	}
	ct := strings.TrimSpace(strings.Split(r.header.Get("Content-Type"), ";")[0])
	if _, ok := content[ct]; !ok {
		return fmt.Errorf("%s %s %d: content type %q not documented", method, tpl, r.status, ct)
	}
	if ct != "application/json" {
		return nil
	}
	sch, err := c.compiler.Compile("urn:openapi#" + base + "/content/application~1json/schema")
	if err != nil {
		return fmt.Errorf("compile the schema of %s %s %d: %v", method, tpl, r.status, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
	if err != nil {
		return err
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("%s %s %d: the response does not match the document: %v\n%s", method, tpl, r.status, err, r.body)
	}
	return nil
}

// Every route answers as the OpenAPI document says — bodies, status codes,
// documented headers — and every route of routes.go is documented and
// exercised here, so the document cannot drift from the code.
func TestResponsesMatchTheOpenAPIDocument(t *testing.T) {
	t.Parallel()
	c := loadContract(t)
	b := setup(t, setupOpts{metrics: true})
	exercised := map[string]bool{}
	b.seen = func(method, path string, r response) {
		if err := c.check(method, path, r); err != nil {
			t.Error(err)
		}
		if tpl, ok := c.template(path); ok {
			exercised[method+" "+tpl] = true
		}
	}
	expect := func(want int, r response) response {
		t.Helper()
		if r.status != want {
			t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
		}
		return r
	}

	// Operations.
	for _, p := range []string{"/health", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"} {
		expect(200, b.call("GET", p, "", nil))
	}
	// Auth.
	expect(401, b.call("POST", "/api/auth/login", "", map[string]string{"username": "user@acmecrm.com", "password": "wrong-password"}))
	expect(400, b.call("POST", "/api/auth/login", "", map[string]string{"username": ""}))
	tok := b.login("user@acmecrm.com", userPassword)
	tok = expect(200, b.call("POST", "/api/auth/refresh", tok, nil)).json["token"].(string)
	expect(400, b.call("POST", "/api/auth/logout?x=%00", tok, nil))
	expect(200, b.call("POST", "/api/auth/logout", tok, nil))
	expect(401, b.call("POST", "/api/auth/logout", tok, nil))
	expect(200, b.call("POST", "/api/auth/logout-all", b.login("user@acmecrm.com", userPassword), nil))
	b.user = b.login("user@acmecrm.com", userPassword)

	// Contacts.
	ct := expect(201, b.call("POST", "/api/contacts", b.user, newContact("c-openapi"))).data()
	id := ct["id"].(string)
	expect(409, b.call("POST", "/api/contacts", b.user, newContact("c-openapi")))
	expect(400, b.call("POST", "/api/contacts", b.user, map[string]any{"firstName": ""}))
	expect(415, b.call("POST", "/api/contacts", b.user, nil, "Content-Type", "text/plain"))
	expect(401, b.call("GET", "/api/contacts", "", nil))
	expect(200, b.call("GET", "/api/contacts?limit=5&sort=email&order=asc&search=john", b.user, nil))
	expect(400, b.call("GET", "/api/contacts?limit=1000", b.user, nil))
	etag := expect(200, b.call("GET", "/api/contacts/"+id, b.user, nil)).header.Get("ETag")
	expect(304, b.call("GET", "/api/contacts/"+id, b.user, nil, "If-None-Match", etag))
	expect(400, b.call("GET", "/api/contacts/not-a-uuid", b.user, nil))
	expect(404, b.call("GET", "/api/contacts/00000000-0000-4000-8000-000000000000", b.user, nil))
	expect(200, b.call("GET", "/api/contacts/source/api/c-openapi", b.user, nil))
	expect(404, b.call("GET", "/api/contacts/source/api/nothing", b.user, nil))
	expect(400, b.call("GET", "/api/contacts/source/api/%FF", b.user, nil))
	replaced := newContact("c-openapi")
	replaced["title"] = "Principal"
	etag = expect(200, b.call("PUT", "/api/contacts/"+id, b.user, replaced, "If-Match", etag)).header.Get("ETag")
	expect(412, b.call("PUT", "/api/contacts/"+id, b.user, replaced, "If-Match", `"1"`))
	expect(428, b.call("PATCH", "/api/contacts/"+id, b.user, map[string]any{"notes": "met at the fair"}))
	expect(400, b.call("PATCH", "/api/contacts/"+id, b.user, map[string]any{"email": "not an email"}, "If-Match", etag))
	expect(200, b.call("PATCH", "/api/contacts/"+id, b.user, map[string]any{"notes": "met at the fair"}, "If-Match", etag))
	expect(200, b.call("DELETE", "/api/contacts/"+id, b.user, nil))
	expect(404, b.call("DELETE", "/api/contacts/00000000-0000-4000-8000-000000000000", b.user, nil))
	acme := map[string]any{"contact_id": "crm-openapi", "acme_first_name": "Ada", "acme_last_name": "Lovelace", "acme_email": "ada@example.com"}
	expect(201, b.call("POST", "/api/contacts/acme", b.user, acme))
	acme["acme_title"] = "Countess"
	expect(200, b.call("POST", "/api/contacts/acme", b.user, acme))

	// Webhooks.
	body := `{"event_type":"contact.created","event_id":"evt_openapi","timestamp":"` + time.Now().UTC().Format(time.RFC3339) +
		`","data":{"contact_id":"crm-wh","acme_first_name":"Eve","acme_last_name":"Hook","acme_email":"eve@example.com"}}`
	h := http.Header{}
	webhook.AcmeHeaders(h, time.Now(), []byte(body), webhookSecret)
	signed := []string{"X-Acme-Timestamp", h.Get("X-Acme-Timestamp"), "X-Acme-Signature", h.Get("X-Acme-Signature")}
	expect(202, b.call("POST", "/api/webhooks", "", body, signed...))
	expect(202, b.call("POST", "/api/webhooks", "", body, signed...)) // duplicate
	expect(401, b.call("POST", "/api/webhooks", "", body))
	expect(415, b.call("POST", "/api/webhooks", "", body, append(signed, "Content-Type", "text/plain")...))
	bad := `{"event_type":"contact.created"}`
	webhook.AcmeHeaders(h, time.Now(), []byte(bad), webhookSecret)
	expect(400, b.call("POST", "/api/webhooks", "", bad, "X-Acme-Timestamp", h.Get("X-Acme-Timestamp"), "X-Acme-Signature", h.Get("X-Acme-Signature")))
	expect(413, b.call("POST", "/api/webhooks", "", strings.Repeat(" ", 40<<10)))
	expect(200, b.call("GET", "/api/webhooks?limit=1", b.user, nil))
	expect(400, b.call("GET", "/api/webhooks?status=bogus", b.user, nil))
	expect(200, b.call("GET", "/api/webhooks/pending", b.user, nil))
	expect(200, b.call("GET", "/api/webhooks/evt_openapi", b.user, nil))
	expect(404, b.call("GET", "/api/webhooks/evt_none", b.user, nil))
	expect(400, b.call("GET", "/api/webhooks/evt%00", b.user, nil))
	expect(200, b.call("GET", "/api/metrics/events", b.user, nil))
	expect(400, b.call("GET", "/api/metrics/events?x=%00", b.user, nil))

	// Administration.
	expect(200, b.call("GET", "/api/admin/users", b.admin, nil))
	expect(403, b.call("GET", "/api/admin/users", b.user, nil))
	expect(400, b.call("GET", "/api/admin/users?x=%FF", b.admin, nil))
	if err := b.store.RecordDeadLetter(t.Context(), postgres.DeadLetter{EventID: "evt_openapi", EventType: "contact.created", ContactID: "crm-wh",
		Topic: "contact-events", Key: "crm-wh", Payload: []byte("{}"), Headers: map[string]string{}, Error: "boom", Attempts: 3}); err != nil {
		t.Fatal(err)
	}
	dls := expect(200, b.call("GET", "/api/admin/dead-letters", b.admin, nil)).json["data"].([]any)
	dlID := strconv.Itoa(int(dls[0].(map[string]any)["id"].(float64)))
	expect(202, b.call("POST", "/api/admin/dead-letters/"+dlID+"/replay", b.admin, nil))
	expect(404, b.call("POST", "/api/admin/dead-letters/999999/replay", b.admin, nil))
	expect(202, b.call("POST", "/api/admin/dead-letters/replay", b.admin, map[string]any{"all": true}))
	expect(400, b.call("POST", "/api/admin/dead-letters/replay", b.admin, map[string]any{}))

	// Simulator.
	sim := expect(202, b.call("POST", "/api/simulator/webhooks", b.admin, map[string]any{
		"eventType": "contact.created", "data": map[string]any{"sourceId": "crm-sim", "firstName": "Sim", "lastName": "Ulated", "email": "sim@example.com"}}))
	did := sim.json["delivery"].(map[string]any)["id"].(string)
	expect(400, b.call("POST", "/api/simulator/webhooks", b.admin, map[string]any{"eventType": "contact.exploded", "data": map[string]any{}}))
	expect(403, b.call("POST", "/api/simulator/webhooks", b.user, map[string]any{"eventType": "contact.created", "data": map[string]any{}}))
	expect(200, b.call("GET", "/api/simulator/webhooks/history?limit=5", b.admin, nil))
	expect(200, b.call("GET", "/api/simulator/webhooks/history/"+did, b.admin, nil))
	expect(404, b.call("GET", "/api/simulator/webhooks/history/00000000-0000-4000-8000-000000000000", b.admin, nil))

	// Every documented operation was exercised …
	for path, item := range c.doc["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			if !exercised[strings.ToUpper(method)+" "+path] {
				t.Errorf("%s %s is documented but not exercised here", strings.ToUpper(method), path)
			}
		}
	}
	// … and every route the server registers is documented.
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`mux\.Handle\("([A-Z]+) ([^"]+)"`).FindAllStringSubmatch(string(src), -1) {
		item, ok := c.doc["paths"].(map[string]any)[m[2]].(map[string]any)
		if !ok || item[strings.ToLower(m[1])] == nil {
			t.Errorf("route %s %s is not in the OpenAPI document", m[1], m[2])
		}
	}
}

// The document is OpenAPI 3.1 and every schema in it compiles.
func TestOpenAPIDocumentIsWellFormed(t *testing.T) {
	c := loadContract(t)
	if c.doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi: %v", c.doc["openapi"])
	}
	if _, ok := c.doc["webhooks"].(map[string]any)["contactEvent"]; !ok {
		t.Error("the inbound AcmeCRM webhook is not in the webhooks section")
	}
	for name := range c.doc["components"].(map[string]any)["schemas"].(map[string]any) {
		if _, err := c.compiler.Compile("urn:openapi#/components/schemas/" + name); err != nil {
			t.Errorf("schema %s: %v", name, err)
		}
	}
	ops := []string{}
	for _, item := range c.doc["paths"].(map[string]any) {
		for _, op := range item.(map[string]any) {
			id, _ := op.(map[string]any)["operationId"].(string)
			if id == "" || slices.Contains(ops, id) {
				t.Errorf("missing or repeated operationId %q", id)
			}
			ops = append(ops, id)
		}
	}
	var v any
	if err := json.Unmarshal(OpenAPI, &v); err != nil {
		t.Fatal(err)
	}
}

// The document's webhook payload is the one the receiver takes: each body
// below is valid against components.schemas.WebhookPayload exactly when the
// receiver accepts it. (The document described the older dialect as a
// Standard Webhooks body with "type", and acme_address as an object; a
// client built from it could not send a webhook the receiver takes.)
func TestWebhookPayloadSchemaDescribesTheReceiver(t *testing.T) {
	t.Parallel()
	c := loadContract(t)
	payload, err := c.compiler.Compile("urn:openapi#/components/schemas/WebhookPayload")
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t)
	ts := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	canonical := func(id, typ, data string) string {
		return `{"event_type":"` + typ + `","event_id":"` + id + `","timestamp":"` + ts + `","data":{` + data + `}}`
	}
	person := `"contact_id":"c1","acme_first_name":"Ann","acme_last_name":"Lee","acme_email":"ann@example.com"`
	long := func(n int) string { return strings.Repeat("x", n) }
	many := func(n int, item string) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	cases := []struct {
		name, body string
		ok         bool
	}{
		{"canonical, every field", canonical("evt_o1", "contact.created", person+`,"acme_phone":"555","acme_company":"Acme","acme_title":"CTO",`+
			`"acme_address":"1 Main St, Springfield, IL 62701, USA","acme_notes":"n","acme_status":"Active","acme_tags":["vip"],`+
			`"acme_custom_fields":{"tier":"gold","score":3,"ok":true},"acme_created_at":"2025-01-01T00:00:00Z","acme_updated_at":"x","changed_fields":["acme_email"]`), true},
		{"canonical delete", canonical("evt_o2", "contact.deleted", `"contact_id":"c1"`), true},
		{"unknown event type, any data", canonical("evt_o3", "contact.merged", `"into":{"x":[1]}`), true},
		{"legacy dialect", `{"event":"contact.updated","id":"evt_o4","timestamp":"` + ts + `","data":{"id":"c1","firstName":"Ann","lastName":"Lee","email":"ann@example.com","updatedAt":"y"}}`, true},
		{"legacy delete", `{"event":"contact.deleted","id":"evt_o5","timestamp":"` + ts + `","data":{"id":"c1","deletedAt":"z"}}`, true},
		{"address as an object", canonical("evt_o6", "contact.created", person+`,"acme_address":{"street":"1 Main St"}`), false},
		{"Standard Webhooks-style type", `{"type":"contact.created","timestamp":"` + ts + `","data":{` + person + `}}`, false},
		{"no email", canonical("evt_o7", "contact.created", `"contact_id":"c1","acme_first_name":"Ann","acme_last_name":"Lee"`), false},
		{"first name too long", canonical("evt_o8", "contact.updated", `"contact_id":"c1","acme_first_name":"`+long(101)+`","acme_last_name":"Lee","acme_email":"ann@example.com"`), false},
		{"status unknown", canonical("evt_o9", "contact.updated", person+`,"acme_status":"Zombie"`), false},
		{"101 tags", canonical("evt_o10", "contact.updated", person+`,"acme_tags":[`+many(101, `"t"`)+`]`), false},
		{"a custom field holding an object", canonical("evt_o11", "contact.updated", person+`,"acme_custom_fields":{"deep":{"x":1}}`), false},
		{"101 changed fields", canonical("evt_o12", "contact.updated", person+`,"changed_fields":[`+many(101, `"acme_email"`)+`]`), false},
		{"a changed field of 201 characters", canonical("evt_o13", "contact.updated", person+`,"changed_fields":["`+long(201)+`"]`), false},
		{"acme_updated_at of 101 characters", canonical("evt_o14", "contact.updated", person+`,"acme_updated_at":"`+long(101)+`"`), false},
		{"legacy createdAt of 101 characters", `{"event":"contact.created","id":"evt_o15","timestamp":"` + ts + `","data":{"id":"c1","firstName":"Ann","lastName":"Lee","email":"ann@example.com","createdAt":"` + long(101) + `"}}`, false},
		{"delete without contact id", canonical("evt_o16", "contact.deleted", `"id":"c1"`), false},
		{"timestamp not a date-time", strings.Replace(canonical("evt_o17", "contact.deleted", `"contact_id":"c1"`), ts, "yesterday", 1), false},
		{"legacy dialect with an event_type too", `{"event":"contact.updated","event_type":"contact.merged","id":"evt_o18","timestamp":"` + ts + `","data":{"id":"c1","firstName":"Ann","lastName":"Lee","email":"ann@example.com"}}`, false},
	}
	for _, tc := range cases {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		docOK := payload.Validate(inst) == nil
		r := b.post(tc.body, webhookSecret, time.Now())
		if accepted := r.status == 202; docOK != tc.ok || accepted != tc.ok {
			t.Errorf("%s: the document says valid=%v, the receiver answered %d, want both %v (%s)", tc.name, docOK, r.status, tc.ok, r.body)
		}
	}
}

// Every documented query parameter is read as the document says: a value
// at each documented bound, in the enum or a boolean is accepted, and one
// beyond a bound, outside the enum or not a boolean is refused with 400
// naming the parameter. So a client that keeps to the document is never
// refused, and one that does not is told which parameter is wrong.
func TestQueryParametersMatchTheOpenAPIDocument(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := loadContract(t)
	checked := 0
	for path, ops := range c.doc["paths"].(map[string]any) {
		op, ok := ops.(map[string]any)["get"].(map[string]any)
		if !ok || strings.Contains(path, "{") {
			continue
		}
		params, _ := op["parameters"].([]any)
		for _, raw := range params {
			p, _ := c.deref(raw)
			pm := p.(map[string]any)
			if pm["in"] != "query" {
				continue
			}
			name := pm["name"].(string)
			good, bad := queryValues(pm["schema"].(map[string]any))
			for _, v := range good {
				target := path + "?" + url.Values{name: {v}}.Encode()
				if r := b.call("GET", target, b.admin, nil); r.status != 200 {
					t.Errorf("GET %s: %d, want 200 (the document allows it): %s", target, r.status, r.body)
				}
				checked++
			}
			for _, v := range bad {
				target := path + "?" + url.Values{name: {v}}.Encode()
				if r := b.call("GET", target, b.admin, nil); r.status != 400 || !strings.Contains(string(r.body), `"path":"`+name+`"`) {
					t.Errorf("GET %s: %d, want 400 naming %s (the document does not allow it): %s", target, r.status, name, r.body)
				}
				checked++
			}
		}
	}
	if checked < 40 {
		t.Fatalf("only %d parameter values checked: the document's query parameters were not found", checked)
	}
}

// queryValues gives values a query parameter's schema allows and values
// it does not.
func queryValues(s map[string]any) (good, bad []string) {
	// The bounds and enums are a body's (bodyValues), written as text.
	g, b := bodyValues(s)
	for _, v := range g {
		good = append(good, fmt.Sprint(v))
	}
	for _, v := range b {
		bad = append(bad, fmt.Sprint(v.value))
	}
	// What only text can be: not a number, not a boolean.
	switch s["type"] {
	case "integer":
		bad = append(bad, "x", "1.5")
	case "boolean":
		good, bad = append(good, "true", "false"), append(bad, "yes", "1")
	}
	return good, bad
}

// schemaInt reads a whole number of the document (a json.Number as the
// schema library decodes it).
func schemaInt(v any) (int, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return int(i), err == nil
}

// The request schemas describe what the API takes: for every
// property of ContactInput (POST /api/contacts), ContactPatch (PATCH
// /api/contacts/{id}), AcmeContact (POST /api/contacts/acme) and
// SimulatorRequest (POST /api/simulator/webhooks), nested ones included, values at the document's
// bounds and in its enums are accepted, and values beyond them are refused
// with 400 at that property's path.
func TestRequestBodiesMatchTheOpenAPIDocument(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := loadContract(t)
	base := func(n int) map[string]any {
		return map[string]any{"firstName": "Ann", "lastName": "Lee", "email": "ann@example.com", "source": "api", "sourceId": "doc-" + strconv.Itoa(n)}
	}
	r := b.call("POST", "/api/contacts", b.user, base(0))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id, version := r.data()["id"].(string), r.data()["version"].(float64)
	sent := 0
	for _, name := range []string{"ContactInput", "ContactPatch", "AcmeContact", "SimulatorRequest"} {
		schema, _ := c.deref(map[string]any{"$ref": "#/components/schemas/" + name})
		for path, prop := range schemaProperties(c, schema.(map[string]any), "") {
			good, bad := bodyValues(prop)
			if path == "acme_address" {
				// Its bound is the whole string's; a value at the bound
				// must also split into parts within Address's bounds,
				// which the address tests cover.
				good = nil
			}
			try := func(v any, wantOK bool, problem string) {
				sent++
				var r response
				switch name {
				case "ContactInput":
					body := base(sent)
					setPath(body, path, v)
					r = b.call("POST", "/api/contacts", b.user, body)
				case "SimulatorRequest":
					body := map[string]any{"eventType": "contact.created", "data": map[string]any{"firstName": "Ann", "lastName": "Lee", "email": "ann@example.com", "sourceId": "sim-" + strconv.Itoa(sent)}}
					setPath(body, path, v)
					r = b.call("POST", "/api/simulator/webhooks", b.admin, body)
				case "AcmeContact":
					body := map[string]any{"contact_id": "doc-" + strconv.Itoa(sent), "acme_first_name": "Ann", "acme_last_name": "Lee", "acme_email": "ann@example.com"}
					setPath(body, path, v)
					r = b.call("POST", "/api/contacts/acme", b.user, body)
				default:
					body := map[string]any{}
					setPath(body, path, v)
					r = b.call("PATCH", "/api/contacts/"+id, b.user, body, "If-Match", `"`+strconv.Itoa(int(version))+`"`)
					if v, ok := r.data()["version"].(float64); ok {
						version = v
					}
				}
				if wantOK && r.status/100 != 2 {
					t.Errorf("%s %s = %.60v: %d, want 2xx (the document allows it): %s", name, path, v, r.status, r.body)
				}
				if !wantOK && (r.status != 400 || !strings.Contains(string(r.body), `"path":"`+problem+`"`)) {
					t.Errorf("%s %s = %.60v: %d, want 400 at %s (the document does not allow it): %s", name, path, v, r.status, problem, r.body)
				}
			}
			for _, v := range good {
				try(v, true, "")
			}
			for _, v := range bad {
				try(v.value, false, path+v.at)
			}
		}
	}
	if sent < 40 {
		t.Fatalf("only %d bodies sent: the document's request schemas were not found", sent)
	}
}

// schemaProperties lists an object schema's properties by dotted path,
// following $refs into nested objects.
func schemaProperties(c *contract, s map[string]any, prefix string) map[string]map[string]any {
	out := map[string]map[string]any{}
	props, _ := s["properties"].(map[string]any)
	for name, raw := range props {
		p, _ := c.deref(raw)
		pm := p.(map[string]any)
		if _, nested := pm["properties"]; nested {
			for k, v := range schemaProperties(c, pm, prefix+name+".") {
				out[k] = v
			}
			continue
		}
		out[prefix+name] = pm
	}
	return out
}

// badValue is a value a schema refuses, and where below the property the
// problem is reported ("" or, for an array item, "[0]").
type badValue struct {
	value any
	at    string
}

// bodyValues gives values a property's schema allows and values it does
// not, from its bounds and enum. Formats (email) and free-form objects'
// members are left to the handlers' own tests.
func bodyValues(s map[string]any) (good []any, bad []badValue) {
	typ, _ := s["type"].(string)
	switch typ {
	case "integer":
		if n, ok := schemaInt(s["minimum"]); ok {
			good = append(good, n)
			bad = append(bad, badValue{n - 1, ""})
		}
		if n, ok := schemaInt(s["maximum"]); ok {
			good = append(good, n)
			bad = append(bad, badValue{n + 1, ""})
		}
	case "string":
		if s["format"] != nil {
			return nil, nil
		}
		if enum, ok := s["enum"].([]any); ok {
			good = append(good, enum...)
			bad = append(bad, badValue{"bogus", ""})
		}
		if n, ok := schemaInt(s["maxLength"]); ok {
			good = append(good, strings.Repeat("a", n))
			bad = append(bad, badValue{strings.Repeat("a", n+1), ""})
		}
		if n, ok := schemaInt(s["minLength"]); ok && n > 0 {
			good = append(good, strings.Repeat("a", n))
			bad = append(bad, badValue{strings.Repeat("a", n-1), ""})
		}
	case "array":
		items, _ := s["items"].(map[string]any)
		igood, ibad := bodyValues(items)
		for _, v := range igood {
			good = append(good, []any{v})
		}
		for _, v := range ibad {
			bad = append(bad, badValue{[]any{v.value}, "[0]"})
		}
		if n, ok := schemaInt(s["maxItems"]); ok {
			list := func(n int) []any {
				out := make([]any, n)
				for i := range out {
					out[i] = "t" + strconv.Itoa(i)
				}
				return out
			}
			good = append(good, list(n))
			bad = append(bad, badValue{list(n + 1), ""})
		}
	case "object":
		if n, ok := schemaInt(s["maxProperties"]); ok {
			obj := func(n int) map[string]any {
				out := map[string]any{}
				for i := range n {
					out["f"+strconv.Itoa(i)] = "v"
				}
				return out
			}
			good = append(good, obj(n))
			bad = append(bad, badValue{obj(n + 1), ""})
		}
	}
	return good, bad
}

// setPath sets a dotted path in a JSON object, making the objects on the way.
func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}
