package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/acmecrm/acmecrm/internal/postgres"
)

// eventStats is what GET /api/metrics/events answers.
type eventStats struct {
	postgres.EventStats
	GeneratedAt time.Time `json:"generatedAt"`
}

// eventStatsCache shares the event statistics between callers. The
// counts are kept as webhooks change state (migration 00010) and cost a
// few milliseconds to read, but the recent errors are the newest among
// every failed and dead webhook, which an outage can make many. So
// concurrent callers wait for one computation, and its result is reused
// for ten times as long as it took, and at least minAge: the database time
// the endpoint takes stays at about a tenth of one core per instance at
// most, whatever the number of callers. generatedAt says how old an
// answer is.
type eventStatsCache struct {
	store  *postgres.Store
	now    func() time.Time
	minAge time.Duration

	group singleflight.Group
	mu    sync.Mutex
	last  eventStats
	until time.Time // last is reused until then
}

// maxEventStatsTime bounds one shared computation, which goes on when the
// request that started it ends: the next callers get its result.
const maxEventStatsTime = 10 * time.Minute

func (c *eventStatsCache) get(ctx context.Context) (eventStats, error) {
	c.mu.Lock()
	if time.Now().Before(c.until) {
		st := c.last
		c.mu.Unlock()
		return st, nil
	}
	c.mu.Unlock()
	ch := c.group.DoChan("", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), maxEventStatsTime)
		defer cancel()
		start := time.Now()
		st, err := c.store.EventStats(ctx)
		if err != nil {
			return nil, err
		}
		out := eventStats{EventStats: st, GeneratedAt: c.now().UTC()}
		c.mu.Lock()
		c.last, c.until = out, time.Now().Add(max(c.minAge, 10*time.Since(start)))
		c.mu.Unlock()
		return out, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return eventStats{}, r.Err
		}
		return r.Val.(eventStats), nil
	case <-ctx.Done():
		return eventStats{}, ctx.Err()
	}
}

// handleEventMetrics is GET /api/metrics/events: the event tracking of
// SPEC §9, read from the database (correct across restarts and instances).
func handleEventMetrics(store *postgres.Store, minAge time.Duration, logger *slog.Logger, now func() time.Time) http.Handler {
	type body struct {
		Data eventStats `json:"data"`
	}
	if minAge <= 0 {
		minAge = time.Second
	}
	cache := &eventStatsCache{store: store, now: now, minAge: minAge}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := cache.get(r.Context())
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		encode(w, http.StatusOK, body{Data: st})
	})
}
