package httpapi

import (
	"encoding/base64"
	"encoding/binary"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/ingest"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/telemetry"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

// keptHeaders are the request headers stored with a webhook, for audit.
var keptHeaders = []string{
	"Content-Type", "User-Agent", "X-Request-ID",
	webhook.HeaderAcmeTimestamp, webhook.HeaderAcmeSignature,
	webhook.HeaderID, webhook.HeaderTimestamp, webhook.HeaderSignature,
}

// handleWebhook is POST /api/webhooks (SPEC §3): content type → body size →
// signature → payload, then the event is committed (coalesced with
// concurrent ones) before 202 is sent. Bodies and secrets are never logged.
func handleWebhook(v *webhook.Verifier, p *webhook.Parser, b *ingest.Batcher, m *telemetry.Metrics, tracer trace.Tracer,
	logger *slog.Logger, now func() time.Time) http.Handler {
	type accepted struct {
		Message   string `json:"message"`
		EventID   string `json:"eventId"`
		Status    string `json:"status"`
		Timestamp string `json:"timestamp"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readJSONBody(r)
		if err != nil && acmecrm.ErrorKind(err) == acmecrm.KindInvalid {
			body, err = []byte{}, nil // an empty body is judged by its signature first
		}
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		verified, err := v.Verify(r.Header, body)
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		m.WebhookVerified(verified.Scheme, verified.SecretID)
		received := now()
		ev, err := p.Parse(body, received)
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		headers := make(map[string]string, len(keptHeaders))
		for _, h := range keptHeaders {
			if val := r.Header.Get(h); val != "" {
				headers[h] = val
			}
		}
		// The ingest span's context is stored with the outbox row: the
		// trace goes on through the relay, Kafka and the consumer.
		ctx, span := tracer.Start(r.Context(), "webhook ingest", trace.WithAttributes(
			attribute.String("acmecrm.event.id", ev.EventID), attribute.String("acmecrm.event.type", ev.EventType)))
		start := time.Now()
		outcome, err := b.Record(ctx, postgres.IncomingEvent{
			Event: ev, Scheme: verified.Scheme, SecretID: verified.SecretID, Headers: headers, RawBody: body,
			TraceParent: telemetry.Inject(ctx)["traceparent"],
		})
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			span.End()
			writeError(w, r, logger, now, err)
			return
		}
		span.SetAttributes(attribute.String("acmecrm.webhook.outcome", outcome))
		span.End()
		m.WebhookStored(outcome, ev.EventType, time.Since(start))
		encode(w, http.StatusAccepted, accepted{
			Message: "Webhook accepted", EventID: ev.EventID, Status: outcome,
			Timestamp: received.UTC().Format(time.RFC3339Nano),
		})
	})
}

// countWebhooks counts every request to the receiver and each refusal by
// its error code — including those answered before the handler runs
// (body too large, rate limited).
func countWebhooks(next http.Handler, m *telemetry.Metrics) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.WebhookReceived()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status >= 400 {
			code := "unknown"
			if rt, ok := r.Context().Value(routeKey).(*route); ok && rt.errCode != "" {
				code = rt.errCode
			}
			m.WebhookRejected(code)
		}
	})
}

// eventJSON is one stored webhook in the audit API.
type eventJSON struct {
	postgres.WebhookEvent
	History []historyJSON `json:"history"`
	// RawBody is the body byte-exact: as text when it is UTF-8, else base64
	// (RawBodyEncoding tells which).
	RawBody         *string `json:"rawBody,omitempty"`
	RawBodyEncoding string  `json:"rawBodyEncoding,omitempty"`
	// ProcessingMs is received → processed, once processed.
	ProcessingMs *float64 `json:"processingMs"`
}

type historyJSON struct {
	Status string    `json:"status"`
	At     time.Time `json:"at"`
}

func toEventJSON(e postgres.WebhookEvent, withBody bool) eventJSON {
	out := eventJSON{WebhookEvent: e, History: []historyJSON{{"received", e.ReceivedAt}}}
	add := func(status string, at *time.Time) {
		if at != nil {
			out.History = append(out.History, historyJSON{status, *at})
		}
	}
	add("published", e.PublishedAt)
	add("failed", e.FailedAt)
	add("processed", e.ProcessedAt)
	add("dead", e.DeadAt)
	if e.Status == "ignored" {
		out.History = append(out.History, historyJSON{"ignored", e.ReceivedAt})
	}
	if e.ProcessedAt != nil {
		ms := float64(e.ProcessedAt.Sub(e.ReceivedAt).Microseconds()) / 1000
		out.ProcessingMs = &ms
	}
	if withBody {
		s, enc := string(e.RawBody), "utf-8"
		if !utf8.Valid(e.RawBody) {
			s, enc = base64.StdEncoding.EncodeToString(e.RawBody), "base64"
		}
		out.RawBody, out.RawBodyEncoding = &s, enc
	}
	return out
}

// cursors are opaque to clients: the internal id, encoded.
func encodeCursor(id int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(id))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeCursor(s string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

// defaultTypeWindow is how many stored webhooks (by id) one page of the
// audit list filtered by type looks at unless Options say otherwise.
const defaultTypeWindow = 100_000

// cursorParam reads the cursor query parameter (0 when absent); one this
// API did not return is a problem.
func cursorParam(q url.Values, p *acmecrm.Problems) int64 {
	c := q.Get("cursor")
	if c == "" {
		return 0
	}
	id, ok := decodeCursor(c)
	if !ok || id < 1 {
		p.Add("cursor", "is not a cursor this API returned")
	}
	return id
}

var webhookStatuses = map[string]bool{"received": true, "published": true, "processed": true, "failed": true, "dead": true, "ignored": true}

// handleListWebhooks is the event audit list (GET /api/webhooks and, with
// pending, GET /api/webhooks/pending).
func handleListWebhooks(store *postgres.Store, pending bool, typeWindow int64, logger *slog.Logger, now func() time.Time) http.Handler {
	if typeWindow <= 0 {
		typeWindow = defaultTypeWindow
	}
	type page struct {
		Data       []eventJSON `json:"data"`
		NextCursor *string     `json:"nextCursor"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var p acmecrm.Problems
		wq := postgres.WebhookQuery{Status: q.Get("status"), Type: q.Get("type"), ContactID: q.Get("contactId"), Pending: pending, Limit: 50}
		if wq.Status != "" && !webhookStatuses[wq.Status] {
			p.Add("status", "must be one of received, published, processed, failed, dead, ignored")
		}
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 500 {
				p.Add("limit", "must be a whole number from 1 to 500")
			}
			wq.Limit = n
		}
		wq.Before = cursorParam(q, &p)
		if utf8.RuneCountInString(wq.Type) > 100 {
			p.Add("type", "must be at most 100 characters")
		}
		if utf8.RuneCountInString(wq.ContactID) > 255 {
			p.Add("contactId", "must be at most 255 characters")
		}
		if err := p.Err("invalid query parameters"); err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		if wq.Type != "" && wq.ContactID == "" {
			// No index serves the event type: each page looks at a
			// bounded stretch of the log (DECISIONS #94).
			wq.Window = typeWindow
		}
		evs, next, err := store.WebhookEvents(r.Context(), wq)
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		out := page{Data: make([]eventJSON, len(evs))}
		for i, e := range evs {
			out.Data[i] = toEventJSON(e, false)
		}
		if next != 0 {
			c := encodeCursor(next)
			out.NextCursor = &c
		}
		encode(w, http.StatusOK, out)
	})
}

// handleGetWebhook is one stored webhook with its raw body and history.
func handleGetWebhook(store *postgres.Store, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := store.WebhookEvent(r.Context(), r.PathValue("eventId"))
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		encode(w, http.StatusOK, map[string]any{"data": toEventJSON(e, true)})
	})
}
