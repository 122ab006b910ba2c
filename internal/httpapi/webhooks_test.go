package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/acmecrm/acmecrm/internal/devstack"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

func gzipped(s string) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return buf.String()
}

func createdBody(eventID, contactID, ts string) string {
	return fmt.Sprintf(`{"event_type":"contact.created","event_id":%q,"timestamp":%q,"data":{"contact_id":%q,`+
		`"acme_first_name":"John","acme_last_name":"Doe","acme_email":"john.doe@example.com","acme_status":"Active"}}`, eventID, ts, contactID)
}

// post sends body signed with key at time at; extra headers override.
func (b *bundle) post(body string, key []byte, at time.Time, extra ...string) response {
	b.t.Helper()
	var headers []string
	if key != nil {
		h := http.Header{}
		webhook.AcmeHeaders(h, at, []byte(body), key)
		headers = []string{webhook.HeaderAcmeTimestamp, h.Get(webhook.HeaderAcmeTimestamp), webhook.HeaderAcmeSignature, h.Get(webhook.HeaderAcmeSignature)}
	}
	return b.call("POST", "/api/webhooks", "", body, append(headers, extra...)...)
}

func (b *bundle) count(sql string, args ...any) int {
	b.t.Helper()
	var n int
	if err := b.store.Pool().QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		b.t.Fatal(err)
	}
	return n
}

func TestWebhookAcceptedAndStoredByteExact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Odd spacing and key order: the raw bytes are what is signed and kept.
	body := "{ \"event_id\":\"evt_1\",  \"event_type\":\"contact.created\",\"timestamp\":\"2025-05-17T17:06:39-07:00\",\n" +
		"\"data\":{\"contact_id\":\"1234\",\"acme_first_name\":\"John\",\"acme_last_name\":\"Doe\",\"acme_email\":\"john@example.com\"}}"
	r := b.post(body, webhookSecret, time.Now(), "User-Agent", "AcmeCRM-Webhooks/1.0")
	if r.status != 202 || r.json["status"] != "accepted" || r.json["eventId"] != "evt_1" || r.json["message"] != "Webhook accepted" || r.json["timestamp"] == nil {
		t.Fatalf("webhook: %d %s", r.status, r.body)
	}
	var raw []byte
	var secret, status, scheme, ua string
	err := b.store.Pool().QueryRow(context.Background(),
		`SELECT raw_body, secret_id, status, scheme, headers->>'User-Agent' FROM webhook_events WHERE event_id = 'evt_1'`).Scan(&raw, &secret, &status, &scheme, &ua)
	if err != nil || !bytes.Equal(raw, []byte(body)) || secret != "current" || status != "received" || scheme != "acme" || ua != "AcmeCRM-Webhooks/1.0" {
		t.Fatalf("stored: %q %s %s %s %q %v", raw, secret, status, scheme, ua, err)
	}
	var topic, key, msg string
	err = b.store.Pool().QueryRow(context.Background(), `SELECT topic, key, convert_from(payload, 'UTF8') FROM outbox`).Scan(&topic, &key, &msg)
	if err != nil || topic != "contact-events" || key != "1234" || !strings.Contains(msg, `"event_id":"evt_1"`) ||
		!strings.Contains(msg, `"occurred_at":"2025-05-18T00:06:39Z"`) || !strings.Contains(msg, `"source":"acmecrm"`) {
		t.Fatalf("outbox: %s %s %s %v", topic, key, msg, err)
	}
	// The previous secret is accepted during a rotation, and recorded.
	r = b.post(createdBody("evt_2", "1235", "2025-05-17T17:06:40Z"), previousSecret, time.Now())
	if r.status != 202 || b.count(`SELECT count(*) FROM webhook_events WHERE event_id = 'evt_2' AND secret_id = 'previous-1'`) != 1 {
		t.Errorf("previous secret: %d %s", r.status, r.body)
	}
	// The legacy dialect and the Standard Webhooks scheme work too.
	legacy := `{"event":"contact.deleted","id":"evt_3","timestamp":"2025-05-19T00:00:00Z","data":{"id":"1234","deletedAt":"2025-05-19T00:00:00Z"}}`
	now := time.Now()
	r = b.post(legacy, nil, now, webhook.HeaderID, "msg_3", webhook.HeaderTimestamp, fmt.Sprint(now.Unix()),
		webhook.HeaderSignature, webhook.SignStandard("msg_3", now.Unix(), []byte(legacy), webhookSecret))
	if r.status != 202 || r.json["status"] != "accepted" {
		t.Errorf("legacy + standard webhooks: %d %s", r.status, r.body)
	}
}

func TestWebhookDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := createdBody("evt_dup", "c1", "2025-05-17T17:06:39Z")
	if r := b.post(body, webhookSecret, time.Now()); r.status != 202 || r.json["status"] != "accepted" {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	// A re-delivery (fresh signature, same event id) is recognised.
	if r := b.post(body, webhookSecret, time.Now()); r.status != 202 || r.json["status"] != "duplicate" {
		t.Fatalf("second: %d %s", r.status, r.body)
	}
	// 50 copies at once: exactly one is accepted, one outbox row in all.
	body = createdBody("evt_race", "c2", "2025-05-17T17:06:39Z")
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.post(body, webhookSecret, time.Now())
			mu.Lock()
			counts[fmt.Sprintf("%d %v", r.status, r.json["status"])]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts["202 accepted"] != 1 || counts["202 duplicate"] != 49 {
		t.Fatalf("concurrent copies: %v", counts)
	}
	if n := b.count(`SELECT count(*) FROM outbox WHERE convert_from(payload, 'UTF8') LIKE '%evt_race%'`); n != 1 {
		t.Errorf("outbox rows for the raced event: %d", n)
	}
	if n := b.count(`SELECT count(*) FROM outbox`); n != 2 {
		t.Errorf("outbox rows: %d, want 2", n)
	}
}

func TestWebhookRejections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	good := createdBody("evt_r", "c1", "2025-05-17T17:06:39Z")
	now := time.Now()
	cases := []struct {
		name   string
		resp   response
		status int
		code   string
	}{
		{"unsigned", b.post(good, nil, now), 401, "MISSING_SIGNATURE"},
		{"wrong secret", b.post(good, []byte("guess"), now), 401, "INVALID_SIGNATURE"},
		{"stale", b.post(good, webhookSecret, now.Add(-10*time.Minute)), 401, "INVALID_TIMESTAMP"},
		{"future", b.post(good, webhookSecret, now.Add(10*time.Minute)), 401, "INVALID_TIMESTAMP"},
		{"malformed signature", b.post(good, nil, now, webhook.HeaderAcmeTimestamp, webhook.FormatTimestamp(now), webhook.HeaderAcmeSignature, "sha256=zz"), 401, "INVALID_SIGNATURE"},
		{"empty body", b.post("", webhookSecret, now), 400, "MALFORMED_JSON"},
		{"malformed JSON", b.post(`{"event_type":`, webhookSecret, now), 400, "MALFORMED_JSON"},
		{"schema", b.post(`{"event_type":"contact.created","event_id":"e","timestamp":"x","data":{"contact_id":"1"}}`, webhookSecret, now), 400, "INVALID_INPUT"},
		{"a contact the consumer would refuse", b.post(`{"event_type":"contact.created","event_id":"evt_r2","timestamp":"2025-05-17T17:06:39Z","data":{"contact_id":"c2",`+
			`"acme_first_name":"J","acme_last_name":"D","acme_email":"j@localhost"}}`, webhookSecret, now), 400, "INVALID_INPUT"},
		{"not JSON", b.post(good, webhookSecret, now, "Content-Type", "text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE"},
		// Accepted, it would outrank every later change to its contact.
		{"an event from the future", b.post(createdBody("evt_r3", "c3", "9999-12-31T23:59:59Z"), webhookSecret, now), 400, "INVALID_INPUT"},
		// Compressed bodies used to be read as JSON: 400 "not valid UTF-8"
		// for gzip, and a coding that changes nothing was accepted.
		{"gzip", b.post(gzipped(good), webhookSecret, now, "Content-Encoding", "gzip"), 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"a coding that changes nothing", b.post(good, webhookSecret, now, "Content-Encoding", "identity, br"), 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"too large", b.post(`{"event_type":"x","pad":"`+strings.Repeat("a", 40<<10)+`"}`, webhookSecret, now), 413, "PAYLOAD_TOO_LARGE"},
	}
	for _, c := range cases {
		if c.resp.status != c.status || c.resp.errCode() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, c.resp.status, c.resp.body, c.status, c.code)
		}
	}
	r := b.post(`{"event_type":"contact.created","event_id":"e","timestamp":"x","data":{"contact_id":"1","acme_email":"bad"}}`, webhookSecret, now)
	for _, path := range []string{"timestamp", "data.acme_email", "data"} {
		if !strings.Contains(string(r.body), `"path":"`+path+`"`) {
			t.Errorf("schema error lacks %s: %s", path, r.body)
		}
	}
	if n := b.count(`SELECT count(*) FROM webhook_events`) + b.count(`SELECT count(*) FROM outbox`); n != 0 {
		t.Errorf("rejected webhooks wrote %d rows", n)
	}
}

