package httpapi

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acmecrm/acmecrm/internal/auth"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

func TestCreateAndGetContact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.call("POST", "/api/contacts", b.user, newContact("c-1"))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	c := r.data()
	id := c["id"].(string)
	if r.header.Get("Location") != "/api/contacts/"+id || r.header.Get("ETag") != `"1"` {
		t.Errorf("Location %q ETag %q", r.header.Get("Location"), r.header.Get("ETag"))
	}
	addr := c["address"].(map[string]any)
	if c["firstName"] != "John" || c["status"] != "active" || c["version"] != float64(1) || addr["zipCode"] != "62701" ||
		c["source"] != "api" || c["sourceId"] != "c-1" || c["deletedAt"] != nil || c["createdAt"] == nil {
		t.Errorf("created = %v", c)
	}

	g := b.call("GET", "/api/contacts/"+id, b.user, nil)
	if g.status != 200 || g.header.Get("ETag") != `"1"` || g.data()["email"] != "john.doe@example.com" {
		t.Errorf("get: %d %s", g.status, g.body)
	}
	if g := b.call("GET", "/api/contacts/"+id, b.user, nil, "If-None-Match", `"1"`); g.status != 304 {
		t.Errorf("If-None-Match current: %d", g.status)
	}
	s := b.call("GET", "/api/contacts/source/api/c-1", b.user, nil)
	if s.status != 200 || s.data()["id"] != id {
		t.Errorf("by source: %d %s", s.status, s.body)
	}
	if s := b.call("GET", "/api/contacts/source/api/nope", b.user, nil); s.status != 404 || s.errCode() != "RESOURCE_NOT_FOUND" {
		t.Errorf("by unknown source: %d %s", s.status, s.body)
	}
	if g := b.call("GET", "/api/contacts/not-a-uuid", b.user, nil); g.status != 400 || g.errCode() != "INVALID_INPUT" {
		t.Errorf("non-UUID: %d %s", g.status, g.body)
	}
	if g := b.call("GET", "/api/contacts/00000000-0000-4000-8000-000000000000", b.user, nil); g.status != 404 {
		t.Errorf("unknown: %d %s", g.status, g.body)
	}
	if d := b.call("POST", "/api/contacts", b.user, newContact("c-1")); d.status != 409 || d.errCode() != "RESOURCE_ALREADY_EXISTS" {
		t.Errorf("duplicate source id: %d %s", d.status, d.body)
	}
}

func TestCreateContactBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bad := newContact("x")
	bad["firstName"] = ""
	bad["email"] = "nope"
	bad["status"] = "deleted"
	bad["tags"] = []string{strings.Repeat("t", 51)}
	delete(bad, "source")
	r := b.call("POST", "/api/contacts", b.user, bad)
	if r.status != 400 || r.errCode() != "INVALID_INPUT" {
		t.Fatalf("invalid: %d %s", r.status, r.body)
	}
	for _, path := range []string{"firstName", "email", "status", "tags[0]", "source"} {
		if !strings.Contains(string(r.body), `"path":"`+path+`"`) {
			t.Errorf("no problem reported for %s: %s", path, r.body)
		}
	}
	if r := b.call("POST", "/api/contacts", b.user, newContact("x"), "Content-Encoding", "gzip"); r.status != 415 || !strings.Contains(string(r.body), "uncompressed") {
		t.Errorf("Content-Encoding gzip: %d %s", r.status, r.body)
	}
	unknown := newContact("x")
	unknown["isAdmin"] = true
	if r := b.call("POST", "/api/contacts", b.user, unknown); r.status != 400 || !strings.Contains(string(r.body), "isAdmin") {
		t.Errorf("unknown field: %d %s", r.status, r.body)
	}
	nested := newContact("x")
	nested["customFields"] = map[string]any{"deep": map[string]any{"x": 1}}
	if r := b.call("POST", "/api/contacts", b.user, nested); r.status != 400 {
		t.Errorf("nested custom field: %d %s", r.status, r.body)
	}
	if r := b.call("POST", "/api/contacts", b.user, `{"firstName": "a",`); r.status != 400 || r.errCode() != "MALFORMED_JSON" {
		t.Errorf("malformed: %d %s", r.status, r.body)
	}
	// Paths name the body's members, not the Go structs behind them.
	for body, path := range map[string]string{`{"firstName": 5}`: "firstName", `{"customFields": "x"}`: "customFields", `{"address": {"city": 1}}`: "address.city"} {
		if r := b.call("POST", "/api/contacts", b.user, body); r.status != 400 || !strings.Contains(string(r.body), `"path":"`+path+`"`) {
			t.Errorf("wrong type %s: %d %s", body, r.status, r.body)
		}
	}
	if r := b.call("POST", "/api/contacts", b.user, `{} {}`); r.status != 400 || r.errCode() != "MALFORMED_JSON" {
		t.Errorf("two values: %d %s", r.status, r.body)
	}
	if r := b.call("POST", "/api/contacts", b.user, "<xml/>", "Content-Type", "text/xml"); r.status != 415 {
		t.Errorf("xml: %d %s", r.status, r.body)
	}
	huge := newContact("x")
	huge["notes"] = strings.Repeat("n", 70<<10) // above the test server's 64 KiB limit
	if r := b.call("POST", "/api/contacts", b.user, huge); r.status != 413 || r.errCode() != "PAYLOAD_TOO_LARGE" {
		t.Errorf("huge: %d %s", r.status, r.body)
	}
	// Nothing was written by any of these.
	if l := b.call("GET", "/api/contacts?includeDeleted=true", b.user, nil); l.json["pagination"].(map[string]any)["totalItems"] != float64(0) {
		t.Errorf("bad input changed something: %s", l.body)
	}
	var outbox int
	_ = b.store.Pool().QueryRow(context.Background(), "SELECT count(*) FROM outbox").Scan(&outbox)
	if outbox != 0 {
		t.Errorf("bad input wrote %d outbox rows", outbox)
	}
	// The identity coding is no coding.
	if r := b.call("POST", "/api/contacts", b.user, newContact("x"), "Content-Encoding", "identity"); r.status != 201 {
		t.Errorf("Content-Encoding identity: %d %s", r.status, r.body)
	}
}

