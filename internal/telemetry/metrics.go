// Package telemetry owns what the service tells its operators about itself:
// the Prometheus metrics (SPEC §9), OpenTelemetry tracing, and the log
// handler that puts trace and request ids on every line. Every other
// package reports through a *Metrics and a trace.TracerProvider passed in;
// a nil *Metrics records nothing.
package telemetry

import (
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "acmecrm"

// Bucket sets, each suited to one kind of latency.
var (
	// requestBuckets: HTTP handlers and commits, sub-millisecond to seconds.
	requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// lagBuckets: an event's way through the pipeline, which includes
	// batching, Kafka and retries.
	lagBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}
	// sizeBuckets: rows per batch.
	sizeBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

// Metrics are the service's Prometheus series, on a registry of their own
// (no global state: tests run several services in one process).
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	httpInFlight prometheus.Gauge

	webhooksReceived  prometheus.Counter
	webhooksAccepted  *prometheus.CounterVec
	webhooksDuplicate prometheus.Counter
	webhooksRejected  *prometheus.CounterVec
	signatures        *prometheus.CounterVec
	ingestDuration    prometheus.Histogram
	ingestBatch       prometheus.Histogram

	outboxPublished       *prometheus.CounterVec
	outboxFailures        prometheus.Counter
	outboxPublishDuration prometheus.Histogram

	consumerLag     *prometheus.GaugeVec
	eventsProcessed *prometheus.CounterVec
	eventDuration   *prometheus.HistogramVec
	eventRetries    *prometheus.CounterVec
	deadLetters     *prometheus.CounterVec
	endToEndLag     prometheus.Histogram
	pipelineLag     prometheus.Histogram

	rateLimit         *prometheus.CounterVec
	simulatorAttempts *prometheus.CounterVec
	pruned            *prometheus.CounterVec
	pruneFailures     prometheus.Counter
}

// NewMetrics creates the service's metrics on a new registry, with the Go
// runtime and process collectors and a build-info series.
func NewMetrics(version string) *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "Always 1; the labels say which build is running."}, []string{"version", "goversion"})
	info.WithLabelValues(version, runtime.Version()).Set(1)
	f(info)

	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
		f(c)
		return c
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
		f(h)
		return h
	}
	m := &Metrics{reg: reg}
	m.httpRequests = counter("http_requests_total", "HTTP requests answered, by method, route pattern and status code.", "method", "route", "status")
	m.httpDuration = histogram("http_request_duration_seconds", "HTTP request latency, by method and route pattern.", requestBuckets, "method", "route")
	m.httpInFlight = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "http_requests_in_flight", Help: "HTTP requests being served."})
	f(m.httpInFlight)

	m.webhooksReceived = counter("webhooks_received_total", "Requests to the webhook receiver, whatever their outcome.").WithLabelValues()
	m.webhooksAccepted = counter("webhooks_accepted_total", "Webhooks stored as new events, by event type (unknown types are stored as ignored: event_type=\"other\").", "event_type")
	m.webhooksDuplicate = counter("webhooks_duplicate_total", "Webhooks answered 202 duplicate: the event id was already stored.").WithLabelValues()
	m.webhooksRejected = counter("webhooks_rejected_total", "Webhooks refused, by reason (the error envelope's code, lower case).", "reason")
	m.signatures = counter("webhook_signatures_verified_total", "Webhook signatures that verified, by scheme and by the secret that matched (current, previous-1, …).", "scheme", "secret")
	m.ingestDuration = histogram("webhook_ingest_duration_seconds", "Time from a verified webhook to its committed row (waiting for the shared commit included).", requestBuckets).WithLabelValues().(prometheus.Histogram)
	m.ingestBatch = histogram("ingest_batch_rows", "Webhooks written per ingest commit (concurrent webhooks share commits).", sizeBuckets).WithLabelValues().(prometheus.Histogram)

	m.outboxPublished = counter("outbox_published_total", "Outbox rows published to Kafka, by topic.", "topic")
	m.outboxFailures = counter("outbox_publish_failures_total", "Outbox batches that could not be published (the rows stay queued).").WithLabelValues()
	m.outboxPublishDuration = histogram("outbox_publish_duration_seconds", "Time to claim, produce (acks=all) and delete one outbox batch.", requestBuckets).WithLabelValues().(prometheus.Histogram)

	m.consumerLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "consumer_lag_records",
		Help: "Records in a partition not yet consumed by this process (high watermark − next offset), as of its last fetch."}, []string{"topic", "partition"})
	f(m.consumerLag)
	m.eventsProcessed = counter("events_processed_total", "Contact events settled by the consumer, by event type and outcome (applied, duplicate, dead_lettered).", "event_type", "outcome")
	m.eventDuration = histogram("event_processing_duration_seconds", "Time to apply an event: its database transaction (shared with the rest of its partition's fetch), by event type.", requestBuckets, "event_type")
	m.eventRetries = counter("event_retries_total", "Failed attempts to apply an event that will be retried, by event type.", "event_type")
	m.deadLetters = counter("dead_letters_total", "Events sent to the dead-letter topic after their retries, by event type.", "event_type")
	m.endToEndLag = histogram("event_end_to_end_lag_seconds", "Event timestamp (the CRM's) → contact committed.", lagBuckets).WithLabelValues().(prometheus.Histogram)
	m.pipelineLag = histogram("event_pipeline_lag_seconds", "Webhook received → contact committed.", lagBuckets).WithLabelValues().(prometheus.Histogram)

	m.rateLimit = counter("rate_limit_decisions_total", "Rate-limit decisions, by policy, decision (allowed, limited) and backend (redis, memory).", "policy", "decision", "backend")
	m.simulatorAttempts = counter("simulator_delivery_attempts_total", "Simulator delivery attempts, by result (delivered, retry, failed).", "result")
	m.pruned = counter("retention_pruned_total", "Rows deleted for being older than EVENT_RETENTION, by kind (webhooks, dead_letters, simulator_deliveries).", "kind")
	m.pruneFailures = counter("retention_failures_total", "Retention passes that failed (tried again at the next interval).").WithLabelValues()
	return m
}

