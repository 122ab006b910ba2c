// Package consumer applies the contact-events topic to the contacts table
// (SPEC §2.3, §2.5, §2.6): each record is applied in one PostgreSQL
// transaction with its processed-event marker and the ordering guard, and
// its offset is committed only after that commit. A record that keeps
// failing is retried with bounded exponential backoff and jitter, then sent
// to the dead-letter topic and the dead_letters table, and the partition
// moves on.
package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/kafka"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/telemetry"
)

// Options configure a consumer.
type Options struct {
	Group      string
	Topic      string
	DLQTopic   string
	MaxRetries int           // attempts after the first; default 5
	Backoff    time.Duration // first retry delay; default 100 ms
	MaxBackoff time.Duration // default 5 s
	// SessionTimeout is the group session timeout; 0 keeps franz-go's 45 s.
	SessionTimeout time.Duration
	// Metrics and Tracing report what the consumer does (nil: nothing).
	Metrics *telemetry.Metrics
	Tracing *telemetry.Tracing
}

// Consumer is one member of the consumer group.
type Consumer struct {
	store  *postgres.Store
	client *kgo.Client
	logger *slog.Logger
	opts   Options
	tracer *kotel.Tracer // nil when tracing is off
}

// New joins the group on the cluster cfg describes.
func New(cfg kafka.Config, store *postgres.Store, logger *slog.Logger, opts Options) (*Consumer, error) {
	if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	c := &Consumer{store: store, logger: logger, opts: opts, tracer: telemetry.KafkaTracer(opts.Tracing)}
	extra := []kgo.Opt{}
	if opts.SessionTimeout > 0 {
		extra = append(extra, kgo.SessionTimeout(opts.SessionTimeout))
	}
	if hooks := telemetry.KafkaHooks(opts.Metrics, nil, "consumer"); len(hooks) > 0 {
		extra = append(extra, kgo.WithHooks(hooks...))
	}
	if c.tracer != nil {
		extra = append(extra, kgo.WithHooks(c.tracer))
	}
	cl, err := kafka.NewClient(cfg, append(extra,
		kgo.ConsumerGroup(opts.Group),
		kgo.ConsumeTopics(opts.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			// Hand over only what is committed in PostgreSQL.
			if err := cl.CommitMarkedOffsets(ctx); err != nil {
				logger.Warn("consumer: commit on revoke failed", "err", err)
			}
			opts.Metrics.ConsumerPartitionsLost(revoked)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			opts.Metrics.ConsumerPartitionsLost(lost)
		}),
	)...)
	if err != nil {
		return nil, err
	}
	c.client = cl
	return c, nil
}

// Run consumes until ctx is cancelled, then commits what it applied and
// leaves the group.
func (c *Consumer) Run(ctx context.Context) error {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := c.client.CommitMarkedOffsets(cctx); err != nil {
			c.logger.Warn("consumer: final commit failed", "err", err)
		}
		c.client.Close()
	}()
	for {
		fetches := c.client.PollRecords(ctx, 1000)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			c.client.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.logger.Warn("consumer: fetch error", "topic", topic, "partition", p, "err", err)
		})
		// One transaction for everything this poll returned, whatever its
		// partitions: a contact's events are all on one partition, so the
		// ordering guard needs no more than each partition's order, and
		// under load a poll carries many partitions' records (one commit and
		// a few statements for all of them). While it commits, the client
		// fetches the next ones.
		var recs []*kgo.Record
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				c.opts.Metrics.ConsumerLag(p.Topic, p.Partition, p.HighWatermark-p.Records[n-1].Offset-1)
			}
			recs = append(recs, p.Records...)
		})
		if len(recs) > 0 && c.handleBatch(ctx, recs) {
			c.client.MarkCommitRecords(recs...)
		}
		c.client.AllowRebalance()
	}
}

// handleBatch applies a poll's records: the valid ones together in one
// transaction (only each contact's newest event decides its row, so order
// inside the batch does not matter), then any that cannot be applied one by
// one through the retry and dead-letter path. It reports false only when
// ctx ended first (nothing is marked; the batch is redelivered).
func (c *Consumer) handleBatch(ctx context.Context, recs []*kgo.Record) bool {
	var valid []acmecrm.Event
	var validRecs, rest []*kgo.Record
	for _, rec := range recs {
		var ev acmecrm.Event
		if err := json.Unmarshal(rec.Value, &ev); err != nil || ev.EventID == "" || postgres.ValidateEvent(ev) != nil {
			rest = append(rest, rec)
			continue
		}
		valid = append(valid, ev)
		validRecs = append(validRecs, rec)
	}
	delay := c.opts.Backoff
	for len(valid) > 0 {
		spans := c.startSpans(validRecs)
		start := time.Now()
		fresh, err := c.store.ApplyContactEvents(ctx, valid)
		if err == nil {
			c.applied(valid, fresh, start, spans)
			break
		}
		endSpans(spans, err)
		if ctx.Err() != nil {
			return false
		}
		if acmecrm.ErrorKind(err) != acmecrm.KindUnavailable {
			// Something in the batch fails: settle each record on its own.
			c.logger.Warn("consumer: batch failed; applying one by one", "records", len(valid), "err", err)
			for _, rec := range recs {
				if !c.handle(ctx, rec) {
					return false
				}
			}
			return true
		}
		c.logger.Warn("consumer: database unavailable; waiting", "err", err)
		if !pause(ctx, jitter(delay)) {
			return false
		}
		delay = min(2*delay, c.opts.MaxBackoff)
	}
	for _, rec := range rest {
		if !c.handle(ctx, rec) {
			return false
		}
	}
	return true
}

