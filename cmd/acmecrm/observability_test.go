package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

// postWebhook sends a webhook signed with secret (or unsigned when empty)
// and returns the status.
func postWebhook(t *testing.T, base, body, contentType, secret string, headers ...string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/api/webhooks", strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if secret != "" {
		webhook.AcmeHeaders(req.Header, time.Now(), []byte(body), []byte(secret))
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func contactWebhook(eventID, eventType, contactID, first string, at time.Time) string {
	return fmt.Sprintf(`{"event_type":%q,"event_id":%q,"timestamp":%q,"data":{"contact_id":%q,"acme_first_name":%q,"acme_last_name":"Lovelace","acme_email":"%s@example.com"}}`,
		eventType, eventID, at.UTC().Format(time.RFC3339Nano), contactID, first, contactID)
}

// recordPoison stores, as the receiver would, an event the consumer cannot
// apply (a contact without a first name): it fails every retry and is
// dead-lettered.
func recordPoison(t *testing.T, dbURL, eventID string) {
	t.Helper()
	pool, err := postgres.Open(context.Background(), dbURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ev := acmecrm.Event{EventID: eventID, EventType: acmecrm.EventContactCreated, ContactID: "crm-poison",
		OccurredAt: time.Now().UTC(), ReceivedAt: time.Now().UTC(), Source: acmecrm.SourceAcme,
		Data: acmecrm.AcmeContact{ContactID: "crm-poison", Email: "poison@example.com"}}
	if _, err := postgres.NewStore(pool, postgres.StoreOptions{}).RecordEvents(context.Background(), "contact-events",
		[]postgres.IncomingEvent{{Event: ev, RawBody: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
}

// scrape reads /metrics into metric families.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return fams
}

// value is the sample of family name whose labels include want (a
// histogram's sample count), or -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// total is the sum of a counter's series.
func total(fams map[string]*dto.MetricFamily, name string) float64 {
	var n float64
	for _, m := range fams[name].GetMetric() {
		n += m.GetCounter().GetValue()
	}
	return n
}

// secret is the test services' ACME_WEBHOOK_SECRET.
const secret = "test-webhook-secret"

// startForEvents starts a service whose failing events are dead-lettered
// after one retry, logged in as an admin.
func startForEvents(t *testing.T) (map[string]string, *service, string) {
	t.Helper()
	vars := testEnv(t)
	vars["EVENT_MAX_RETRIES"] = "1"
	s, token := startAsAdmin(t, vars)
	return vars, s, token
}

// The metrics move with real traffic: accepted, duplicate, rejected by
// reason, verified by secret, processed, dead-lettered, lags, HTTP routes,
// rate-limit decisions — and no label carries an id.
func TestMetricsFollowRealTraffic(t *testing.T) {
	t.Parallel()
	vars, s, token := startForEvents(t)
	created := contactWebhook("evt_metrics_1", "contact.created", "crm-m1", "Ada", time.Now())
	for _, c := range []struct {
		body, ctype, secret string
		want                int
	}{
		{created, "application/json", secret, 202},
		{created, "application/json", secret, 202}, // duplicate
		{created, "application/json", "wrong-secret", 401},
		{created, "application/json", "", 401},
		{created, "text/plain", secret, 415},
		{`{"event_type":"contact.created"}`, "application/json", secret, 400},
	} {
		if code := postWebhook(t, s.base, c.body, c.ctype, c.secret); code != c.want {
			t.Fatalf("webhook: %d, want %d", code, c.want)
		}
	}
	recordPoison(t, vars["DATABASE_URL"], "evt_metrics_poison")

	// Processing is asynchronous: poll until the consumer has settled both.
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(30 * time.Second)
	for {
		fams = scrape(t, s.base)
		if value(fams, "acmecrm_events_processed_total", "event_type", "contact.created", "outcome", "applied") == 1 &&
			value(fams, "acmecrm_dead_letters_total", "event_type", "contact.created") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events never processed; processed=%v dead=%v", value(fams, "acmecrm_events_processed_total", "outcome", "applied"),
				value(fams, "acmecrm_dead_letters_total"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"acmecrm_webhooks_received_total", nil, 6},
		{"acmecrm_webhooks_accepted_total", []string{"event_type", "contact.created"}, 1},
		{"acmecrm_webhooks_duplicate_total", nil, 1},
		{"acmecrm_webhooks_rejected_total", []string{"reason", "invalid_signature"}, 1},
		{"acmecrm_webhooks_rejected_total", []string{"reason", "missing_signature"}, 1},
		{"acmecrm_webhooks_rejected_total", []string{"reason", "unsupported_media_type"}, 1},
		{"acmecrm_webhooks_rejected_total", []string{"reason", "invalid_input"}, 1},
		{"acmecrm_webhook_signatures_verified_total", []string{"scheme", "acme", "secret", "current"}, 3},
		{"acmecrm_webhook_ingest_duration_seconds", nil, 2},
		{"acmecrm_http_requests_total", []string{"method", "POST", "route", "POST /api/webhooks", "status", "202"}, 2},
		{"acmecrm_http_requests_total", []string{"method", "POST", "route", "POST /api/webhooks", "status", "401"}, 2},
		{"acmecrm_outbox_published_total", []string{"topic", "contact-events"}, 2},
		{"acmecrm_outbox_backlog_rows", []string{"topic", "contact-events"}, 0},
		{"acmecrm_outbox_backlog_scrape_success", nil, 1},
		{"acmecrm_event_retries_total", []string{"event_type", "contact.created"}, 1},
		{"acmecrm_event_end_to_end_lag_seconds", nil, 1},
		{"acmecrm_event_pipeline_lag_seconds", nil, 1},
		{"acmecrm_rate_limit_decisions_total", []string{"policy", "login", "decision", "allowed", "backend", "redis"}, 1},
		{"acmecrm_rate_limit_decisions_total", []string{"policy", "webhook", "decision", "allowed", "backend", "memory"}, 6},
	} {
		if got := value(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if value(fams, "acmecrm_consumer_lag_records", "topic", "contact-events") < 0 {
		t.Error("no consumer lag series")
	}
	if value(fams, "acmecrm_kafka_produce_records_total") < 0 && value(fams, "acmecrm_kafka_connects_total") < 0 {
		t.Error("no Kafka client series")
	}
	// An authenticated request shows under its route pattern, not its path.
	authed(t, "GET", s.base+"/api/contacts/source/acmecrm/crm-m1", token, nil)
	fams = scrape(t, s.base)
	if value(fams, "acmecrm_http_requests_total", "route", "GET /api/contacts/source/{source}/{sourceId}", "status", "200") != 1 {
		t.Error("the contact lookup is not counted under its route pattern")
	}
	// The alert rules and the dashboard use only series the service exports.
	for _, file := range []string{"../../deploy/prometheus-alerts.yml", "../../deploy/grafana-dashboard.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		names := regexp.MustCompile(`acmecrm_[a-z_]+`).FindAllString(string(b), -1)
		if len(names) < 10 {
			t.Errorf("%s: only %d series referenced", file, len(names))
		}
		for _, n := range names {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
			if _, ok := fams[base]; !ok {
				t.Errorf("%s uses %s, which /metrics does not export", file, n)
			}
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "evt_") || strings.Contains(v, "crm-") || strings.Contains(v, "@") {
					t.Errorf("%s has an unbounded label value %s=%q", name, l.GetName(), v)
				}
			}
		}
	}
}

// The event-tracking API reads durable state: after a restart it reports
// what happened before it.
func TestEventMetricsSurviveARestart(t *testing.T) {
	t.Parallel()
	vars, s, token := startForEvents(t)
	at := time.Now().Add(-time.Minute)
	for i, b := range []string{
		contactWebhook("evt_em_1", "contact.created", "crm-e1", "Ada", at),
		contactWebhook("evt_em_2", "contact.updated", "crm-e1", "Ada Augusta", at.Add(time.Second)),
		contactWebhook("evt_em_3", "contact.archived", "crm-e1", "Ada", at.Add(2*time.Second)), // unknown type: ignored
	} {
		if code := postWebhook(t, s.base, b, "application/json", secret); code != 202 {
			t.Fatalf("webhook %d: %d", i, code)
		}
	}
	recordPoison(t, vars["DATABASE_URL"], "evt_em_poison")

	settled := func(m map[string]any) bool {
		totals, _ := m["totals"].(map[string]any)
		return totals["succeeded"] == 2.0 && totals["failed"] == 1.0
	}
	var before map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := authed(t, "GET", s.base+"/api/metrics/events", token, nil)
		if code != 200 {
			t.Fatalf("events metrics: %d %v", code, body)
		}
		before = body["data"].(map[string]any)
		if settled(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never settled: %v", before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	totals := before["totals"].(map[string]any)
	if totals["received"] != 4.0 || totals["processed"] != 3.0 || totals["ignored"] != 1.0 || totals["pending"] != 0.0 {
		t.Errorf("totals: %v", totals)
	}
	byType := before["byEventType"].(map[string]any)
	if c := byType["contact.created"].(map[string]any); c["succeeded"] != 1.0 || c["failed"] != 1.0 {
		t.Errorf("contact.created: %v", c)
	}
	if c := byType["contact.updated"].(map[string]any); c["succeeded"] != 1.0 || c["failed"] != 0.0 {
		t.Errorf("contact.updated: %v", c)
	}
	errs := before["recentErrors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["eventId"] != "evt_em_poison" || errs[0].(map[string]any)["error"] == "" {
		t.Errorf("recent errors: %v", errs)
	}
	if before["lastProcessedAt"] == nil {
		t.Error("no lastProcessedAt")
	}
	if b := before["backlog"].(map[string]any); b["outboxRows"] != 0.0 || b["deadLetters"] != 1.0 || b["unprocessed"] != 0.0 {
		t.Errorf("backlog: %v", b)
	}

	// Unauthenticated: refused.
	if code, _, _ := get(t, s.base+"/api/metrics/events"); code != 401 {
		t.Errorf("without a token: %d", code)
	}

	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s = startService(t, vars, "serve")
	_, token = login(t, s.base, "ops@example.com", "ops-password-1")
	_, body := authed(t, "GET", s.base+"/api/metrics/events", token, nil)
	after := body["data"].(map[string]any)
	for _, k := range []string{"totals", "byEventType", "recentErrors", "lastProcessedAt", "lastReceivedAt"} {
		if fmt.Sprint(after[k]) != fmt.Sprint(before[k]) {
			t.Errorf("%s after the restart: %v, before: %v", k, after[k], before[k])
		}
	}
}
