package consumer_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/consumer"
	"github.com/acmecrm/acmecrm/internal/kafka"
	"github.com/acmecrm/acmecrm/internal/outbox"
	"github.com/acmecrm/acmecrm/internal/telemetry"
)

// The trace context stored with an outbox row continues through the
// relay's publish, the Kafka record's traceparent header and the
// consumer's transaction: one connected chain of spans.
func TestTraceContinuesAcrossTheKafkaHop(t *testing.T) {
	t.Parallel()
	p := newPipeline(t)
	exp := tracetest.NewInMemoryExporter()
	tracing := telemetry.NewTracingWith(exp, telemetry.TracingConfig{SampleRatio: 1, BatchDelay: 10 * time.Millisecond})
	t.Cleanup(func() { _ = tracing.Shutdown(context.Background()) })

	// The "request" that stores the event.
	ctx, root := tracing.Tracer("test").Start(context.Background(), "webhook request")
	ev := event("e_traced", acmecrm.EventContactCreated, "c-traced", time.Now().UTC(), "Tracy")
	ev.TraceParent = telemetry.Inject(ctx)["traceparent"]
	p.record(ev)
	root.End()

	cl, err := kafka.NewClient(p.cfg, kgo.WithHooks(telemetry.KafkaHooks(nil, tracing, "producer")...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	run(t, outbox.New(p.store, cl, slog.New(slog.DiscardHandler), outbox.Options{Poll: 50 * time.Millisecond}).Run)
	c, err := consumer.New(p.cfg, p.store, slog.New(slog.DiscardHandler), consumer.Options{
		Group: "g", Topic: eventsTopic, DLQTopic: dlqTopic, Tracing: tracing})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c.Run)
	p.eventually("the contact", func() bool { _, ok := p.contact("c-traced"); return ok })

	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var process sdktrace.ReadOnlySpan
	p.eventually("the process span exported", func() bool {
		_ = tracing.Provider.(*sdktrace.TracerProvider).ForceFlush(context.Background())
		for _, s := range exp.GetSpans().Snapshots() {
			byID[s.SpanContext().SpanID()] = s
			if s.Name() == "contact-events process" {
				process = s
			}
		}
		return process != nil
	})
	var chain []string
	for s := process; ; {
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Fatalf("span %q is in trace %s, not the request's %s", s.Name(), s.SpanContext().TraceID(), root.SpanContext().TraceID())
		}
		chain = append(chain, s.Name())
		if s.Parent().SpanID() == root.SpanContext().SpanID() {
			break
		}
		next, ok := byID[s.Parent().SpanID()]
		if !ok {
			t.Fatalf("the chain breaks after %v", chain)
		}
		s = next
	}
	if want := []string{"contact-events process", "contact-events receive", "contact-events publish"}; len(chain) != 3 ||
		chain[0] != want[0] || chain[1] != want[1] || chain[2] != want[2] {
		t.Fatalf("chain %v, want %v", chain, want)
	}
	if process.SpanKind() != trace.SpanKindConsumer || process.EndTime().IsZero() {
		t.Errorf("process span: kind %v, ended %v", process.SpanKind(), process.EndTime())
	}
}
