package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/devstack"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// service is `acmecrm <args>` running in the test, with its base URL.
type service struct {
	base string
	stop func() error
	out  *syncBuffer
}

// startService runs the CLI with the given environment until the test ends
// (or stop is called), and waits for /readyz to answer 200.
func startService(t *testing.T, vars map[string]string, args ...string) *service {
	t.Helper()
	addr := vars["HTTP_ADDR"]
	if addr == "" {
		addr = freeAddr(t)
		vars["HTTP_ADDR"] = addr
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan struct{})
	var runErr error
	go func() { runErr = run(ctx, args, env(vars), out, out); close(done) }()
	stop := func() error {
		cancel()
		select {
		case <-done:
			return runErr
		case <-time.After(60 * time.Second):
			return fmt.Errorf("service did not stop within 60s")
		}
	}
	t.Cleanup(func() { _ = stop() })
	s := &service{base: "http://" + addr, stop: stop, out: out}
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("service exited during start-up: %v\n%s", runErr, out.String())
		default:
		}
		if resp, err := http.Get(s.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("service not ready after 90s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testEnv is the environment of a service on the test's own database,
// Redis prefix and broker.
func testEnv(t *testing.T) map[string]string {
	redisURL, prefix := infratest.Redis(t)
	k := infratest.Kafka(t)
	return map[string]string{
		"APP_ENV":             "test",
		"JWT_SECRET":          strings.Repeat("k", 32),
		"ACME_WEBHOOK_SECRET": "test-webhook-secret",
		"DATABASE_URL":        infratest.DatabaseURL(t),
		"REDIS_URL":           redisURL,
		// Each test's own keys: its tokens, and rate limits it does not
		// share with the tests running beside it.
		"REDIS_KEY_PREFIX": prefix,
		"KAFKA_BROKERS":    strings.Join(k.Brokers(), ","),
		"LOG_LEVEL":        "warn",
	}
}

func get(t *testing.T, url string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("GET %s: not JSON: %s", url, b)
	}
	return resp.StatusCode, resp.Header, m
}

func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	vars["ADMIN_USERNAME"], vars["ADMIN_PASSWORD"] = "ops@example.com", "ops-password-1"
	s := startService(t, vars, "serve")

	code, hdr, body := get(t, s.base+"/readyz")
	checks, _ := body["checks"].(map[string]any)
	if code != 200 || checks["postgres"] != "ok" || checks["redis"] != "ok" || checks["kafka"] != "ok" {
		t.Fatalf("readyz: %d %v", code, body)
	}
	if hdr.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID")
	}
	code, _, body = get(t, s.base+"/health")
	if code != 200 || body["status"] != "ok" {
		t.Errorf("health: %d %v", code, body)
	}
	code, _, body = get(t, s.base+"/api/nothing-here")
	if e, _ := body["error"].(map[string]any); code != 404 || e["type"] != "NOT_FOUND" {
		t.Errorf("unknown route: %d %v", code, body)
	}
	resp, err := http.Post(s.base+"/health", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /health: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}

	// A signed webhook is accepted and committed.
	whBody := `{"event_type":"contact.created","event_id":"evt_e2e","timestamp":"2025-05-19T00:00:00Z",` +
		`"data":{"contact_id":"crm-1","acme_first_name":"Eve","acme_last_name":"End","acme_email":"eve@example.com"}}`
	req, _ := http.NewRequest("POST", s.base+"/api/webhooks", strings.NewReader(whBody))
	req.Header.Set("Content-Type", "application/json")
	webhook.AcmeHeaders(req.Header, time.Now(), []byte(whBody), []byte("test-webhook-secret"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Errorf("signed webhook: %d", resp.StatusCode)
	}
	// …and flows through the outbox, Kafka and the consumer into contacts.
	_, token := login(t, s.base, "ops@example.com", "ops-password-1")
	deadline := time.Now().Add(30 * time.Second)
	for authedStatus(t, s.base, token, "/api/contacts/source/acmecrm/crm-1") != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("the webhook's contact never appeared:\n%s", s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Graceful shutdown: run returns nil and the port is released.
	if err := s.stop(); err != nil {
		t.Fatalf("shutdown: %v\n%s", err, s.out.String())
	}
	if _, err := http.Get(s.base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

func TestServeFailsLoudlyWhenADependencyIsMissing(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	vars["REDIS_URL"] = "redis://" + freeAddr(t) + "/0" // nothing listens there
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve"}, env(vars), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "redis") {
		t.Fatalf("err = %v, want a redis connection error", err)
	}
}

// A database without the migrations this build needs stops start-up with
// the command to run. Before, serve started, said it was ready, and
// answered 500 ("relation does not exist") to every webhook; the users and
// dlq commands failed with the same raw SQL error.
func TestUnmigratedDatabaseStopsStartup(t *testing.T) {
	t.Parallel()
	empty := infratest.EmptyDatabaseURL(t)
	behind := infratest.DatabaseURL(t)
	pool, err := postgres.Open(context.Background(), behind, 1)
	if err != nil {
		t.Fatal(err)
	}
	var latest int64
	if err := pool.QueryRow(context.Background(), `DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version) RETURNING version_id`).Scan(&latest); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	cases := []struct {
		url, says string
		args      []string
	}{
		{empty, "no migrations applied", []string{"serve"}},
		{behind, fmt.Sprintf("at migration %d and this build needs %d", latest-1, latest), []string{"serve"}},
		{empty, "no migrations applied", []string{"users", "list"}},
		{behind, "this build needs", []string{"dlq", "list"}},
	}
	for _, c := range cases {
		vars := testEnv(t)
		vars["DATABASE_URL"] = c.url
		var out bytes.Buffer
		// A serve that starts anyway would run until this deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := run(ctx, c.args, env(vars), &out, &out)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "acmecrm migrate up") {
			t.Errorf("%v on a database missing migrations: err = %v, want %q and the command to run", c.args, err, c.says)
		}
	}
	// Once migrated, the same database serves, also when it is migrated
	// further than this build knows (an older build during an upgrade).
	migrate(t, empty)
	ahead, err := postgres.Open(context.Background(), empty, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ahead.Exec(context.Background(), `INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, true)`); err != nil {
		t.Fatal(err)
	}
	ahead.Close()
	vars := testEnv(t)
	vars["DATABASE_URL"] = empty
	s := startService(t, vars, "serve")
	if code, _, body := get(t, s.base+"/readyz"); code != 200 {
		t.Errorf("readyz after migrating: %d %v", code, body)
	}
}

// migrate applies every migration to the database at url.
func migrate(t *testing.T, url string) {
	t.Helper()
	pool, err := postgres.Open(context.Background(), url, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := postgres.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
}

// /readyz turns 503 when PostgreSQL goes away, and names it; when it comes
// back, the same process recovers in every role.
func TestPostgresOutageAndRecovery(t *testing.T) {
	t.Parallel()
	dir, err := devstack.TempDir("acmecrm-ready-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	pg, err := devstack.StartPostgres(context.Background(), devstack.PostgresOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	migrate(t, pg.URL("postgres"))
	vars := testEnv(t)
	vars["DATABASE_URL"] = pg.URL("postgres")
	s := startService(t, vars, "serve")
	port := pg.Port()

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, hdr, body := get(t, s.base+"/readyz")
		if code == 503 {
			e, _ := body["error"].(map[string]any)
			details, _ := e["details"].(map[string]any)
			checks, _ := details["checks"].(map[string]any)
			if checks["postgres"] != "unavailable" || checks["redis"] != "ok" || hdr.Get("Retry-After") == "" {
				t.Fatalf("503 body = %v", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz still %d 30s after PostgreSQL stopped", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Liveness is about the process, not its dependencies.
	if code, _, _ := get(t, s.base+"/healthz"); code != 200 {
		t.Errorf("healthz = %d while postgres is down", code)
	}

	// PostgreSQL comes back (same data, same port): the same process turns
	// ready again, and every role recovers without a restart — the receiver
	// stores, the relay publishes, the consumer applies.
	pg, err = devstack.StartPostgres(context.Background(), devstack.PostgresOptions{Dir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	body := contactWebhook("evt_after_outage", "contact.created", "crm-outage", "Back", time.Now())
	deadline = time.Now().Add(30 * time.Second)
	for {
		code := postWebhook(t, s.base, body, "application/json", vars["ACME_WEBHOOK_SECRET"])
		if code == 202 {
			break
		}
		if code != 503 || time.Now().After(deadline) {
			t.Fatalf("webhook after postgres came back: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _, body := get(t, s.base+"/readyz"); code != 200 {
		t.Errorf("readyz after recovery: %d %v", code, body)
	}
	pool, err := postgres.Open(context.Background(), pg.URL("postgres"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	deadline = time.Now().Add(30 * time.Second)
	for {
		var first string
		_ = pool.QueryRow(context.Background(), `SELECT first_name FROM contacts WHERE source_id = 'crm-outage'`).Scan(&first)
		if first == "Back" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event accepted after the outage never reached the contacts table")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Roles run separately: an instance without the api role serves only
// probes, and the pipeline roles still move events.
func TestRolesRunSeparately(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	api := startService(t, vars, "serve", "--roles", "api")
	pipeVars := map[string]string{}
	for k, v := range vars {
		pipeVars[k] = v
	}
	pipeVars["HTTP_ADDR"] = ""
	pipe := startService(t, pipeVars, "serve", "--roles", "relay,consumer")
	if code, _, _ := get(t, pipe.base+"/api/nothing"); code != 404 {
		t.Errorf("pipeline instance: %d", code)
	}
	if resp, err := http.Post(pipe.base+"/api/webhooks", "application/json", strings.NewReader("{}")); err != nil || resp.StatusCode != 404 {
		t.Errorf("pipeline instance serves the receiver: %v %v", resp, err)
	}
	body := `{"event_type":"contact.created","event_id":"evt_roles","timestamp":"2025-05-19T00:00:00Z",` +
		`"data":{"contact_id":"crm-2","acme_first_name":"Ro","acme_last_name":"Les","acme_email":"ro@example.com"}}`
	req, _ := http.NewRequest("POST", api.base+"/api/webhooks", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	webhook.AcmeHeaders(req.Header, time.Now(), []byte(body), []byte("test-webhook-secret"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("webhook to the api instance: %v %v", resp, err)
	}
	resp.Body.Close()
	pool, err := postgres.Open(context.Background(), vars["DATABASE_URL"], 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM contacts WHERE source_id = 'crm-2'`).Scan(&n)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pipeline instance never applied the event")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The relay role prunes finished records older than EVENT_RETENTION, and
// keeps the rest.
func TestRelayRolePrunesFinishedRecords(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	vars["EVENT_RETENTION"] = "720h"
	ctx := context.Background()
	pool, err := postgres.Open(ctx, vars["DATABASE_URL"], 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	var evs []postgres.IncomingEvent
	for _, id := range []string{"evt_old", "evt_recent"} {
		evs = append(evs, postgres.IncomingEvent{Event: acmecrm.Event{EventID: id, EventType: "contact.merged",
			OccurredAt: time.Now().UTC(), ReceivedAt: time.Now().UTC(), Source: acmecrm.SourceAcme, ContactID: "crm-9"},
			Headers: map[string]string{}, RawBody: []byte("{}")})
	}
	if out, err := store.RecordEvents(ctx, "contact-events", evs); err != nil || out[0] != "ignored" || out[1] != "ignored" {
		t.Fatalf("record: %v %v", out, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE webhook_receipts SET received_at = now() - interval '31 days' WHERE event_id = 'evt_old'`); err != nil {
		t.Fatal(err)
	}
	startService(t, vars, "serve", "--roles", "relay")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left []string
		rows, _ := pool.Query(ctx, `SELECT event_id FROM webhook_events ORDER BY event_id`)
		for rows.Next() {
			var id string
			_ = rows.Scan(&id)
			left = append(left, id)
		}
		rows.Close()
		if len(left) == 1 && left[0] == "evt_recent" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhooks left %v, want [evt_recent]", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The relay role folds the kept counts' deltas as it runs, so that they
// do not pile up between reads of the event tracking or the contact lists.
func TestTheKeptCountsAreFolded(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := infratest.Pool(t)
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	// 50 statements of each kind, each a delta of its own.
	for i := range 50 {
		ev := acmecrm.Event{EventID: fmt.Sprintf("evt_fold_%d", i), EventType: acmecrm.EventContactDeleted, OccurredAt: time.Now(),
			ReceivedAt: time.Now(), Source: acmecrm.SourceAcme, ContactID: "crm-1", Data: acmecrm.AcmeContact{ContactID: "crm-1"}}
		if _, err := store.RecordEvents(ctx, "contact-events", []postgres.IncomingEvent{{Event: ev, Headers: map[string]string{}, RawBody: []byte("{}")}}); err != nil {
			t.Fatal(err)
		}
		f := acmecrm.ContactFields{FirstName: "Ada"}
		f.Normalize()
		if _, err := store.CreateContact(ctx, "api", fmt.Sprintf("fold-%d", i), f); err != nil {
			t.Fatal(err)
		}
		if err := store.RecordDeadLetter(ctx, postgres.DeadLetter{EventID: ev.EventID, EventType: ev.EventType, Topic: "contact-events",
			Payload: []byte("{}"), Error: "apply: invalid event", Attempts: 4}); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(table string) (n, total int64) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(n), 0) FROM `+table).Scan(&n, &total); err != nil {
			t.Fatal(err)
		}
		return n, total
	}
	// Each kind of count, its total and its groups once folded: one event
	// type in two statuses (received, now none; dead), one contact group,
	// two outbox topics (each webhook and each contact change queued a
	// record), one kind of dead letter.
	kept := []struct {
		table         string
		total, groups int64
	}{{"webhook_event_counts", 50, 2}, {"contact_counts", 50, 1}, {"outbox_counts", 100, 2}, {"dead_letter_counts", 50, 1}}
	for _, k := range kept {
		if n, _ := rows(k.table); n < 50 {
			t.Fatalf("%d delta rows in %s before folding, want 50 or more", n, k.table)
		}
	}
	done := make(chan error, 1)
	go func() { done <- compactCounts(store, slog.New(slog.DiscardHandler), 10*time.Millisecond)(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for _, k := range kept {
		table := k.table
		for {
			n, total := rows(table)
			if total != k.total {
				t.Fatalf("folding changed the count in %s: %d, want %d", table, total, k.total)
			}
			if n == k.groups {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %d delta rows in %s", n, table)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
