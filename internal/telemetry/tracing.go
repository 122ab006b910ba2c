package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracingConfig says where spans go. Tracing is off unless TracesURL is
// set.
type TracingConfig struct {
	// TracesURL is the OTLP/HTTP traces endpoint, path included
	// (OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces", or
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given).
	TracesURL   string
	Headers     map[string]string
	ServiceName string
	Version     string
	// SampleRatio is the share of new traces kept (parent-based: a caller's
	// sampled traceparent is always followed).
	SampleRatio float64
	// BatchDelay is how long spans wait to be exported together.
	BatchDelay time.Duration
}

// Tracing is the tracer provider and the propagator every package uses.
type Tracing struct {
	Provider   trace.TracerProvider
	Propagator propagation.TextMapPropagator
	// Enabled is false when spans go nowhere (the no-op provider).
	Enabled  bool
	shutdown func(context.Context) error
}

// Propagator is W3C trace context and baggage: the traceparent header of
// HTTP requests, outbox rows and Kafka records.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Disabled is tracing that records nothing.
func Disabled() *Tracing {
	return &Tracing{Provider: noop.NewTracerProvider(), Propagator: Propagator, shutdown: func(context.Context) error { return nil }}
}

// NewTracing starts exporting spans over OTLP/HTTP when cfg asks for it.
func NewTracing(ctx context.Context, cfg TracingConfig) (*Tracing, error) {
	if cfg.TracesURL == "" {
		return Disabled(), nil
	}
	u, err := url.Parse(cfg.TracesURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing: invalid OTLP endpoint %q", cfg.TracesURL)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.TracesURL)}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return NewTracingWith(exp, cfg), nil
}

// NewTracingWith exports spans to exp (tests use an in-memory exporter).
func NewTracingWith(exp sdktrace.SpanExporter, cfg TracingConfig) *Tracing {
	if cfg.ServiceName == "" {
		cfg.ServiceName = "acmecrm"
	}
	if cfg.BatchDelay <= 0 {
		cfg.BatchDelay = 5 * time.Second
	}
	ratio := cfg.SampleRatio
	if ratio < 0 || ratio > 1 {
		ratio = 1
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(cfg.Version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(cfg.BatchDelay)),
	)
	return &Tracing{Provider: tp, Propagator: Propagator, Enabled: true, shutdown: tp.Shutdown}
}

// Shutdown flushes the spans still buffered.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// Tracer is the instrumentation scope of one of our packages.
func (t *Tracing) Tracer(name string) trace.Tracer {
	if t == nil {
		return noop.NewTracerProvider().Tracer(name)
	}
	return t.Provider.Tracer("github.com/acmecrm/acmecrm/" + name)
}

// Inject returns the trace context of ctx as headers (traceparent,
// tracestate), to be stored with an outbox row; nil when ctx has none.
func Inject(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	c := propagation.MapCarrier{}
	Propagator.Inject(ctx, c)
	return c
}

// Extract returns ctx carrying the trace context stored in headers.
func Extract(ctx context.Context, headers map[string]string) context.Context {
	if headers["traceparent"] == "" {
		return ctx
	}
	return Propagator.Extract(ctx, propagation.MapCarrier(headers))
}
