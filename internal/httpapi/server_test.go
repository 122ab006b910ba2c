package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

var fixedNow = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func newTestServer(t *testing.T, checks ...Check) *httptest.Server {
	t.Helper()
	return setup(t, setupOpts{checks: checks}).srv
}

type envelope struct {
	Error struct {
		Message   string         `json:"message"`
		Type      string         `json:"type"`
		Status    int            `json:"status"`
		Timestamp string         `json:"timestamp"`
		Code      string         `json:"code"`
		RequestID string         `json:"requestId"`
		Details   map[string]any `json:"details"`
	} `json:"error"`
}

func do(t *testing.T, method, url string, body io.Reader, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func decodeEnvelope(t *testing.T, b []byte) envelope {
	t.Helper()
	var e envelope
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("not an error envelope: %v: %s", err, b)
	}
	return e
}

func TestUnknownRouteIs404Envelope(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	resp, body := do(t, "GET", srv.URL+"/no/such/route", nil, map[string]string{"X-Request-ID": "req-123"})
	if resp.StatusCode != 404 {
		t.Fatalf("status = %d, want 404", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	e := decodeEnvelope(t, body)
	if e.Error.Type != "NOT_FOUND" || e.Error.Status != 404 || e.Error.Code != "RESOURCE_NOT_FOUND" {
		t.Errorf("envelope = %+v", e.Error)
	}
	if e.Error.RequestID != "req-123" || resp.Header.Get("X-Request-ID") != "req-123" {
		t.Errorf("request id not echoed: body %q header %q", e.Error.RequestID, resp.Header.Get("X-Request-ID"))
	}
	if ts, err := time.Parse(time.RFC3339Nano, e.Error.Timestamp); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("timestamp = %q", e.Error.Timestamp)
	}
	if e.Error.Details == nil {
		t.Errorf("details must be an object, got null")
	}
}

func TestWrongMethodIs405WithAllow(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		resp, body := do(t, method, srv.URL+"/healthz", nil, nil)
		if resp.StatusCode != 405 {
			t.Fatalf("%s /healthz: status = %d, want 405", method, resp.StatusCode)
		}
		if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
			t.Errorf("Allow = %q, want \"GET, HEAD\"", got)
		}
		e := decodeEnvelope(t, body)
		if e.Error.Type != "METHOD_NOT_ALLOWED" || e.Error.Status != 405 || e.Error.Code != "METHOD_NOT_ALLOWED" {
			t.Errorf("envelope = %+v", e.Error)
		}
	}
}

func TestRequestIDIsGeneratedWhenMissingOrUnsafe(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	for _, given := range []string{"", "has space", strings.Repeat("a", 129), "evil\u00e9"} {
		resp, _ := do(t, "GET", srv.URL+"/healthz", nil, map[string]string{"X-Request-ID": given})
		got := resp.Header.Get("X-Request-ID")
		if got == "" || got == given || len(got) != 32 {
			t.Errorf("given %q: X-Request-ID = %q, want a fresh 32-hex id", given, got)
		}
	}
}

func TestHealthAndLiveness(t *testing.T) {
	t.Parallel()
	srv := newTestServer(t)
	resp, body := do(t, "GET", srv.URL+"/health", nil, nil)
	var h struct {
		Status, Timestamp, Version string
		Uptime                     *float64
	}
	if err := json.Unmarshal(body, &h); err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}
	if h.Status != "ok" || h.Version != "test" || h.Uptime == nil || h.Timestamp == "" {
		t.Errorf("health = %+v", h)
	}
	resp, body = do(t, "GET", srv.URL+"/healthz", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("healthz: %d %s", resp.StatusCode, body)
	}
}

