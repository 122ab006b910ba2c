package telemetry

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Backlog is one topic's unpublished outbox rows.
type Backlog struct {
	Topic     string
	Rows      int
	OldestAge time.Duration
}

// backlogCollector reads the outbox backlog from the database at scrape
// time: it is durable state, shared by every relay, so each instance
// reports the same truth.
type backlogCollector struct {
	read   func(context.Context) ([]Backlog, error)
	topics []string
	rows   *prometheus.Desc
	age    *prometheus.Desc
	up     *prometheus.Desc
}

// WatchOutbox adds the outbox backlog gauges, read by read at each scrape
// (bounded by a 2 s timeout); topics are always reported, 0 when empty.
func (m *Metrics) WatchOutbox(read func(context.Context) ([]Backlog, error), topics ...string) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&backlogCollector{
		read: read, topics: topics,
		rows: prometheus.NewDesc(namespace+"_outbox_backlog_rows", "Outbox rows not yet published to Kafka, by topic.", []string{"topic"}, nil),
		age: prometheus.NewDesc(namespace+"_outbox_oldest_age_seconds",
			"Age of the oldest unpublished outbox row, by topic (0 when none).", []string{"topic"}, nil),
		up: prometheus.NewDesc(namespace+"_outbox_backlog_scrape_success",
			"1 if the outbox backlog could be read at this scrape, else 0.", nil, nil),
	})
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.rows
	ch <- c.age
	ch <- c.up
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	backlog, err := c.read(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	seen := map[string]bool{}
	for _, b := range backlog {
		seen[b.Topic] = true
		ch <- prometheus.MustNewConstMetric(c.rows, prometheus.GaugeValue, float64(b.Rows), b.Topic)
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, b.OldestAge.Seconds(), b.Topic)
	}
	for _, t := range c.topics {
		if !seen[t] {
			ch <- prometheus.MustNewConstMetric(c.rows, prometheus.GaugeValue, 0, t)
			ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, 0, t)
		}
	}
}