// startSpans starts each record's process span (nil when tracing is off):
// the record's trace continues into the transaction that applies it.
func (c *Consumer) startSpans(recs []*kgo.Record) []trace.Span {
	if c.tracer == nil {
		return nil
	}
	spans := make([]trace.Span, len(recs))
	for i, rec := range recs {
		_, spans[i] = c.tracer.WithProcessSpan(rec)
		spans[i].SetAttributes(attribute.Int("acmecrm.batch.size", len(recs)))
	}
	return spans
}

func endSpans(spans []trace.Span, err error) {
	for _, sp := range spans {
		if err != nil {
			sp.RecordError(err)
			sp.SetStatus(codes.Error, err.Error())
		}
		sp.End()
	}
}

// applied records a committed batch in the metrics and its spans.
func (c *Consumer) applied(evs []acmecrm.Event, fresh []string, start time.Time, spans []trace.Span) {
	committed := time.Now()
	isNew := make(map[string]bool, len(fresh))
	for _, id := range fresh {
		isNew[id] = true
	}
	for i, ev := range evs {
		outcome := "duplicate"
		if isNew[ev.EventID] {
			outcome = "applied"
			delete(isNew, ev.EventID) // a copy later in the same batch is a duplicate
		}
		c.opts.Metrics.EventApplied(ev.EventType, outcome, committed.Sub(start), ev.OccurredAt, ev.ReceivedAt, committed)
		if spans != nil {
			spans[i].SetAttributes(attribute.String("acmecrm.event.id", ev.EventID),
				attribute.String("acmecrm.event.type", ev.EventType), attribute.String("acmecrm.event.outcome", outcome))
		}
	}
	endSpans(spans, nil)
}

// errPermanent marks a record that no retry can fix (it does not decode).
var errPermanent = errors.New("permanent")

// handle applies rec, retrying, and dead-letters it when retries run out.
// It reports false only when ctx ended before the record was settled.
func (c *Consumer) handle(ctx context.Context, rec *kgo.Record) bool {
	var ev acmecrm.Event
	err := json.Unmarshal(rec.Value, &ev)
	if err != nil || ev.EventID == "" {
		err = fmt.Errorf("%w: record value is not an event: %v", errPermanent, err)
	}
	if c.tracer != nil {
		var span trace.Span
		ctx, span = c.tracer.WithProcessSpan(rec)
		span.SetAttributes(attribute.String("acmecrm.event.id", ev.EventID))
		defer span.End()
	}
	lookup, eventID := time.Now(), recordEventID(rec, ev)
	dead, ok := c.deadLetteredBefore(ctx, rec, eventID)
	if !ok {
		return false
	}
	if dead {
		// Delivered again (the offset was not committed, or the group was
		// rewound): it was settled as a dead letter, which a replay sends
		// through again; trying it anew would dead-letter it twice.
		c.opts.Metrics.EventApplied(ev.EventType, postgres.AppliedDuplicate, time.Since(lookup), time.Time{}, time.Time{}, time.Time{})
		trace.SpanFromContext(ctx).SetAttributes(attribute.String("acmecrm.event.outcome", "dead_lettered_before"))
		c.logger.InfoContext(ctx, "consumer: record dead-lettered before; skipped", "event_id", eventID,
			"partition", rec.Partition, "offset", rec.Offset)
		return true
	}
	attempts := 0 // tries that failed for the event, not for the database
	delay := c.opts.Backoff
	for {
		if err == nil {
			attempts++
			start := time.Now()
			var outcome string
			outcome, err = c.store.ApplyContactEvent(ctx, ev)
			if err == nil {
				if outcome != postgres.AppliedDuplicate {
					outcome = "applied"
				}
				now := time.Now()
				c.opts.Metrics.EventApplied(ev.EventType, outcome, now.Sub(start), ev.OccurredAt, ev.ReceivedAt, now)
				return true
			}
			trace.SpanFromContext(ctx).RecordError(err)
		}
		if ctx.Err() != nil {
			return false
		}
		unavailable := acmecrm.ErrorKind(err) == acmecrm.KindUnavailable
		if unavailable {
			// The database could not take the try: it is not the event's
			// failure, and an outage must not use up its retries.
			attempts--
		}
		if !unavailable && (errors.Is(err, errPermanent) || attempts > c.opts.MaxRetries) {
			return c.deadLetter(ctx, rec, ev, err, attempts)
		}
		if !unavailable && ev.EventID != "" {
			if merr := c.store.MarkEventFailed(ctx, ev.EventID, err); merr != nil {
				c.logger.Warn("consumer: cannot record failure", "event_id", ev.EventID, "err", merr)
			}
		}
		c.opts.Metrics.EventRetry(ev.EventType)
		c.logger.WarnContext(ctx, "consumer: apply failed; retrying", "event_id", ev.EventID, "attempt", attempts, "err", err)
		// An unavailable database is waited out (nothing could progress);
		// other errors count toward the retry limit.
		if !pause(ctx, jitter(delay)) {
			return false
		}
		delay = min(2*delay, c.opts.MaxBackoff)
		err = nil
	}
}