func TestReadinessReportsEachDependency(t *testing.T) {
	t.Parallel()
	healthy := func(context.Context) error { return nil }
	broken := func(context.Context) error { return errors.New("dial tcp 10.0.0.1:5432: secret detail") }
	hanging := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

	srv := newTestServer(t, Check{"postgres", healthy}, Check{"redis", healthy})
	resp, body := do(t, "GET", srv.URL+"/readyz", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("all healthy: status %d %s", resp.StatusCode, body)
	}

	srv = newTestServer(t, Check{"postgres", broken}, Check{"redis", healthy}, Check{"kafka", hanging})
	start := time.Now()
	resp, body = do(t, "GET", srv.URL+"/readyz", nil, nil)
	if resp.StatusCode != 503 {
		t.Fatalf("broken: status %d, want 503", resp.StatusCode)
	}
	if time.Since(start) > readinessTimeout+2*time.Second {
		t.Errorf("readiness took %s with a hanging check", time.Since(start))
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	e := decodeEnvelope(t, body)
	checks, _ := e.Error.Details["checks"].(map[string]any)
	if e.Error.Type != "SERVICE_UNAVAILABLE" || checks["postgres"] != "unavailable" || checks["redis"] != "ok" || checks["kafka"] != "unavailable" {
		t.Errorf("envelope = %+v", e.Error)
	}
	if strings.Contains(string(body), "secret detail") || strings.Contains(string(body), "10.0.0.1") {
		t.Errorf("readiness leaked a cause: %s", body)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	var readErr error
	h := limitBody(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, readErr = io.ReadAll(r.Body)
		if readErr != nil {
			writeError(w, r, slog.New(slog.DiscardHandler), fixedNow, readErr)
			return
		}
		w.WriteHeader(204)
	}), 10, fixedNow)

	// Declared too long: refused before the handler reads anything.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 11))))
	if rec.Code != 413 {
		t.Fatalf("declared length: status %d, want 413", rec.Code)
	}
	if e := decodeEnvelope(t, rec.Body.Bytes()); e.Error.Type != "PAYLOAD_TOO_LARGE" {
		t.Errorf("envelope = %+v", e.Error)
	}

	// Undeclared (chunked) and too long: the read fails and maps to 413.
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader(strings.Repeat("x", 20))))
	req.ContentLength = -1
	h.ServeHTTP(rec, req)
	if rec.Code != 413 || readErr == nil {
		t.Fatalf("streamed body: status %d (read err %v), want 413", rec.Code, readErr)
	}

	// Within the limit: passes.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader("small")))
	if rec.Code != 204 {
		t.Fatalf("small body: status %d", rec.Code)
	}
}

func TestPanicBecomes500WithoutInternals(t *testing.T) {
	t.Parallel()
	h := withRequestID(recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("database password is hunter2")
	}), slog.New(slog.DiscardHandler), fixedNow))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	e := decodeEnvelope(t, rec.Body.Bytes())
	if e.Error.Type != "INTERNAL_ERROR" || e.Error.Code != "INTERNAL_SERVER_ERROR" || e.Error.RequestID == "" {
		t.Errorf("envelope = %+v", e.Error)
	}
	if strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("panic value leaked: %s", rec.Body.String())
	}
}