func TestListContacts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	names := []string{"Carol", "alice", "Bob", "Dave", "Eve", "alice"}
	ids := map[string]bool{}
	for i, n := range names {
		c := newContact(fmt.Sprintf("l-%d", i))
		c["firstName"] = n
		c["email"] = strings.ToLower(n) + fmt.Sprint(i) + "@example.com"
		c["company"] = []string{"Acme", "100% Pure", "Under_score", "Acme", "Other", "Acme"}[i]
		ids[b.create(c)["id"].(string)] = true
	}
	r := b.call("GET", "/api/contacts?sort=firstName&order=asc&limit=4&page=1", b.user, nil)
	pg := r.json["pagination"].(map[string]any)
	if r.status != 200 || pg["totalItems"] != float64(6) || pg["totalPages"] != float64(2) || pg["hasNextPage"] != true || pg["hasPrevPage"] != false || pg["limit"] != float64(4) {
		t.Fatalf("page 1: %d %s", r.status, r.body)
	}
	var got []string
	for _, c := range r.json["data"].([]any) {
		got = append(got, c.(map[string]any)["firstName"].(string))
	}
	// Byte order of the C collation, ties on id.
	if strings.Join(got, ",") != "Bob,Carol,Dave,Eve" {
		t.Errorf("sorted = %v", got)
	}
	r2 := b.call("GET", "/api/contacts?sort=firstName&order=asc&limit=4&page=2", b.user, nil)
	data := r2.json["data"].([]any)
	if len(data) != 2 || r2.json["pagination"].(map[string]any)["hasNextPage"] != false {
		t.Fatalf("page 2: %s", r2.body)
	}
	a1, a2 := data[0].(map[string]any)["id"].(string), data[1].(map[string]any)["id"].(string)
	if a1 >= a2 {
		t.Errorf("ties not broken by id: %s, %s", a1, a2)
	}

	count := func(query string) int {
		r := b.call("GET", "/api/contacts?"+query, b.user, nil)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", query, r.status, r.body)
		}
		return int(r.json["pagination"].(map[string]any)["totalItems"].(float64))
	}
	if n := count("search=ALICE"); n != 2 {
		t.Errorf("case-insensitive search: %d", n)
	}
	if n := count("search=%25"); n != 1 { // "%" matches only the literal percent sign
		t.Errorf("search %%: %d, want 1", n)
	}
	if n := count("search=_"); n != 1 {
		t.Errorf("search _: %d, want 1", n)
	}
	if n := count("search=" + escapeQuery(`'; DROP TABLE contacts; --`)); n != 0 {
		t.Errorf("SQL in search: %d", n)
	}
	if n := count("search=" + escapeQuery(`\`)); n != 0 {
		t.Errorf(`search \: %d`, n)
	}
	if n := count("source=api&status=active"); n != 6 {
		t.Errorf("filters: %d", n)
	}
	// Table still there, nothing changed.
	if n := count(""); n != 6 {
		t.Errorf("after hostile searches: %d", n)
	}
	for _, q := range []string{"sort=firstName;DROP TABLE contacts", "sort=password_hash", "order=sideways", "limit=0", "limit=101", "page=0", "page=x", "status=zombie", "includeDeleted=maybe"} {
		if r := b.call("GET", "/api/contacts?"+escapeQuery2(q), b.user, nil); r.status != 400 || r.errCode() != "INVALID_INPUT" {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
}

func escapeQuery(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", ";", "%3B", "'", "%27", `\`, "%5C", "-", "-").Replace(s)
}

func escapeQuery2(q string) string {
	k, v, _ := strings.Cut(q, "=")
	return k + "=" + escapeQuery(v)
}

// Lists whose cost grows with the table (searches, deep pages) take turns:
// while every turn is taken, such a list waits, then gets 503 with
// Retry-After, having read nothing; other lists are not held up.
func TestCostlyListsTakeTurns(t *testing.T) {
	t.Parallel()
	searches := SearchTurns(1, time.Second)
	b := setup(t, setupOpts{searches: searches})
	c := newContact("turns-1")
	c["firstName"] = "Turner"
	b.create(c)
	release, err := searches.Take(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	costly := []string{"search=turn", "search=t&sort=email", "page=1001&limit=10", "page=101&limit=100",
		"includeDeleted=true&sort=email", "status=deleted&sort=lastName&order=asc"}
	refused := make(chan string, len(costly))
	for i, q := range costly {
		// Each by another user: one user's would wait behind each other.
		name := fmt.Sprintf("searcher%d@acmecrm.com", i)
		b.addUser(name, userPassword, auth.RoleUser)
		token := b.login(name, userPassword)
		go func() {
			r := b.call("GET", "/api/contacts?"+q, token, nil)
			if r.status != 503 || r.errCode() != "SERVICE_UNAVAILABLE" || r.header.Get("Retry-After") == "" {
				refused <- fmt.Sprintf("%s while the only turn is taken: %d %s (Retry-After %q)", q, r.status, r.body, r.header.Get("Retry-After"))
				return
			}
			refused <- ""
		}()
	}
	for _, q := range []string{"", "page=1000&limit=10", "status=active&sort=firstName", "sort=email&order=asc",
		"includeDeleted=true", "status=deleted&sort=updatedAt"} {
		if r := b.call("GET", "/api/contacts?"+q, b.user, nil); r.status != 200 {
			t.Errorf("%q while the only turn is taken: %d %s", q, r.status, r.body)
		}
	}
	for range costly {
		if msg := <-refused; msg != "" {
			t.Error(msg)
		}
	}
	// A list that finds the turn taken waits for it.
	answered := make(chan response)
	go func() { answered <- b.call("GET", "/api/contacts?search=turn", b.user, nil) }()
	deadline := time.Now().Add(time.Second)
	for searches.Waiting() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the search never waited for its turn")
		}
		time.Sleep(time.Millisecond)
	}
	release()
	if r := <-answered; r.status != 200 || len(r.json["data"].([]any)) != 1 {
		t.Fatalf("search once the turn is given back: %d %s", r.status, r.body)
	}
	if searches.Running() != 0 || searches.Waiting() != 0 {
		t.Errorf("%d turns taken and %d waiting after every list ended", searches.Running(), searches.Waiting())
	}

	// A search that waited its whole wait behind the same user's is told
	// that it is the user's own: 429.
	r := b.call("POST", "/api/auth/login", "", map[string]string{"username": "user@acmecrm.com", "password": userPassword})
	userID, _ := r.json["user"].(map[string]any)["id"].(string)
	if release, err = searches.TakeFor(context.Background(), userID); err != nil {
		t.Fatal(err)
	}
	defer release()
	if r := b.call("GET", "/api/contacts?search=turn", b.user, nil); r.status != 429 || r.errCode() != "TOO_MANY_REQUESTS" || r.header.Get("Retry-After") == "" {
		t.Errorf("a search behind the same user's: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
}

// Each user's costly lists run one at a time: while one of a user's
// searches runs, their next waits even though a turn is free, and another
// user's search runs at once. So a user who sends many searches at once
// makes themselves wait, not everyone.
func TestEachUsersSearchesRunOneAtATime(t *testing.T) {
	t.Parallel()
	searches := SearchTurns(2, 5*time.Second)
	b := setup(t, setupOpts{searches: searches})
	r := b.call("POST", "/api/auth/login", "", map[string]string{"username": "user@acmecrm.com", "password": userPassword})
	userID, _ := r.json["user"].(map[string]any)["id"].(string)
	if r.status != 200 || userID == "" {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	release, err := searches.TakeFor(context.Background(), userID) // one of the user's searches runs
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan response)
	go func() { answered <- b.call("GET", "/api/contacts?search=ada", b.user, nil) }()
	deadline := time.Now().Add(5 * time.Second)
	for searches.Waiting() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the user's second search never waited")
		}
		time.Sleep(time.Millisecond)
	}
	if r := b.call("GET", "/api/contacts?search=ada", b.admin, nil); r.status != 200 {
		t.Errorf("another user's search while the user's wait: %d %s", r.status, r.body)
	}
	select {
	case r := <-answered:
		t.Fatalf("the user's second search ran beside their first: %d", r.status)
	default:
	}
	release()
	if r := <-answered; r.status != 200 {
		t.Fatalf("the user's second search once their first ended: %d %s", r.status, r.body)
	}
}

// A list that takes a search turn runs on one core of the database: no
// parallel workers, so that SEARCH_CONCURRENCY bounds the cores searches
// take. (A two-letter search reads every contact; with parallel workers
// one search took both cores of the machine, and eight in a row held the
// receiver's p99 at 25 ms instead of 9.) The database is set up so that
// PostgreSQL plans every scan in parallel. Each process that scans the
// contacts counts a sequential scan in the table's statistics: a parallel
// worker's count is there when the statement ends (it reports as it
// exits), the leader's when its session next reports (at most once a
// second). So right after a search, two more scans or more mean workers.
func TestSearchesRunOnOneCore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := infratest.DatabaseURL(t)
	admin, err := postgres.Open(ctx, dbURL, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, `DO $$ BEGIN
		EXECUTE format('ALTER DATABASE %I SET parallel_setup_cost = 0', current_database());
		EXECUTE format('ALTER DATABASE %I SET parallel_tuple_cost = 0', current_database());
		EXECUTE format('ALTER DATABASE %I SET min_parallel_table_scan_size = 0', current_database());
		END $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `
		INSERT INTO contacts (first_name, last_name, email, source, source_id)
		SELECT 'First' || i, 'Last' || i, 'user' || i || '@example.com', 'import', 'imp-' || i
		FROM generate_series(1, 20000) AS i;
		ANALYZE contacts`); err != nil {
		t.Fatal(err)
	}
	admin.Reset()      // new sessions take the database's settings
	const rows = 20000 // as inserted
	// scans reads the contacts' sequential scans and the rows they read,
	// after the sessions' pending statistics are flushed: the admin's and
	// the API's (one connection each, so the flush reaches the session that
	// ran the query). Parallel workers flush their own when they exit.
	scans := func(sessions ...*pgxpool.Pool) (n, read int64) {
		t.Helper()
		for _, p := range append(sessions, admin) {
			if _, err := p.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
				t.Fatal(err)
			}
		}
		if err := admin.QueryRow(ctx, `SELECT seq_scan, seq_tup_read FROM pg_stat_user_tables WHERE relname = 'contacts'`).Scan(&n, &read); err != nil {
			t.Fatal(err)
		}
		return n, read
	}
	// The same count, outside the API, gets its workers: more than one
	// scan shares the table's rows (tried again: the server's workers are
	// shared with the other tests).
	var parallel bool
	for i := 0; i < 20 && !parallel; i++ {
		n0, _ := scans()
		if _, err := admin.Exec(ctx, `SELECT count(*) FROM contacts WHERE search_text LIKE '%xq%'`); err != nil {
			t.Fatal(err)
		}
		n1, _ := scans()
		parallel = n1-n0 >= 2
	}
	if !parallel {
		t.Fatal("no parallel scan of the contacts outside the API either: this test cannot tell")
	}

	// Through the API, every scan of the contacts reads the whole table by
	// itself: a scan shared with workers reads less than that per scan.
	b := setup(t, setupOpts{databaseURL: dbURL, poolSize: 1})
	var alone int64
	for _, q := range []string{"search=xq", "search=qx&sort=email", "search=zz&includeDeleted=true", "search=jq", "search=qj"} {
		n0, read0 := scans(b.pool)
		r := b.call("GET", "/api/contacts?"+q, b.user, nil)
		if r.status != 200 || len(r.json["data"].([]any)) != 0 {
			t.Fatalf("%s: %d %s", q, r.status, r.body)
		}
		n1, read1 := scans(b.pool)
		if n, read := n1-n0, read1-read0; read != n*rows {
			t.Errorf("%s: %d scans of the contacts read %d rows: shared with parallel workers", q, n, read)
		} else {
			alone += n
		}
	}
	if alone == 0 && !t.Failed() {
		t.Error("the searches scanned no contacts: this test cannot tell")
	}
}

func TestUpdateWithOptimisticConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.create(newContact("u-1"))["id"].(string)
	put := newContact("u-1")
	put["firstName"] = "Johnny"
	delete(put, "source")
	delete(put, "sourceId")

	if r := b.call("PUT", "/api/contacts/"+id, b.user, put); r.status != 428 || r.errCode() != "PRECONDITION_REQUIRED" {
		t.Errorf("no version: %d %s", r.status, r.body)
	}
	r := b.call("PUT", "/api/contacts/"+id, b.user, put, "If-Match", `"1"`)
	if r.status != 200 || r.data()["firstName"] != "Johnny" || r.data()["version"] != float64(2) || r.header.Get("ETag") != `"2"` {
		t.Fatalf("PUT If-Match: %d %s", r.status, r.body)
	}
	r = b.call("PUT", "/api/contacts/"+id, b.user, put, "If-Match", `"1"`)
	details, _ := r.json["error"].(map[string]any)["details"].(map[string]any)
	if r.status != 412 || r.errCode() != "VERSION_CONFLICT" || details["currentVersion"] != float64(2) || details["providedVersion"] != float64(1) {
		t.Errorf("stale If-Match: %d %s", r.status, r.body)
	}
	put["version"] = 1
	if r := b.call("PUT", "/api/contacts/"+id, b.user, put); r.status != 409 || r.errCode() != "VERSION_CONFLICT" {
		t.Errorf("stale body version: %d %s", r.status, r.body)
	}
	put["version"] = 2
	if r := b.call("PUT", "/api/contacts/"+id, b.user, put, "If-Match", `"3"`); r.status != 400 {
		t.Errorf("If-Match and version disagree: %d %s", r.status, r.body)
	}
	// A PUT replaces every editable field: what is absent becomes empty.
	minimal := map[string]any{"firstName": "Min", "lastName": "Imal", "email": "min@example.com", "version": 2}
	r = b.call("PUT", "/api/contacts/"+id, b.user, minimal)
	if r.status != 200 || r.data()["phone"] != "" || len(r.data()["tags"].([]any)) != 0 || r.data()["address"].(map[string]any)["city"] != "" {
		t.Errorf("PUT full replace: %d %s", r.status, r.body)
	}
	// Echoing back read-only fields from a GET is accepted and ignored.
	g := b.call("GET", "/api/contacts/"+id, b.user, nil).data()
	g["firstName"] = "Echo"
	g["sourceId"] = "changed?"
	if r := b.call("PUT", "/api/contacts/"+id, b.user, g); r.status != 200 || r.data()["sourceId"] != "u-1" || r.data()["firstName"] != "Echo" {
		t.Errorf("PUT with echoed fields: %d %s", r.status, r.body)
	}
	if r := b.call("PUT", "/api/contacts/00000000-0000-4000-8000-000000000000", b.user, minimal); r.status != 404 {
		t.Errorf("PUT unknown: %d %s", r.status, r.body)
	}
	if r := b.call("PUT", "/api/contacts/"+id, b.user, minimal, "If-Match", "*"); r.status != 400 {
		t.Errorf("If-Match *: %d %s", r.status, r.body)
	}
}

func TestPatchIsAMergePatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.create(newContact("p-1"))["id"].(string)
	r := b.call("PATCH", "/api/contacts/"+id, b.user,
		`{"title": "CTO", "phone": null, "address": {"city": "Shelbyville"}, "customFields": {"tier": null, "score": 7}}`,
		"If-Match", `"1"`, "Content-Type", "application/merge-patch+json")
	if r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	d := r.data()
	addr := d["address"].(map[string]any)
	cf := d["customFields"].(map[string]any)
	if d["title"] != "CTO" || d["phone"] != "" || d["firstName"] != "John" || addr["city"] != "Shelbyville" || addr["street"] != "1 Main St" ||
		cf["tier"] != nil || cf["score"] != float64(7) || d["version"] != float64(2) {
		t.Errorf("patched = %v", d)
	}
	if r := b.call("PATCH", "/api/contacts/"+id, b.user, `{"title": "CEO", "version": 1}`); r.status != 409 || r.errCode() != "VERSION_CONFLICT" {
		t.Errorf("stale patch: %d %s", r.status, r.body)
	}
	if r := b.call("PATCH", "/api/contacts/"+id, b.user, `{"title": "CEO"}`); r.status != 428 {
		t.Errorf("patch without version: %d %s", r.status, r.body)
	}
	if r := b.call("PATCH", "/api/contacts/"+id, b.user, `{"id": "x", "createdAt": "y", "version": 2}`); r.status != 400 || !strings.Contains(string(r.body), "read-only") {
		t.Errorf("read-only fields: %d %s", r.status, r.body)
	}
	if r := b.call("PATCH", "/api/contacts/"+id, b.user, `{"email": "broken", "version": 2}`); r.status != 400 || !strings.Contains(string(r.body), `"path":"email"`) {
		t.Errorf("patch to invalid: %d %s", r.status, r.body)
	}
	if r := b.call("PATCH", "/api/contacts/"+id, b.user, `{"bogus": 1, "version": 2}`); r.status != 400 {
		t.Errorf("unknown field: %d %s", r.status, r.body)
	}
	if r := b.call("PATCH", "/api/contacts/"+id, b.user, `[1,2]`, "If-Match", `"2"`); r.status != 400 {
		t.Errorf("array patch: %d %s", r.status, r.body)
	}
	if g := b.call("GET", "/api/contacts/"+id, b.user, nil); g.data()["version"] != float64(2) {
		t.Errorf("failed patches changed the contact: %s", g.body)
	}
}