// deadLetter sends rec to the DLQ topic and records it, then lets the
// partition move on.
func (c *Consumer) deadLetter(ctx context.Context, rec *kgo.Record, ev acmecrm.Event, cause error, attempts int) bool {
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	dlq := &kgo.Record{Topic: c.opts.DLQTopic, Key: rec.Key, Value: rec.Value, Headers: append(append([]kgo.RecordHeader(nil), rec.Headers...),
		kgo.RecordHeader{Key: "error", Value: []byte(cause.Error())},
		kgo.RecordHeader{Key: "attempts", Value: []byte(strconv.Itoa(attempts))},
		kgo.RecordHeader{Key: "original-topic", Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: "original-partition", Value: []byte(strconv.Itoa(int(rec.Partition)))},
		kgo.RecordHeader{Key: "original-offset", Value: []byte(strconv.FormatInt(rec.Offset, 10))},
	)}
	eventID := recordEventID(rec, ev)
	reason := cause.Error()
	sent := false // on the DLQ topic (or refused by it for good): not sent again
	for {
		var err error
		if !sent {
			err = c.client.ProduceSync(ctx, dlq).FirstErr()
			if kafka.RefusedForGood(err) {
				// The DLQ topic will never take it (the record and its error
				// headers are too large, say): the table keeps it, replayable,
				// and the partition moves on rather than wait for ever.
				reason += "; not on the dead-letter topic, which refused it: " + err.Error()
				err = nil
			}
			sent = err == nil
		}
		if err == nil {
			err = c.store.RecordDeadLetter(ctx, postgres.DeadLetter{
				EventID: eventID, EventType: ev.EventType, ContactID: string(rec.Key), Topic: rec.Topic,
				Partition: rec.Partition, Offset: rec.Offset, Key: string(rec.Key), Payload: rec.Value,
				Headers: headers, Error: reason, Attempts: attempts,
			})
		}
		if err == nil {
			c.opts.Metrics.EventDeadLettered(ev.EventType)
			trace.SpanFromContext(ctx).SetStatus(codes.Error, "dead-lettered: "+cause.Error())
			c.logger.ErrorContext(ctx, "consumer: event dead-lettered", "event_id", eventID, "attempts", attempts, "err", cause)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.logger.Warn("consumer: dead-lettering failed; retrying", "event_id", eventID, "err", err)
		if !pause(ctx, c.opts.Backoff) {
			return false
		}
	}
}

// recordEventID is the id of rec's event: from its value or, for a value
// that is not an event, from its event-id header ("" when it has none).
func recordEventID(rec *kgo.Record, ev acmecrm.Event) string {
	if ev.EventID != "" {
		return ev.EventID
	}
	for _, h := range rec.Headers {
		if h.Key == "event-id" {
			return string(h.Value)
		}
	}
	return ""
}

// deadLetteredBefore reports whether rec is already among the dead
// letters, waiting out a database that cannot answer; ok is false only
// when ctx ended first.
func (c *Consumer) deadLetteredBefore(ctx context.Context, rec *kgo.Record, eventID string) (dead, ok bool) {
	delay := c.opts.Backoff
	for {
		dead, err := c.store.DeadLettered(ctx, rec.Topic, rec.Partition, rec.Offset, eventID)
		if err == nil {
			return dead, true
		}
		if ctx.Err() != nil {
			return false, false
		}
		c.logger.WarnContext(ctx, "consumer: cannot look up dead letters; retrying", "event_id", eventID, "err", err)
		if !pause(ctx, jitter(delay)) {
			return false, false
		}
		delay = min(2*delay, c.opts.MaxBackoff)
	}
}

// jitter spreads a delay over [d/2, 3d/2) so that retries of many records
// do not arrive together.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

// pause waits d, reporting false if ctx ended first.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