// Registerer is where other collectors (the Kafka client's, the backlog)
// are added.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// methodLabel keeps the method label bounded.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return "OTHER"
}

// EventTypeLabel keeps the event_type label bounded: the known types, else
// "other".
func EventTypeLabel(t string) string {
	switch t {
	case "contact.created", "contact.updated", "contact.deleted":
		return t
	}
	return "other"
}

// HTTPStarted counts a request in flight; call the returned func when it
// is answered.
func (m *Metrics) HTTPStarted() func() {
	if m == nil {
		return func() {}
	}
	m.httpInFlight.Inc()
	return m.httpInFlight.Dec
}

// HTTPRequest records one answered request; route is the matched pattern
// (never a raw path).
func (m *Metrics) HTTPRequest(method, route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	method = methodLabel(method)
	m.httpRequests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(method, route).Observe(d.Seconds())
}

// WebhookReceived counts a request to the receiver.
func (m *Metrics) WebhookReceived() {
	if m != nil {
		m.webhooksReceived.Inc()
	}
}

// WebhookRejected counts a refused webhook by its error code.
func (m *Metrics) WebhookRejected(code string) {
	if m != nil {
		m.webhooksRejected.WithLabelValues(strings.ToLower(code)).Inc()
	}
}

// WebhookVerified counts a valid signature by scheme and secret.
func (m *Metrics) WebhookVerified(scheme, secretID string) {
	if m != nil {
		m.signatures.WithLabelValues(scheme, secretID).Inc()
	}
}

// WebhookStored records a committed webhook: its outcome (accepted,
// duplicate, ignored), event type and how long the commit took.
func (m *Metrics) WebhookStored(outcome, eventType string, d time.Duration) {
	if m == nil {
		return
	}
	m.ingestDuration.Observe(d.Seconds())
	if outcome == "duplicate" {
		m.webhooksDuplicate.Inc()
		return
	}
	m.webhooksAccepted.WithLabelValues(EventTypeLabel(eventType)).Inc()
}