// Many writers with the same version: exactly one wins, the rest get 409,
// and no update is lost.
func TestConcurrentUpdatesExactlyOneWins(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.create(newContact("cc-1"))["id"].(string)
	const writers = 20
	statuses := make([]int, writers)
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{"firstName": fmt.Sprintf("W%d", i), "lastName": "X", "email": "w@example.com", "version": 1}
			statuses[i] = b.call("PUT", "/api/contacts/"+id, b.user, body).status
		}()
	}
	wg.Wait()
	wins, conflicts := 0, 0
	winner := ""
	for i, s := range statuses {
		switch s {
		case 200:
			wins++
			winner = fmt.Sprintf("W%d", i)
		case 409:
			conflicts++
		default:
			t.Errorf("writer %d: status %d", i, s)
		}
	}
	if wins != 1 || conflicts != writers-1 {
		t.Fatalf("wins %d conflicts %d", wins, conflicts)
	}
	g := b.call("GET", "/api/contacts/"+id, b.user, nil).data()
	if g["version"] != float64(2) || g["firstName"] != winner {
		t.Errorf("final = %v, want version 2 by %s", g, winner)
	}
}

func TestSoftDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.create(newContact("d-1"))["id"].(string)
	b.create(newContact("d-2"))
	if r := b.call("DELETE", "/api/contacts/"+id, b.user, nil, "If-Match", `"7"`); r.status != 412 {
		t.Errorf("stale delete: %d %s", r.status, r.body)
	}
	r := b.call("DELETE", "/api/contacts/"+id, b.user, nil)
	if r.status != 200 || r.json["message"] != "Contact deleted successfully" || r.json["id"] != id {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	g := b.call("GET", "/api/contacts/"+id, b.user, nil).data()
	if g["status"] != "deleted" || g["deletedAt"] == nil || g["version"] != float64(2) {
		t.Errorf("after delete: %v", g)
	}
	total := func(q string) float64 {
		return b.call("GET", "/api/contacts"+q, b.user, nil).json["pagination"].(map[string]any)["totalItems"].(float64)
	}
	if total("") != 1 || total("?includeDeleted=true") != 2 || total("?status=deleted") != 1 {
		t.Errorf("visibility: %v %v %v", total(""), total("?includeDeleted=true"), total("?status=deleted"))
	}
	if r := b.call("DELETE", "/api/contacts/"+id, b.user, nil); r.status != 404 {
		t.Errorf("second delete: %d", r.status)
	}
	if r := b.call("PUT", "/api/contacts/"+id, b.user, map[string]any{"firstName": "a", "lastName": "b", "email": "a@b.co", "version": 2}); r.status != 404 {
		t.Errorf("update deleted: %d", r.status)
	}
}

