// Package outbox is the relay between PostgreSQL and Kafka (SPEC §4): it
// publishes the rows that transactions wrote to the outbox table, in
// order, with the idempotent producer, and deletes them only after Kafka
// acknowledged them. It wakes on LISTEN/NOTIFY and also polls, so a crash
// or a missed notification costs at most one poll interval.
//
// Published rows are deleted, and until VACUUM reclaims them (autovacuum
// runs at most once a minute by default) every scan from the start of the
// table walks over all of them: at thousands of rows a second that costs
// milliseconds per claim. A relay therefore scans from just below the
// highest id it published (ids are allocated in insert order, and a row
// committed late keeps the id of its insert, so a margin of a few batches
// covers the transactions in flight), and from the start once per poll
// interval, which catches any row committed later than that. A row is
// never skipped for longer than one poll interval.
package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/acmecrm/acmecrm/internal/kafka"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/telemetry"
)

// Options configure a relay.
type Options struct {
	Batch int           // rows per claim; default 500
	Poll  time.Duration // fallback poll interval; default 250 ms
	// Metrics counts what is published (nil: nothing).
	Metrics *telemetry.Metrics
}

// Relay publishes outbox rows.
type Relay struct {
	store  *postgres.Store
	client *kgo.Client
	logger *slog.Logger
	opts   Options
}

// New returns a relay producing through client (franz-go's producer is
// idempotent with acks=all by default).
func New(store *postgres.Store, client *kgo.Client, logger *slog.Logger, opts Options) *Relay {
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Poll <= 0 {
		opts.Poll = 250 * time.Millisecond
	}
	return &Relay{store: store, client: client, logger: logger, opts: opts}
}

// Run publishes until ctx is cancelled.
func (r *Relay) Run(ctx context.Context) error {
	var listener *postgres.Listener
	defer func() {
		if listener != nil {
			listener.Close()
		}
	}()
	backoff := time.Duration(0)
	var from int64 // claim rows with ids from here on
	lastFull := time.Now()
	for ctx.Err() == nil {
		if time.Since(lastFull) >= r.opts.Poll {
			from, lastFull = 0, time.Now()
		}
		n, last, err := r.runOnce(ctx, from)
		if n > 0 {
			from = max(from, last-int64(r.opts.Batch)*cursorMarginBatches)
		}
		if err != nil {
			from = 0
			if ctx.Err() != nil {
				break
			}
			// Kafka or PostgreSQL unavailable: the rows wait, we back off.
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			r.opts.Metrics.OutboxFailed()
			r.logger.Warn("outbox relay: publish failed; rows stay queued", "err", err, "retry_in", backoff.String())
			sleep(ctx, backoff+time.Duration(rand.Int64N(int64(backoff/2)+1)))
			continue
		}
		backoff = 0
		if n == r.opts.Batch {
			continue // more is waiting
		}
		if listener == nil {
			if listener, err = r.store.ListenOutbox(ctx); err != nil {
				listener = nil
				sleep(ctx, r.opts.Poll)
				continue
			}
			continue // catch what arrived before LISTEN
		}
		if err := listener.Wait(ctx, r.opts.Poll); err != nil && ctx.Err() == nil {
			listener.Close()
			listener = nil
		}
	}
	return nil
}

// cursorMarginBatches is how many batches below the highest id it has
// published a relay starts its next claim.
const cursorMarginBatches = 4

// runOnce publishes one batch. A row's stored trace context becomes the
// record's context, so the client's tracing hook (when on) makes the
// publish span a child of the request that wrote the row.
func (r *Relay) runOnce(ctx context.Context, from int64) (int, int64, error) {
	start := time.Now()
	byTopic := map[string]int{}
	n, last, err := r.store.PublishOutbox(ctx, from, r.opts.Batch, func(ctx context.Context, msgs []postgres.OutboxMessage) (map[int64]error, error) {
		clear(byTopic)
		recs := make([]*kgo.Record, len(msgs))
		rows := make(map[*kgo.Record]postgres.OutboxMessage, len(msgs))
		for i, m := range msgs {
			rec := &kgo.Record{Topic: m.Topic, Key: []byte(m.Key), Value: m.Payload, Context: telemetry.Extract(ctx, m.Headers)}
			for k, v := range m.Headers {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
			}
			recs[i], rows[rec] = rec, m
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var refused map[int64]error
		var refusedRows []postgres.OutboxMessage
		for _, res := range r.client.ProduceSync(pctx, recs...) {
			m := rows[res.Record]
			switch {
			case res.Err == nil:
				byTopic[m.Topic]++
			case kafka.RefusedForGood(res.Err):
				if refused == nil {
					refused = map[int64]error{}
				}
				refused[m.ID] = fmt.Errorf("refused by Kafka for good: %w", res.Err)
				refusedRows = append(refusedRows, m)
			default: // Kafka unavailable, or not yet: every row waits
				return nil, fmt.Errorf("produce %d records: %w", len(recs), res.Err)
			}
		}
		for _, m := range refusedRows {
			r.opts.Metrics.EventDeadLettered(m.Headers["event-type"])
			r.logger.Error("outbox relay: Kafka refused a record; it is a dead letter now",
				"event_id", m.Headers["event-id"], "topic", m.Topic, "bytes", len(m.Payload), "err", refused[m.ID])
		}
		return refused, nil
	})
	if err == nil && n > 0 {
		r.opts.Metrics.OutboxPublished(byTopic, time.Since(start))
	}
	return n, last, err
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
