package httpapi

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// seedExample is the simulator request of the original README.
var seedExample = map[string]any{
	"eventType": "contact.created",
	"data": map[string]any{
		"id": "c8b5f7d9-8e7a-4a1d-9b5c-1d2e3f4a5b6c", "firstName": "John", "lastName": "Doe",
		"email": "john.doe@example.com",
	},
}

func (b *bundle) simulate(body map[string]any) response {
	b.t.Helper()
	r := b.call("POST", "/api/simulator/webhooks", b.admin, body)
	if r.status != 202 {
		b.t.Fatalf("simulate: %d %s", r.status, r.body)
	}
	return r
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

func TestSimulatorDeliversToOwnReceiver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.simulate(seedExample)
	ev, d := obj(r.json["event"]), obj(r.json["delivery"])
	eventID, _ := ev["event_id"].(string)
	if !strings.HasPrefix(eventID, "evt_") || ev["event_type"] != "contact.created" {
		t.Fatalf("event: %v", ev)
	}
	if data := obj(ev["data"]); data["contact_id"] != "c8b5f7d9-8e7a-4a1d-9b5c-1d2e3f4a5b6c" || data["acme_email"] != "john.doe@example.com" {
		t.Fatalf("canonical data: %v", data)
	}
	if d["status"] != "delivered" || d["attempts"] != 1.0 || d["lastStatusCode"] != 202.0 || d["eventId"] != eventID {
		t.Fatalf("delivery: %v", d)
	}
	// Our receiver verified and stored it.
	got := b.call("GET", "/api/webhooks/"+eventID, b.admin, nil)
	if got.status != 200 || got.data()["contactId"] != "c8b5f7d9-8e7a-4a1d-9b5c-1d2e3f4a5b6c" || got.data()["secretId"] != "current" {
		t.Fatalf("stored event: %d %s", got.status, got.body)
	}

	// The AcmeCRM form works the same; the contact id is kept.
	r = b.simulate(map[string]any{"eventType": "contact.updated", "data": map[string]any{
		"contact_id": "1234", "acme_first_name": "Ada", "acme_last_name": "Lovelace", "acme_email": "ada@example.com",
		"acme_address": "1 Main St, Springfield, IL 62701, USA", "acme_tags": []string{"vip"},
	}})
	if d := obj(r.json["delivery"]); d["status"] != "delivered" || obj(obj(r.json["event"])["data"])["contact_id"] != "1234" {
		t.Fatalf("acme form: %s", r.body)
	}
	// A delete needs only the id.
	r = b.simulate(map[string]any{"eventType": "contact.deleted", "data": map[string]any{"contact_id": "1234"}})
	if d := obj(r.json["delivery"]); d["status"] != "delivered" {
		t.Fatalf("delete: %s", r.body)
	}
}