// Every change writes exactly one change event to the outbox, in the same
// transaction; failed writes write none.
func TestChangesGoToTheOutbox(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.create(newContact("o-1"))["id"].(string)
	if r := b.call("POST", "/api/contacts", b.user, newContact("o-1")); r.status != 409 { // duplicate: no event
		t.Fatalf("duplicate: %d", r.status)
	}
	b.call("PATCH", "/api/contacts/"+id, b.user, `{"title": "X", "version": 1}`)
	b.call("PATCH", "/api/contacts/"+id, b.user, `{"title": "Y", "version": 1}`) // stale: no event
	// Writes that change nothing keep the version and queue no event; a
	// stale version is refused all the same.
	same := newContact("o-1")
	same["title"], same["version"] = "X", 2
	for _, w := range []struct {
		method string
		body   any
		status int
	}{
		{"PATCH", `{"title": "X", "version": 2}`, 200},
		{"PATCH", `{"version": 2}`, 200},
		{"PUT", same, 200},
		{"PATCH", `{"title": "X", "version": 1}`, 409},
	} {
		r := b.call(w.method, "/api/contacts/"+id, b.user, w.body)
		if r.status != w.status || (w.status == 200 && (r.data()["version"] != float64(2) || r.header.Get("ETag") != `"2"`)) {
			t.Errorf("%s %v: %d %s", w.method, w.body, r.status, r.body)
		}
	}
	b.call("DELETE", "/api/contacts/"+id, b.user, nil)
	rows, err := b.store.Pool().Query(context.Background(),
		`SELECT topic, key, p->>'type', p->'data'->>'version', headers->>'event-type' FROM (SELECT *, convert_from(payload, 'UTF8')::jsonb AS p FROM outbox) o ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var topic, key, typ, version, hdr string
		if err := rows.Scan(&topic, &key, &typ, &version, &hdr); err != nil {
			t.Fatal(err)
		}
		if topic != "contacts" || key != id || hdr != typ {
			t.Errorf("row %s %s %s", topic, key, hdr)
		}
		got = append(got, typ+"@"+version)
	}
	if strings.Join(got, " ") != "contact.created@1 contact.updated@2 contact.deleted@3" {
		t.Errorf("outbox = %v", got)
	}
}

func TestUpsertFromAcmeFormat(t *testing.T) {
	t.Parallel()
	b := setup(t)
	acme := map[string]any{
		"contact_id": "1234", "acme_first_name": "John", "acme_last_name": "Doe",
		"acme_email": "john.doe@example.com", "acme_address": "1 Main St, Springfield, IL 62701, USA",
		"acme_status": "Lead", "acme_tags": []string{"vip"}, "acme_custom_fields": map[string]any{"tier": "gold"},
	}
	r := b.call("POST", "/api/contacts/acme", b.user, acme)
	if r.status != 201 || r.data()["source"] != "acmecrm" || r.data()["sourceId"] != "1234" || r.data()["status"] != "lead" ||
		r.data()["address"].(map[string]any)["state"] != "IL" {
		t.Fatalf("acme create: %d %s", r.status, r.body)
	}
	// The same state again changes nothing: same version, no new event.
	r = b.call("POST", "/api/contacts/acme", b.user, acme)
	if r.status != 200 || r.data()["version"] != float64(1) {
		t.Errorf("acme same state: %d %s", r.status, r.body)
	}
	acme["acme_title"] = "CTO"
	r = b.call("POST", "/api/contacts/acme", b.user, acme)
	if r.status != 200 || r.data()["version"] != float64(2) || r.data()["title"] != "CTO" {
		t.Errorf("acme update: %d %s", r.status, r.body)
	}
	var events int
	_ = b.store.Pool().QueryRow(context.Background(), "SELECT count(*) FROM outbox").Scan(&events)
	if events != 2 {
		t.Errorf("outbox rows = %d, want 2 (create, one real update)", events)
	}
	bad := map[string]any{"contact_id": "", "acme_first_name": "J", "acme_email": "x", "acme_address": strings.Repeat("a", 300)}
	r = b.call("POST", "/api/contacts/acme", b.user, bad)
	for _, p := range []string{"contact_id", "acme_last_name", "acme_email", "acme_address"} {
		if !strings.Contains(string(r.body), `"path":"`+p+`"`) {
			t.Errorf("no problem for %s: %s", p, r.body)
		}
	}
	if r := b.call("POST", "/api/contacts/acme", b.user, map[string]any{"contact_id": "1", "firstName": "wrong dialect"}); r.status != 400 {
		t.Errorf("internal field names in acme body: %d %s", r.status, r.body)
	}
}

// A custom field's number comes back as it was sent: an integer beyond 2^53
// keeps its digits, and one beyond a double's range is refused at the door.
// A row holding such a number anyway (written by SQL, or before the check)
// still reads: it once made every list of contacts answer 500.
func TestCustomFieldNumbersKeepTheirDigits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := `{"source":"api","sourceId":"num-1","firstName":"N","lastName":"Um","email":"num@example.com",` +
		`"customFields":{"crmId":12345678901234567890,"ratio":0.1,"neg":-0.000001}}`
	r := b.call("POST", "/api/contacts", b.user, body)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.data()["id"].(string)
	for _, got := range []response{r, b.call("GET", "/api/contacts/"+id, b.user, nil), b.call("GET", "/api/contacts?search=num@", b.user, nil)} {
		if !strings.Contains(string(got.body), `"crmId":12345678901234567890`) || !strings.Contains(string(got.body), `"ratio":0.1`) {
			t.Errorf("digits lost: %s", got.body)
		}
	}
	// A patch of another field leaves the number as it was.
	if r := b.call("PATCH", "/api/contacts/"+id, b.user, `{"title":"Counter"}`, "If-Match", `"1"`); r.status != 200 ||
		!strings.Contains(string(r.body), `"crmId":12345678901234567890`) {
		t.Errorf("digits lost by a patch: %d %s", r.status, r.body)
	}
	for _, n := range []string{"1e400", "-1e309"} {
		r := b.call("POST", "/api/contacts", b.user, `{"source":"api","sourceId":"num-2","firstName":"N","lastName":"Um","email":"num2@example.com","customFields":{"n":`+n+`}}`)
		if r.status != 400 || !strings.Contains(string(r.body), `"path":"customFields.n"`) {
			t.Errorf("custom field %s: %d %s", n, r.status, r.body)
		}
	}
	if _, err := b.store.Pool().Exec(t.Context(), `UPDATE contacts SET custom_fields = '{"n": 1e400}' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	// Read raw: this test's own client could not decode 1e400 into a float64.
	auth := map[string]string{"Authorization": "Bearer " + b.user}
	for _, path := range []string{"/api/contacts?search=num@", "/api/contacts/" + id} {
		resp, body := do(t, "GET", b.srv.URL+path, nil, auth)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"customFields":{"n":1000000000`) {
			t.Errorf("GET %s with a huge number stored: %d %.300s", path, resp.StatusCode, body)
		}
	}
}

// Search folds case beyond ASCII, whatever the database's locale (the
// local run's is C, where ILIKE folds only A–Z).
func TestSearchFoldsCaseBeyondASCII(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i, name := range [][2]string{{"Élodie", "Ærøskøbing"}, {"ZOË", "Ångström"}, {"plain", "ascii"}} {
		c := newContact(fmt.Sprintf("u-%d", i))
		c["firstName"], c["lastName"], c["email"] = name[0], name[1], fmt.Sprintf("u%d@example.com", i)
		b.create(c)
	}
	for q, want := range map[string]int{"élodie": 1, "ÉLODIE": 1, "ærøskøbing": 1, "ÆRØ": 1, "zoë": 1, "ångström": 1, "ÅNGSTRÖM": 1, "PLAIN": 1, "ö": 1, "Ø": 1, "%": 0} {
		r := b.call("GET", "/api/contacts?search="+url.QueryEscape(q), b.user, nil)
		if n := int(r.json["pagination"].(map[string]any)["totalItems"].(float64)); r.status != 200 || n != want {
			t.Errorf("search %q: %d, %d found, want %d", q, r.status, n, want)
		}
	}
}
