// Package retention deletes what the service no longer needs once it is
// older than EVENT_RETENTION: webhooks whose processing is over (their
// receipt, state and processed-event marker), dead letters that were
// replayed, and finished simulator deliveries. Everything still waiting
// for work or for a person — webhooks on their way, dead events, dead
// letters not replayed, pending deliveries — is kept whatever its age, and
// so are contacts and their tombstones.
//
// It deletes in batches, each its own short transaction, so that it never
// holds locks or a snapshot for long, and instances take turns through an
// advisory lock.
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/telemetry"
)

// Options configure a Pruner.
type Options struct {
	// Retention is how long finished records are kept (required, > 0).
	Retention time.Duration
	// Interval between passes; default 10 minutes. The first pass starts
	// at once.
	Interval time.Duration
	// Batch is the most rows of one kind deleted per transaction; default
	// 5,000.
	Batch   int
	Metrics *telemetry.Metrics
	Now     func() time.Time
}

// Pruner deletes finished records older than the retention.
type Pruner struct {
	store  *postgres.Store
	logger *slog.Logger
	opts   Options

	// A pass goes on from where the previous one stopped: the webhooks
	// before that point were pruned or kept, and walking over the pruned
	// ones again would read every index entry they left until VACUUM
	// removes it (it runs seldom on a large table). The kept ones (dead,
	// or not yet processed) can finish later, so once a day a pass starts
	// again from the first webhook.
	cursor   postgres.PruneCursor
	fullPass time.Time // when the last pass from the first webhook started
}

// fullPassEvery is how often a pass starts from the first webhook.
const fullPassEvery = 24 * time.Hour

// New returns a Pruner.
func New(store *postgres.Store, logger *slog.Logger, opts Options) *Pruner {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Minute
	}
	if opts.Batch <= 0 {
		opts.Batch = 5000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Pruner{store: store, logger: logger, opts: opts}
}

// Totals are the rows one pass deleted.
type Totals struct {
	Webhooks, DeadLetters, Deliveries int
	// Busy: another instance was pruning, so this pass stopped.
	Busy bool
}

// Run prunes once now and then every interval until ctx is cancelled. A
// pass that fails is logged and tried again at the next interval.
func (p *Pruner) Run(ctx context.Context) error {
	for {
		start := time.Now()
		t, err := p.Prune(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			p.opts.Metrics.PruneFailed()
			p.logger.Warn("retention: pruning failed; trying again later", "err", err, "retry_in", p.opts.Interval.String())
		case t.Webhooks+t.DeadLetters+t.Deliveries > 0:
			p.logger.Info("retention: pruned", "webhooks", t.Webhooks, "dead_letters", t.DeadLetters,
				"simulator_deliveries", t.Deliveries, "retention", p.opts.Retention.String(), "took", time.Since(start).Round(time.Millisecond).String())
		}
		timer := time.NewTimer(p.opts.Interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}

// Prune makes one pass: it deletes every finished record older than the
// retention, batch by batch (webhooks from where the last pass stopped,
// or from the first one once a day). Passes of one Pruner must not
// overlap.
func (p *Pruner) Prune(ctx context.Context) (Totals, error) {
	var t Totals
	now := p.opts.Now()
	cutoff := now.Add(-p.opts.Retention)
	if now.Sub(p.fullPass) >= fullPassEvery {
		p.cursor, p.fullPass = postgres.PruneCursor{}, now
	}
	for {
		n, next, done, busy, err := p.store.PruneWebhooks(ctx, p.cursor, cutoff, p.opts.Batch)
		t.Webhooks += n
		p.opts.Metrics.Pruned("webhooks", n)
		if err != nil || busy {
			t.Busy = busy
			return t, err
		}
		p.cursor = next
		if done {
			break
		}
	}
	for {
		dl, sd, busy, err := p.store.PruneFinished(ctx, cutoff, p.opts.Batch)
		t.DeadLetters, t.Deliveries = t.DeadLetters+dl, t.Deliveries+sd
		p.opts.Metrics.Pruned("dead_letters", dl)
		p.opts.Metrics.Pruned("simulator_deliveries", sd)
		if err != nil || busy {
			t.Busy = busy
			return t, err
		}
		if dl < p.opts.Batch && sd < p.opts.Batch {
			return t, nil
		}
	}
}
