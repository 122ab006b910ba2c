package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Lines logged with a context carry its request id and trace ids; lines
// without one carry none.
func TestLogHandlerAddsRequestAndTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(NewLogHandler(NewLogHandler(slog.NewJSONHandler(&buf, nil)))) // wrapping twice adds once
	tr := NewTracingWith(tracetest.NewInMemoryExporter(), TracingConfig{SampleRatio: 1})
	defer func() { _ = tr.Shutdown(context.Background()) }()
	ctx, span := tr.Tracer("test").Start(WithRequestID(context.Background(), "req-1"), "op")
	defer span.End()

	logger.InfoContext(ctx, "with")
	logger.With("k", "v").InfoContext(ctx, "derived")
	logger.Info("without")
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			if m["request_id"] != nil || m["trace_id"] != nil {
				t.Errorf("a line without a context got ids: %s", line)
			}
			continue
		}
		if m["request_id"] != "req-1" || m["trace_id"] != span.SpanContext().TraceID().String() ||
			m["span_id"] != span.SpanContext().SpanID().String() || bytes.Count(line, []byte(`"request_id"`)) != 1 {
			t.Errorf("line %d: %s", i, line)
		}
	}
}

// Inject and Extract carry a trace through a header map (an outbox row).
func TestTraceContextRoundTrip(t *testing.T) {
	if Inject(context.Background()) != nil {
		t.Error("a context without a span injected headers")
	}
	tr := NewTracingWith(tracetest.NewInMemoryExporter(), TracingConfig{SampleRatio: 1, BatchDelay: time.Millisecond})
	defer func() { _ = tr.Shutdown(context.Background()) }()
	ctx, span := tr.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	h := Inject(ctx)
	_, child := tr.Tracer("test").Start(Extract(context.Background(), h), "child")
	defer child.End()
	if child.SpanContext().TraceID() != span.SpanContext().TraceID() {
		t.Errorf("extracted trace %s, want %s (headers %v)", child.SpanContext().TraceID(), span.SpanContext().TraceID(), h)
	}
}

// Label values stay bounded whatever comes in.
func TestLabelsAreBounded(t *testing.T) {
	for in, want := range map[string]string{"contact.created": "contact.created", "contact.archived": "other", "x'; DROP TABLE": "other"} {
		if got := EventTypeLabel(in); got != want {
			t.Errorf("EventTypeLabel(%q) = %q", in, got)
		}
	}
	if methodLabel("BREW") != "OTHER" || methodLabel("GET") != "GET" {
		t.Error("methodLabel")
	}
	var m *Metrics // nil records nothing and does not panic
	m.WebhookReceived()
	m.HTTPRequest("GET", "x", 200, time.Millisecond)
	m.HTTPStarted()()
}