func TestSimulatorChaosKnobs(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// Duplicates: the same event three times; the receiver stores it once.
	r := b.simulate(map[string]any{"eventType": "contact.created", "data": seedExample["data"], "duplicates": 2})
	dups, _ := r.json["duplicates"].([]any)
	if len(dups) != 2 {
		t.Fatalf("duplicates: %s", r.body)
	}
	eventID := obj(r.json["event"])["event_id"].(string)
	for _, d := range append(dups, r.json["delivery"]) {
		if obj(d)["status"] != "delivered" || obj(d)["eventId"] != eventID {
			t.Errorf("copy: %v", d)
		}
	}
	list := b.call("GET", "/api/webhooks?limit=100", b.admin, nil)
	if n := len(list.json["data"].([]any)); n != 1 {
		t.Errorf("the receiver stored %d events for one event sent 3 times", n)
	}
	// The copies go out together: one is accepted, the others are duplicates.
	statuses := map[string]int{}
	for _, d := range append(dups, r.json["delivery"]) {
		detail := b.call("GET", "/api/simulator/webhooks/history/"+obj(d)["id"].(string), b.admin, nil)
		attempts, _ := detail.data()["attemptLog"].([]any)
		if len(attempts) != 1 {
			t.Fatalf("copy attempts: %s", detail.body)
		}
		var answer struct{ Status string }
		_ = json.Unmarshal([]byte(obj(attempts[0])["responseExcerpt"].(string)), &answer)
		statuses[answer.Status]++
	}
	if statuses["accepted"] != 1 || statuses["duplicate"] != 2 {
		t.Errorf("receiver answers to 3 copies: %v", statuses)
	}

	// A bad signature and a skewed timestamp are refused (401, not retried).
	for _, knob := range []map[string]any{{"badSignature": true}, {"timestampSkewSeconds": 3600}} {
		req := map[string]any{"eventType": "contact.created", "data": seedExample["data"]}
		for k, v := range knob {
			req[k] = v
		}
		d := obj(b.simulate(req).json["delivery"])
		if d["status"] != "failed" || d["lastStatusCode"] != 401.0 || d["attempts"] != 1.0 {
			t.Errorf("%v: delivery %v", knob, d)
		}
	}
	if n := len(b.call("GET", "/api/webhooks?limit=100", b.admin, nil).json["data"].([]any)); n != 1 {
		t.Errorf("refused deliveries stored events: %d", n)
	}

	// A delay: pending at first, delivered by the worker.
	r = b.simulate(map[string]any{"eventType": "contact.created", "data": seedExample["data"], "delayMs": 100})
	d := obj(r.json["delivery"])
	if d["status"] != "pending" || d["attempts"] != 0.0 || d["nextAttemptAt"] == nil {
		t.Fatalf("delayed delivery: %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.sim.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := b.call("GET", "/api/simulator/webhooks/history/"+d["id"].(string), b.admin, nil)
		if got.data()["status"] == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delayed delivery never delivered: %s", got.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSimulatorRejectsBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name string
		body any
		code string
		path string
	}{
		{"unknown event type", map[string]any{"eventType": "contact.merged", "data": seedExample["data"]}, "INVALID_INPUT", "eventType"},
		{"missing email", map[string]any{"eventType": "contact.created", "data": map[string]any{"firstName": "A", "lastName": "B"}}, "INVALID_INPUT", "data.email"},
		{"bad email (acme form)", map[string]any{"eventType": "contact.updated", "data": map[string]any{"contact_id": "1", "acme_first_name": "A", "acme_last_name": "B", "acme_email": "nope"}}, "INVALID_INPUT", "data.email"},
		{"delete without id", map[string]any{"eventType": "contact.deleted", "data": map[string]any{}}, "INVALID_INPUT", "data.contact_id"},
		{"data not an object", map[string]any{"eventType": "contact.created", "data": "x"}, "INVALID_INPUT", "data"},
		{"unknown data field", map[string]any{"eventType": "contact.created", "data": map[string]any{"firstName": "A", "lastName": "B", "email": "a@b.co", "shoeSize": 9}}, "INVALID_INPUT", "data"},
		{"too many duplicates", map[string]any{"eventType": "contact.created", "data": seedExample["data"], "duplicates": 11}, "INVALID_INPUT", "duplicates"},
		{"negative delay", map[string]any{"eventType": "contact.created", "data": seedExample["data"], "delayMs": -1}, "INVALID_INPUT", "delayMs"},
		{"unknown knob", map[string]any{"eventType": "contact.created", "data": seedExample["data"], "explode": true}, "INVALID_INPUT", ""},
		{"malformed JSON", `{"eventType":`, "MALFORMED_JSON", ""},
		{"private target", map[string]any{"eventType": "contact.created", "data": seedExample["data"], "targetUrl": "http://10.0.0.1/api/webhooks"}, "TARGET_NOT_ALLOWED", ""},
		{"metadata target", map[string]any{"eventType": "contact.created", "data": seedExample["data"], "targetUrl": "http://169.254.169.254/latest/meta-data/"}, "TARGET_NOT_ALLOWED", ""},
		{"prefix trick", map[string]any{"eventType": "contact.created", "data": seedExample["data"], "targetUrl": b.srv.URL + "/api/webhooks@169.254.169.254/"}, "TARGET_NOT_ALLOWED", ""},
		{"other port", map[string]any{"eventType": "contact.created", "data": seedExample["data"], "targetUrl": "http://127.0.0.1:1/api/webhooks"}, "TARGET_NOT_ALLOWED", ""},
	} {
		r := b.call("POST", "/api/simulator/webhooks", b.admin, tc.body)
		if r.status != 400 || r.errCode() != tc.code {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, r.status, r.body, tc.code)
			continue
		}
		if tc.path != "" && !strings.Contains(string(r.body), `"path":"`+tc.path+`"`) {
			t.Errorf("%s: no problem at %s: %s", tc.name, tc.path, r.body)
		}
	}
	// Nothing was stored or sent.
	if h := b.call("GET", "/api/simulator/webhooks/history", b.admin, nil); obj(h.json["pagination"])["total"] != 0.0 {
		t.Errorf("refused requests left deliveries: %s", h.body)
	}
}

