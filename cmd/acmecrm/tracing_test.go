package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP traces endpoint that keeps what it receives.
type collector struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write([]byte{})
}

// trace returns the spans of one trace, by span id.
func (c *collector) trace(traceID []byte) map[string]*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]*tracepb.Span{}
	for _, s := range c.spans {
		if string(s.GetTraceId()) == string(traceID) {
			out[string(s.GetSpanId())] = s
		}
	}
	return out
}

// One trace runs from the caller's request through the receiver, the
// outbox row, the Kafka record and the consumer's transaction, exported
// over OTLP to a collector.
func TestTraceCrossesTheOutboxAndKafka(t *testing.T) {
	t.Parallel()
	col := &collector{}
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close)
	vars := testEnv(t)
	vars["OTEL_EXPORTER_OTLP_ENDPOINT"] = srv.URL
	vars["OTEL_BSP_SCHEDULE_DELAY"] = "50"
	s := startService(t, vars, "serve")

	traceID, _ := hex.DecodeString("4bf92f3577b34da6a3ce929d0e0e4736")
	callerSpan, _ := hex.DecodeString("00f067aa0ba902b7")
	body := contactWebhook("evt_traced", "contact.created", "crm-traced", "Tracy", time.Now())
	if code := postWebhook(t, s.base, body, "application/json", "test-webhook-secret",
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"); code != 202 {
		t.Fatalf("webhook: %d", code)
	}

	// Wait for the consumer's span of this trace, then walk its parents up
	// to the caller's span.
	var process *tracepb.Span
	var spans map[string]*tracepb.Span
	deadline := time.Now().Add(30 * time.Second)
	for process == nil {
		spans = col.trace(traceID)
		for _, sp := range spans {
			if sp.GetName() == "contact-events process" {
				process = sp
			}
		}
		if time.Now().After(deadline) {
			names := []string{}
			for _, sp := range spans {
				names = append(names, sp.GetName())
			}
			t.Fatalf("no consumer span in the trace; spans: %v", names)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var chain []string
	for sp := process; ; {
		chain = append(chain, sp.GetName())
		parent := string(sp.GetParentSpanId())
		if parent == string(callerSpan) {
			break
		}
		next, ok := spans[parent]
		if !ok {
			t.Fatalf("the chain breaks after %v (parent %x not in the trace)", chain, parent)
		}
		sp = next
	}
	want := []string{"contact-events process", "contact-events receive", "contact-events publish", "webhook ingest", "POST /api/webhooks"}
	if len(chain) != len(want) {
		t.Fatalf("span chain %v, want %v", chain, want)
	}
	for i := range want {
		if chain[i] != want[i] {
			t.Fatalf("span chain %v, want %v", chain, want)
		}
	}
	attrs := map[string]string{}
	for _, a := range process.GetAttributes() {
		attrs[a.GetKey()] = a.GetValue().GetStringValue()
	}
	if attrs["acmecrm.event.id"] != "evt_traced" || attrs["acmecrm.event.outcome"] != "applied" {
		t.Errorf("process span attributes: %v", attrs)
	}
}
