package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"github.com/twmb/franz-go/plugin/kprom"
)

// KafkaHooks instrument one franz-go client: kprom's client metrics
// (labelled client=name; each client of the process has its own name) and,
// when tracing is on, kotel's publish / receive spans with the traceparent
// record header.
func KafkaHooks(m *Metrics, t *Tracing, name string) []kgo.Hook {
	var hooks []kgo.Hook
	if m != nil {
		hooks = append(hooks, kprom.NewMetrics(namespace,
			kprom.Subsystem("kafka"),
			kprom.Registerer(m.reg), kprom.Gatherer(m.reg),
			kprom.WithStaticLabel(prometheus.Labels{"client": name}),
			kprom.Histograms(kprom.RequestDurationE2E),
		))
	}
	if kt := KafkaTracer(t); kt != nil {
		hooks = append(hooks, kt)
	}
	return hooks
}

// KafkaTracer is kotel's tracer on t's provider, or nil when tracing is off.
func KafkaTracer(t *Tracing) *kotel.Tracer {
	if t == nil || !t.Enabled {
		return nil
	}
	return kotel.NewTracer(kotel.TracerProvider(t.Provider), kotel.TracerPropagator(t.Propagator))
}
