// Package ingest coalesces concurrent webhook requests into shared
// transactions: each waiting request joins the next batch, a batch is one
// multi-row statement and one commit, and each request is answered only
// after its own rows are committed. The receiver's rate is then bounded by
// how many rows one commit can carry, not by one fsync per webhook.
package ingest

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/telemetry"
)

// Options size the batcher.
type Options struct {
	// Topic receives the outbox rows of known events.
	Topic string
	// Writers is how many batches may be committing at once; while one
	// commits, the next gathers. Default 2.
	Writers int
	// MaxBatch caps the rows of one statement. Default 512.
	MaxBatch int
	// Metrics records the rows of each commit (nil: nothing).
	Metrics *telemetry.Metrics
}

// Batcher records webhooks in coalesced batches.
type Batcher struct {
	store *postgres.Store
	opts  Options
	queue chan *request

	mu     sync.RWMutex // held for reading while queueing
	closed bool

	batches, rows atomic.Int64
}

// Stats reports how many batches were committed and how many webhooks they
// carried (rows / batches is the coalescing factor).
func (b *Batcher) Stats() (batches, rows int64) { return b.batches.Load(), b.rows.Load() }

type request struct {
	ev      postgres.IncomingEvent
	outcome string
	err     error
	done    chan struct{}
}

// New returns a Batcher; call Run to start its writers.
func New(store *postgres.Store, opts Options) *Batcher {
	if opts.Writers <= 0 {
		opts.Writers = 2
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	return &Batcher{store: store, opts: opts, queue: make(chan *request, opts.MaxBatch*opts.Writers)}
}

// ErrStopped is returned to requests submitted after Run has stopped.
var ErrStopped = &acmecrm.Error{Kind: acmecrm.KindUnavailable, Code: "SERVICE_UNAVAILABLE", Message: "the service is shutting down"}

// Run writes batches until ctx is cancelled; then it refuses new requests,
// commits every one already queued, and returns.
func (b *Batcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range b.opts.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.write(context.WithoutCancel(ctx))
		}()
	}
	<-ctx.Done()
	b.mu.Lock()
	b.closed = true
	close(b.queue) // no sender holds the read lock now
	b.mu.Unlock()
	wg.Wait()
	return nil
}

// write takes the first waiting request, gathers whatever else is already
// waiting (without waiting for more: no added latency), and commits them,
// until the queue is closed and empty.
func (b *Batcher) write(ctx context.Context) {
	batch := make([]*request, 0, b.opts.MaxBatch)
	for {
		r, ok := <-b.queue
		if !ok {
			return
		}
		batch = append(batch[:0], r)
	gather:
		for len(batch) < b.opts.MaxBatch {
			select {
			case r, ok := <-b.queue:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		b.commit(ctx, batch)
	}
}

func (b *Batcher) commit(ctx context.Context, batch []*request) {
	evs := make([]postgres.IncomingEvent, len(batch))
	for i, r := range batch {
		evs[i] = r.ev
	}
	outcomes, err := b.store.RecordEvents(ctx, b.opts.Topic, evs)
	if err == nil {
		b.batches.Add(1)
		b.rows.Add(int64(len(batch)))
		b.opts.Metrics.IngestBatch(len(batch))
	}
	if err != nil && len(batch) > 1 && acmecrm.ErrorKind(err) != acmecrm.KindUnavailable {
		// One bad row must not fail its neighbours: retry one by one.
		for _, r := range batch {
			b.commit(ctx, []*request{r})
		}
		return
	}
	for i, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.outcome = outcomes[i]
		}
		close(r.done)
	}
}

// Record queues ev for the next batch and waits until it is committed (or
// failed). The outcome is postgres.OutcomeAccepted, OutcomeDuplicate or
// OutcomeIgnored.
func (b *Batcher) Record(ctx context.Context, ev postgres.IncomingEvent) (string, error) {
	if err := ev.Prepare(); err != nil {
		return "", err
	}
	r := &request{ev: ev, done: make(chan struct{})}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return "", ErrStopped
	}
	select {
	case b.queue <- r:
	case <-ctx.Done():
		b.mu.RUnlock()
		return "", ctx.Err()
	}
	b.mu.RUnlock()
	// Once queued, the answer is awaited even if the client goes away: the
	// row may be committed, and the caller must not report otherwise.
	<-r.done
	if r.err != nil {
		return "", r.err
	}
	return r.outcome, nil
}
