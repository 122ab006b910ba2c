package httpapi

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/acmecrm/acmecrm/internal/postgres"
)

func TestDeadLetterAdminAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for i, typ := range []string{"contact.created", "contact.updated"} {
		if err := b.store.RecordDeadLetter(ctx, postgres.DeadLetter{EventID: "e" + typ, EventType: typ, Topic: "contact-events",
			Offset: int64(i), Key: "c1", Payload: []byte(`{}`), Headers: map[string]string{"event-id": "e" + typ}, Error: "boom", Attempts: 6}); err != nil {
			t.Fatal(err)
		}
	}
	if r := b.call("GET", "/api/admin/dead-letters", b.user, nil); r.status != 403 {
		t.Errorf("user: %d", r.status)
	}
	r := b.call("GET", "/api/admin/dead-letters?eventType=contact.updated", b.admin, nil)
	list := r.json["data"].([]any)
	if r.status != 200 || len(list) != 1 || list[0].(map[string]any)["error"] != "boom" {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	id := int(list[0].(map[string]any)["id"].(float64))
	if r := b.call("POST", "/api/admin/dead-letters/replay", b.admin, map[string]any{}); r.status != 400 {
		t.Errorf("replay without a filter: %d", r.status)
	}
	// "all" with a filter used to replay the filtered set: which was meant?
	for _, sel := range []map[string]any{{"all": true, "eventType": "contact.updated"}, {"all": true, "notReplayed": true}} {
		if r := b.call("POST", "/api/admin/dead-letters/replay", b.admin, sel); r.status != 400 || !strings.Contains(string(r.body), `"path":"all"`) {
			t.Errorf("replay %v: %d %s", sel, r.status, r.body)
		}
	}
	if r := b.call("POST", "/api/admin/dead-letters/999/replay", b.admin, nil); r.status != 404 {
		t.Errorf("replay unknown: %d", r.status)
	}
	if r := b.call("POST", "/api/admin/dead-letters/"+strconv.Itoa(id)+"/replay", b.admin, nil); r.status != 202 || r.json["replayed"] != float64(1) {
		t.Errorf("replay one: %d %s", r.status, r.body)
	}
	if r := b.call("POST", "/api/admin/dead-letters/replay", b.admin, map[string]any{"notReplayed": true}); r.json["replayed"] != float64(1) {
		t.Errorf("replay not yet replayed: %s", r.body)
	}
	if r := b.call("POST", "/api/admin/dead-letters/replay", b.admin, map[string]any{"all": true}); r.json["replayed"] != float64(2) {
		t.Errorf("replay all: %s", r.body)
	}
	if n := b.count(`SELECT count(*) FROM outbox WHERE topic = 'contact-events'`); n != 4 {
		t.Errorf("outbox rows after replays: %d, want 4", n)
	}
}

// The dead-letter list pages through any number of dead letters, newest
// first, keeping its filter from page to page.
func TestDeadLetterListPages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for i := range 7 {
		typ := "contact.updated"
		if i%3 == 0 {
			typ = "contact.created"
		}
		if err := b.store.RecordDeadLetter(ctx, postgres.DeadLetter{EventID: "evt_page_" + strconv.Itoa(i), EventType: typ, Topic: "contact-events",
			Key: "c1", Payload: []byte(`{}`), Headers: map[string]string{}, Error: "boom", Attempts: 6}); err != nil {
			t.Fatal(err)
		}
	}
	walk := func(query string) (ids []string, pages int) {
		target := "/api/admin/dead-letters?limit=2" + query
		for range 10 {
			r := b.call("GET", target, b.admin, nil)
			if r.status != 200 {
				t.Fatalf("GET %s: %d %s", target, r.status, r.body)
			}
			pages++
			for _, d := range r.json["data"].([]any) {
				ids = append(ids, d.(map[string]any)["eventId"].(string))
			}
			next, _ := r.json["nextCursor"].(string)
			if next == "" {
				return ids, pages
			}
			target = "/api/admin/dead-letters?limit=2" + query + "&cursor=" + next
		}
		t.Fatalf("GET %s: no last page after 10", target)
		return nil, 0
	}
	ids, pages := walk("")
	if want := "evt_page_6 evt_page_5 evt_page_4 evt_page_3 evt_page_2 evt_page_1 evt_page_0"; strings.Join(ids, " ") != want || pages != 4 {
		t.Errorf("all, 2 a page: %d pages %v, want 4 pages %s", pages, ids, want)
	}
	ids, _ = walk("&eventType=contact.created")
	if want := "evt_page_6 evt_page_3 evt_page_0"; strings.Join(ids, " ") != want {
		t.Errorf("created only: %v, want %s", ids, want)
	}
	for _, c := range []string{"not-a-cursor", encodeCursor(0)} {
		if r := b.call("GET", "/api/admin/dead-letters?cursor="+c, b.admin, nil); r.status != 400 || !strings.Contains(string(r.body), `"path":"cursor"`) {
			t.Errorf("cursor %q: %d %s", c, r.status, r.body)
		}
	}
}