func TestUnknownEventTypeIsIgnored(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := `{"event_type":"contact.merged","event_id":"evt_m","timestamp":"2025-05-19T00:00:00Z","data":{"into":"2"}}`
	r := b.post(body, webhookSecret, time.Now())
	if r.status != 202 || r.json["status"] != "ignored" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if b.count(`SELECT count(*) FROM webhook_events WHERE event_id = 'evt_m' AND status = 'ignored'`) != 1 || b.count(`SELECT count(*) FROM outbox`) != 0 {
		t.Error("an ignored event must be stored and not published")
	}
}

// PostgreSQL stopped: 503 with Retry-After (never 2xx or 4xx), and after it
// comes back nothing of the refused webhook is there.
func TestWebhookWhenPostgresIsDown(t *testing.T) {
	t.Parallel()
	dir, err := devstack.TempDir("acmecrm-webhook-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx := context.Background()
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	pool, err := postgres.Open(ctx, pg.URL("postgres"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	b := setup(t, setupOpts{databaseURL: pg.URL("postgres")})
	if r := b.post(createdBody("evt_ok", "c1", "2025-05-17T17:06:39Z"), webhookSecret, time.Now()); r.status != 202 {
		t.Fatalf("before: %d", r.status)
	}
	port := pg.Port()
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	r := b.post(createdBody("evt_lost", "c1", "2025-05-17T17:06:40Z"), webhookSecret, time.Now())
	if r.status != 503 || r.header.Get("Retry-After") == "" || r.errCode() != "SERVICE_UNAVAILABLE" {
		t.Fatalf("with postgres down: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	pg, err = devstack.StartPostgres(ctx, devstack.PostgresOptions{Dir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	if pg.Port() != port {
		t.Fatalf("postgres came back on port %d, not %d", pg.Port(), port)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var events, outbox int
		err := b.store.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM webhook_events), (SELECT count(*) FROM outbox)`).Scan(&events, &outbox)
		if err == nil {
			if events != 1 || outbox != 1 {
				t.Fatalf("after restart: %d events, %d outbox rows; want exactly the first webhook", events, outbox)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database not back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And the sender's retry now succeeds.
	if r := b.post(createdBody("evt_lost", "c1", "2025-05-17T17:06:40Z"), webhookSecret, time.Now()); r.status != 202 || r.json["status"] != "accepted" {
		t.Errorf("retry after recovery: %d %s", r.status, r.body)
	}
}

// After a failover the service may reach a server that is now a read-only
// standby: every write fails with SQLSTATE 25006. That is the database,
// not the request, so the answer is 503 with Retry-After (the sender tries
// again once the address points at the new primary), not a 500.
func TestWebhookWhenPostgresIsReadOnly(t *testing.T) {
	t.Parallel()
	dbURL := infratest.DatabaseURL(t)
	b := setup(t, setupOpts{databaseURL: dbURL})
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// New sessions are read-only, and the pool's sessions are ended so
	// that it opens new ones.
	if _, err := admin.Exec(ctx, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); END $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		r := b.post(createdBody(fmt.Sprintf("evt_ro%d", i), "c1", "2025-05-17T17:06:39Z"), webhookSecret, time.Now())
		if r.status != 503 || r.header.Get("Retry-After") == "" || r.errCode() != "SERVICE_UNAVAILABLE" {
			t.Errorf("webhook %d on a read-only server: %d %s", i, r.status, r.body)
		}
	}
	if _, err := admin.Exec(ctx, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET default_transaction_read_only', current_database()); END $$`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM webhook_receipts`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d receipts written (%v)", n, err)
	}
}

func TestEventAuditAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := 0; i < 5; i++ {
		b.post(createdBody(fmt.Sprintf("evt_a%d", i), fmt.Sprintf("c%d", i%2), "2025-05-17T17:06:39Z"), webhookSecret, time.Now())
	}
	b.post(`{"event_type":"contact.merged","event_id":"evt_ign","timestamp":"2025-05-19T00:00:00Z","data":{}}`, webhookSecret, time.Now())
	if r := b.call("GET", "/api/webhooks", "", nil); r.status != 401 {
		t.Errorf("audit without token: %d", r.status)
	}
	r := b.call("GET", "/api/webhooks?limit=4", b.user, nil)
	data := r.json["data"].([]any)
	if r.status != 200 || len(data) != 4 || r.json["nextCursor"] == nil || data[0].(map[string]any)["eventId"] != "evt_ign" {
		t.Fatalf("page 1: %d %s", r.status, r.body)
	}
	r2 := b.call("GET", "/api/webhooks?limit=4&cursor="+r.json["nextCursor"].(string), b.user, nil)
	if d := r2.json["data"].([]any); len(d) != 2 || r2.json["nextCursor"] != nil || d[1].(map[string]any)["eventId"] != "evt_a0" {
		t.Fatalf("page 2: %s", r2.body)
	}
	if r := b.call("GET", "/api/webhooks?contactId=c1&type=contact.created", b.user, nil); len(r.json["data"].([]any)) != 2 {
		t.Errorf("filters: %s", r.body)
	}
	if r := b.call("GET", "/api/webhooks?status=ignored", b.user, nil); len(r.json["data"].([]any)) != 1 {
		t.Errorf("status filter: %s", r.body)
	}
	if r := b.call("GET", "/api/webhooks/pending", b.user, nil); len(r.json["data"].([]any)) != 5 {
		t.Errorf("pending: %s", r.body)
	}
	for _, q := range []string{"status=bogus", "limit=0", "cursor=not-a-cursor"} {
		if r := b.call("GET", "/api/webhooks?"+q, b.user, nil); r.status != 400 {
			t.Errorf("%s: %d", q, r.status)
		}
	}
	one := b.call("GET", "/api/webhooks/evt_a3", b.user, nil)
	d := one.data()
	hist := d["history"].([]any)
	if one.status != 200 || d["status"] != "received" || d["secretId"] != "current" || !strings.Contains(d["rawBody"].(string), `"evt_a3"`) ||
		d["rawBodyEncoding"] != "utf-8" || len(hist) != 1 || d["payload"].(map[string]any)["contact_id"] != "c1" || d["headers"].(map[string]any)["X-Acme-Signature"] == nil {
		t.Errorf("one event: %d %s", one.status, one.body)
	}
	if r := b.call("GET", "/api/webhooks/nope", b.user, nil); r.status != 404 {
		t.Errorf("unknown: %d", r.status)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The service's logs carry request ids, never webhook bodies, signatures,
// secrets or tokens — also when a request fails.
func TestWebhookBodiesAndSecretsStayOutOfLogs(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	b := setup(t, setupOpts{logOut: logs})
	marker := "very-private-contact-note"
	body := strings.Replace(createdBody("evt_log", "c1", "2025-05-17T17:06:39Z"), `"acme_status"`, `"acme_notes":"`+marker+`","acme_status"`, 1)
	b.post(body, webhookSecret, time.Now())
	b.post(body, []byte("wrong"), time.Now())
	b.post(`{"event_type":"contact.created","event_id":"x","timestamp":"bad","data":{"acme_notes":"`+marker+`"}}`, webhookSecret, time.Now())
	b.call("GET", "/api/contacts", b.user, nil)
	out := logs.String()
	if !strings.Contains(out, `"route":"POST /api/webhooks"`) {
		t.Fatalf("no access log lines captured: %s", out)
	}
	for _, secret := range []string{marker, string(webhookSecret), "sha256=", b.user, strings.Split(b.user, ".")[2]} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

// Concurrent callers of the event statistics share one computation, and
// its answer is reused for a while (generatedAt says when it was made)
// instead of reading the database again per request.
func TestEventMetricsAreComputedOnceForConcurrentCallers(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{statsMinAge: time.Hour})
	if r := b.post(createdBody("evt_stats_1", "crm-s1", time.Now().UTC().Format(time.RFC3339)), webhookSecret, time.Now()); r.status != 202 {
		t.Fatalf("webhook: %d %s", r.status, r.body)
	}
	const n = 10
	answers := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = b.call("GET", "/api/metrics/events", b.user, nil)
		}()
	}
	wg.Wait()
	generated := map[any]int{}
	for _, r := range answers {
		if r.status != 200 {
			t.Fatalf("event metrics: %d %s", r.status, r.body)
		}
		generated[r.data()["generatedAt"]]++
	}
	if len(generated) != 1 {
		t.Fatalf("%d concurrent callers got %d computations (%v), want one", n, len(generated), generated)
	}
	first := answers[0].data()
	if totals := first["totals"].(map[string]any); totals["received"] != float64(1) {
		t.Errorf("totals: %v", totals)
	}
	// Within its age the answer is reused, even though the log changed.
	if r := b.post(createdBody("evt_stats_2", "crm-s2", time.Now().UTC().Format(time.RFC3339)), webhookSecret, time.Now()); r.status != 202 {
		t.Fatalf("webhook: %d %s", r.status, r.body)
	}
	again := b.call("GET", "/api/metrics/events", b.user, nil).data()
	if again["generatedAt"] != first["generatedAt"] || again["totals"].(map[string]any)["received"] != float64(1) {
		t.Errorf("a second call within the answer's age computed again: %v", again)
	}
}

// Filtered by type alone, which no index serves, a page of the audit list
// looks at a bounded stretch of the log: a rare type cannot make one
// request scan everything stored. A page may then hold fewer events than
// asked for and still have a next one; following the cursors lists every
// match, newest first.
func TestAuditListByTypeLooksAtABoundedStretch(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{typeWindow: 4})
	post := func(body string) {
		if r := b.post(body, webhookSecret, time.Now()); r.status != 202 {
			t.Fatalf("webhook: %d %s", r.status, r.body)
		}
	}
	post(createdBody("evt_t0", "c1", "2025-05-17T17:06:39Z"))
	post(createdBody("evt_t1", "c2", "2025-05-17T17:06:39Z"))
	for i := range 8 {
		post(fmt.Sprintf(`{"event_type":"contact.merged","event_id":"evt_m%d","timestamp":"2025-05-19T00:00:00Z","data":{}}`, i))
	}
	post(createdBody("evt_t10", "c3", "2025-05-17T17:06:39Z"))

	var ids []string
	var sizes []int
	target := "/api/webhooks?type=contact.created&limit=2"
	for range 10 {
		r := b.call("GET", target, b.user, nil)
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", target, r.status, r.body)
		}
		data := r.json["data"].([]any)
		sizes = append(sizes, len(data))
		for _, d := range data {
			ids = append(ids, d.(map[string]any)["eventId"].(string))
		}
		next, _ := r.json["nextCursor"].(string)
		if next == "" {
			break
		}
		target = "/api/webhooks?type=contact.created&limit=2&cursor=" + next
	}
	if got := strings.Join(ids, " "); got != "evt_t10 evt_t1 evt_t0" {
		t.Errorf("every page: %s, want evt_t10 evt_t1 evt_t0", got)
	}
	// The newest 4 webhooks hold one of the type: the first page stops
	// there, with a cursor, instead of reading on for a second.
	if len(sizes) < 3 || sizes[0] != 1 || sizes[1] != 0 {
		t.Errorf("page sizes %v, want [1 0 2 …]: each page looks at 4 webhooks", sizes)
	}
	// With the contact id (indexed) the pages are not bounded.
	if r := b.call("GET", "/api/webhooks?type=contact.created&contactId=c1", b.user, nil); len(r.json["data"].([]any)) != 1 || r.json["nextCursor"] != nil {
		t.Errorf("type and contact: %s", r.body)
	}
}