func TestSimulatorNeedsTheAdminRole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, route := range [][2]string{
		{"POST", "/api/simulator/webhooks"},
		{"GET", "/api/simulator/webhooks/history"},
		{"GET", "/api/simulator/webhooks/history/c8b5f7d9-8e7a-4a1d-9b5c-1d2e3f4a5b6c"},
	} {
		if r := b.call(route[0], route[1], b.user, seedExample); r.status != 403 || r.errCode() != "INSUFFICIENT_PERMISSIONS" {
			t.Errorf("%s %s as a user: %d %s", route[0], route[1], r.status, r.body)
		}
		if r := b.call(route[0], route[1], "", seedExample); r.status != 401 {
			t.Errorf("%s %s without a token: %d", route[0], route[1], r.status)
		}
	}
	if h := b.call("GET", "/api/simulator/webhooks/history", b.admin, nil); obj(h.json["pagination"])["total"] != 0.0 {
		t.Errorf("a refused caller sent webhooks: %s", h.body)
	}
}

func TestSimulatorHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	for i := range 3 {
		req := map[string]any{"eventType": "contact.created", "data": seedExample["data"], "badSignature": i == 1}
		ids = append(ids, obj(b.simulate(req).json["delivery"])["id"].(string))
	}
	firstEvent := b.call("GET", "/api/simulator/webhooks/history/"+ids[0], b.admin, nil).data()["eventId"].(string)

	for _, tc := range []struct {
		query string
		want  []string // newest first
		total float64
	}{
		{"", []string{ids[2], ids[1], ids[0]}, 3},
		{"?status=failed", []string{ids[1]}, 1},
		{"?status=delivered&limit=1", []string{ids[2]}, 2},
		{"?status=delivered&limit=1&offset=1", []string{ids[0]}, 2},
		{"?eventId=" + url.QueryEscape(firstEvent), []string{ids[0]}, 1},
		{"?eventId=" + url.QueryEscape("x' OR '1'='1"), nil, 0},
	} {
		r := b.call("GET", "/api/simulator/webhooks/history"+tc.query, b.admin, nil)
		data, _ := r.json["data"].([]any)
		var got []string
		for _, d := range data {
			got = append(got, obj(d)["id"].(string))
		}
		if r.status != 200 || strings.Join(got, ",") != strings.Join(tc.want, ",") || obj(r.json["pagination"])["total"] != tc.total {
			t.Errorf("history%s: %d %v total %v, want %v total %v", tc.query, r.status, got, obj(r.json["pagination"])["total"], tc.want, tc.total)
		}
	}
	d := b.call("GET", "/api/simulator/webhooks/history/"+ids[1], b.admin, nil).data()
	attempts, _ := d["attemptLog"].([]any)
	if len(attempts) != 1 || obj(attempts[0])["statusCode"] != 401.0 || obj(attempts[0])["latencyMs"] == nil || d["badSignature"] != true {
		t.Errorf("delivery detail: %v", d)
	}
	for path, want := range map[string]int{
		"/api/simulator/webhooks/history/not-a-uuid":                           400,
		"/api/simulator/webhooks/history/00000000-0000-4000-8000-000000000000": 404,
		"/api/simulator/webhooks/history?status=lost":                          400,
		"/api/simulator/webhooks/history?limit=0":                              400,
		"/api/simulator/webhooks/history?offset=-1":                            400,
	} {
		if r := b.call("GET", path, b.admin, nil); r.status != want || r.json["error"] == nil {
			t.Errorf("GET %s: %d %s, want %d", path, r.status, r.body, want)
		}
	}
}

func TestAutoTriggerSendsAcmeContactsChanges(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{autoTrigger: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.sim.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	acme := newContact("crm-77")
	acme["source"] = "acmecrm"
	ct := b.create(acme)
	b.create(newContact("api-1")) // not AcmeCRM's: no webhook
	r := b.call("PATCH", "/api/contacts/"+ct["id"].(string), b.user, map[string]any{"title": "CTO"}, "If-Match", `"1"`)
	if r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if r := b.call("DELETE", "/api/contacts/"+ct["id"].(string), b.user, nil); r.status != 200 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	// Three webhooks reach the receiver, for contact crm-77 (the worker
	// delivers concurrently; their event times keep them in order).
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := b.call("GET", "/api/webhooks?limit=100", b.admin, nil)
		events, _ := list.json["data"].([]any)
		if len(events) == 3 {
			var types []string
			for _, e := range events {
				if obj(e)["contactId"] != "crm-77" {
					t.Fatalf("webhook for another contact: %v", e)
				}
				types = append(types, obj(e)["eventType"].(string))
			}
			slices.Sort(types)
			if got := strings.Join(types, ","); got != "contact.created,contact.deleted,contact.updated" {
				t.Fatalf("webhooks: %s", got)
			}
			break
		}
		if len(events) > 3 || time.Now().After(deadline) {
			t.Fatalf("%d webhooks, want 3: %s", len(events), list.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h := b.call("GET", "/api/simulator/webhooks/history?status=delivered", b.admin, nil)
	for _, d := range h.json["data"].([]any) {
		if obj(d)["source"] != "auto-trigger" {
			t.Errorf("delivery source: %v", d)
		}
	}
}