func TestErrorKindsMapToEnvelope(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err        error
		status     int
		typ, code  string
		hideDetail bool
	}{
		{acmecrm.Errorf(acmecrm.KindInvalid, "MALFORMED_JSON", "bad json"), 400, "VALIDATION_ERROR", "MALFORMED_JSON", false},
		{acmecrm.Errorf(acmecrm.KindUnauthorized, "TOKEN_EXPIRED", "expired"), 401, "UNAUTHORIZED", "TOKEN_EXPIRED", false},
		{acmecrm.Errorf(acmecrm.KindForbidden, "", "no"), 403, "FORBIDDEN", "INSUFFICIENT_PERMISSIONS", false},
		{acmecrm.Errorf(acmecrm.KindConflict, "VERSION_CONFLICT", "stale"), 409, "CONFLICT", "VERSION_CONFLICT", false},
		{acmecrm.Errorf(acmecrm.KindPreconditionFailed, "VERSION_CONFLICT", "stale"), 412, "PRECONDITION_FAILED", "VERSION_CONFLICT", false},
		{acmecrm.Errorf(acmecrm.KindUnsupportedMediaType, "", "json only"), 415, "UNSUPPORTED_MEDIA_TYPE", "UNSUPPORTED_MEDIA_TYPE", false},
		{acmecrm.Errorf(acmecrm.KindPreconditionRequired, "", "need version"), 428, "PRECONDITION_REQUIRED", "PRECONDITION_REQUIRED", false},
		{acmecrm.Errorf(acmecrm.KindRateLimited, "", "slow down"), 429, "RATE_LIMIT", "TOO_MANY_REQUESTS", false},
		{acmecrm.Errorf(acmecrm.KindUnavailable, "", "db down"), 503, "SERVICE_UNAVAILABLE", "SERVICE_UNAVAILABLE", false},
		{context.DeadlineExceeded, 504, "TIMEOUT_ERROR", "REQUEST_TIMEOUT", false},
		{errors.New(`pq: syntax error at or near "DROP"`), 500, "INTERNAL_ERROR", "INTERNAL_SERVER_ERROR", true},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		writeError(rec, req, slog.New(slog.DiscardHandler), fixedNow, c.err)
		e := decodeEnvelope(t, rec.Body.Bytes())
		if rec.Code != c.status || e.Error.Status != c.status || e.Error.Type != c.typ || e.Error.Code != c.code {
			t.Errorf("%v: got %d %+v, want %d %s %s", c.err, rec.Code, e.Error, c.status, c.typ, c.code)
		}
		if c.hideDetail && strings.Contains(rec.Body.String(), "DROP") {
			t.Errorf("internal error leaked: %s", rec.Body.String())
		}
	}
}

func TestValidationProblemsAreAllReported(t *testing.T) {
	t.Parallel()
	var p acmecrm.Problems
	p.Add("data.email", "must be a valid email")
	p.Add("data.first_name", "is required")
	rec := httptest.NewRecorder()
	writeError(rec, httptest.NewRequest("POST", "/", nil), slog.New(slog.DiscardHandler), fixedNow, p.Err("invalid contact"))
	e := decodeEnvelope(t, rec.Body.Bytes())
	list, _ := e.Error.Details["errors"].([]any)
	if rec.Code != 400 || e.Error.Code != "INVALID_INPUT" || len(list) != 2 {
		t.Fatalf("got %d %+v", rec.Code, e.Error)
	}
}

// A client that hangs up while its request waits is not a server error:
// the request is counted (and logged) as 499, not 500, so clients that
// cancel stale requests do not raise the 5xx alert, and the work it
// started is abandoned without changing anything.
func TestAClientThatHangsUpIsNotAServerError(t *testing.T) {
	t.Parallel()
	dbURL := infratest.DatabaseURL(t)
	b := setup(t, setupOpts{metrics: true, databaseURL: dbURL})
	id := b.create(newContact("hang-up"))["id"].(string)

	pool, err := postgres.Open(context.Background(), dbURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	lock, err := pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(context.Background()) }()
	if _, err := lock.Exec(context.Background(), `SELECT 1 FROM contacts WHERE id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}

	// The PATCH waits for the row; its client gives up.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "PATCH", b.srv.URL+"/api/contacts/"+id, strings.NewReader(`{"firstName":"Gone"}`))
	req.Header.Set("Authorization", "Bearer "+b.user)
	req.Header.Set("Content-Type", "application/merge-patch+json")
	req.Header.Set("If-Match", `"1"`)
	sent := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		sent <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the PATCH never waited for the locked row")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-sent; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v, want its own cancellation", err)
	}

	series := func(status string) string {
		return `acmecrm_http_requests_total{method="PATCH",route="PATCH /api/contacts/{id}",status="` + status + `"} 1`
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		m := string(b.call("GET", "/metrics", "", nil).body)
		if strings.Contains(m, series("500")) {
			t.Fatal("a client that hung up was counted as a server error")
		}
		if strings.Contains(m, series("499")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the abandoned PATCH was never counted as 499")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = lock.Rollback(context.Background())
	if r := b.call("GET", "/api/contacts/"+id, b.user, nil); r.status != 200 || r.data()["firstName"] != "John" || r.data()["version"] != 1.0 {
		t.Errorf("the abandoned PATCH changed the contact: %d %s", r.status, r.body)
	}
}