// IngestBatch records the rows of one ingest commit.
func (m *Metrics) IngestBatch(rows int) {
	if m != nil {
		m.ingestBatch.Observe(float64(rows))
	}
}

// OutboxPublished records one published batch.
func (m *Metrics) OutboxPublished(byTopic map[string]int, d time.Duration) {
	if m == nil {
		return
	}
	for topic, n := range byTopic {
		m.outboxPublished.WithLabelValues(topic).Add(float64(n))
	}
	m.outboxPublishDuration.Observe(d.Seconds())
}

// OutboxFailed counts a batch that could not be published.
func (m *Metrics) OutboxFailed() {
	if m != nil {
		m.outboxFailures.Inc()
	}
}

// ConsumerLag sets a partition's lag in records.
func (m *Metrics) ConsumerLag(topic string, partition int32, lag int64) {
	if m != nil {
		m.consumerLag.WithLabelValues(topic, strconv.Itoa(int(partition))).Set(float64(max(lag, 0)))
	}
}

// ConsumerPartitionsLost forgets the lag of partitions this process no
// longer consumes.
func (m *Metrics) ConsumerPartitionsLost(lost map[string][]int32) {
	if m == nil {
		return
	}
	for topic, ps := range lost {
		for _, p := range ps {
			m.consumerLag.DeleteLabelValues(topic, strconv.Itoa(int(p)))
		}
	}
}

// EventApplied records an event settled by the consumer: outcome applied
// or duplicate, the transaction's duration, and — for applied events — the
// lags from the event's timestamp and from its reception to committed.
func (m *Metrics) EventApplied(eventType, outcome string, tx time.Duration, occurredAt, receivedAt, committed time.Time) {
	if m == nil {
		return
	}
	t := EventTypeLabel(eventType)
	m.eventsProcessed.WithLabelValues(t, outcome).Inc()
	m.eventDuration.WithLabelValues(t).Observe(tx.Seconds())
	if outcome != "applied" {
		return
	}
	if !occurredAt.IsZero() {
		m.endToEndLag.Observe(max(committed.Sub(occurredAt), 0).Seconds())
	}
	if !receivedAt.IsZero() {
		m.pipelineLag.Observe(max(committed.Sub(receivedAt), 0).Seconds())
	}
}

// EventRetry counts a failed attempt that will be retried.
func (m *Metrics) EventRetry(eventType string) {
	if m != nil {
		m.eventRetries.WithLabelValues(EventTypeLabel(eventType)).Inc()
	}
}

// EventDeadLettered counts an event sent to the dead-letter topic.
func (m *Metrics) EventDeadLettered(eventType string) {
	if m == nil {
		return
	}
	t := EventTypeLabel(eventType)
	m.deadLetters.WithLabelValues(t).Inc()
	m.eventsProcessed.WithLabelValues(t, "dead_lettered").Inc()
}

// RateLimit records one rate-limit decision; fallback means the in-memory
// limiter decided (Redis failed, or a limiter that is in memory by design).
func (m *Metrics) RateLimit(policy string, allowed, fallback bool) {
	if m == nil {
		return
	}
	decision, backend := "allowed", "redis"
	if !allowed {
		decision = "limited"
	}
	if fallback {
		backend = "memory"
	}
	m.rateLimit.WithLabelValues(policy, decision, backend).Inc()
}

// SimulatorAttempt records a simulator delivery attempt's result.
func (m *Metrics) SimulatorAttempt(result string) {
	if m != nil {
		m.simulatorAttempts.WithLabelValues(result).Inc()
	}
}

// Pruned counts rows the retention deleted, by kind.
func (m *Metrics) Pruned(kind string, n int) {
	if m != nil && n > 0 {
		m.pruned.WithLabelValues(kind).Add(float64(n))
	}
}

// PruneFailed counts a retention pass that failed.
func (m *Metrics) PruneFailed() {
	if m != nil {
		m.pruneFailures.Inc()
	}
}
