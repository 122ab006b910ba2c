package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm/internal/infratest"
)

func TestMain(m *testing.M) { infratest.Main(m) }

func newLimiter(t *testing.T) *Limiter {
	rdb, prefix := infratest.RedisClient(t)
	return New(rdb, prefix, func(p string, err error) { t.Errorf("fell back for %s: %v", p, err) })
}

// The script is atomic: however many requests race, exactly Limit pass.
func TestRedisLimiterIsAtomic(t *testing.T) {
	t.Parallel()
	l := newLimiter(t)
	p := Policy{Name: "t", Limit: 10, Period: time.Hour}
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.Allow(context.Background(), p, "k").Allowed {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 10 {
		t.Fatalf("allowed %d of 60 racing requests, want 10", n)
	}
	if d := l.Allow(context.Background(), p, "other"); !d.Allowed || d.Remaining != 9 {
		t.Errorf("keys are independent: %+v", d)
	}
}

func TestRedisLimiterRefillsAndPipelines(t *testing.T) {
	t.Parallel()
	l := newLimiter(t)
	p := Policy{Name: "fast", Limit: 2, Period: 200 * time.Millisecond}
	ctx := context.Background()
	a, b, c := l.Allow(ctx, p, "k"), l.Allow(ctx, p, "k"), l.Allow(ctx, p, "k")
	if !a.Allowed || !b.Allowed || c.Allowed || c.RetryAfter <= 0 || c.RetryAfter > 110*time.Millisecond {
		t.Fatalf("decisions: %+v %+v %+v", a, b, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !l.Allow(ctx, p, "k").Allowed {
		if time.Now().After(deadline) {
			t.Fatal("bucket never refilled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pipe := l.rdb.Pipeline()
	pd := l.Queue(ctx, pipe, Policy{Name: "pipe", Limit: 3, Period: time.Minute}, "k")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if d := pd.Decision(); !d.Allowed || d.Remaining != 2 || d.Fallback {
		t.Errorf("pipelined: %+v", d)
	}
}

func TestLocalLimiterMatchesGCRA(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	m := newLocal(func() time.Time { return now })
	p := Policy{Name: "t", Limit: 4, Period: 4 * time.Second} // one per second, bursts of 4
	for i := 3; i >= 0; i-- {
		if d := m.allow(p, "k"); !d.Allowed || d.Remaining != i {
			t.Fatalf("burst: %+v, want remaining %d", d, i)
		}
	}
	d := m.allow(p, "k")
	if d.Allowed || d.RetryAfter != time.Second {
		t.Fatalf("over: %+v", d)
	}
	now = now.Add(time.Second)
	if d := m.allow(p, "k"); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after one interval: %+v", d)
	}
	now = now.Add(10 * time.Second)
	if d := m.allow(p, "k"); !d.Allowed || d.Remaining != 3 {
		t.Fatalf("after a long pause: %+v", d)
	}
}

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy("api", "600/1m")
	if err != nil || p.Limit != 600 || p.Period != time.Minute {
		t.Fatalf("%+v %v", p, err)
	}
	if p, err := ParsePolicy("webhook", "1000000/1s"); err != nil || p.Limit != 1000000 {
		t.Fatalf("the fastest policy: %+v %v", p, err)
	}
	for _, bad := range []string{"", "600", "0/1m", "-1/1m", "x/1m", "10/", "10/0s", "10/forever", "1000001/1s", "1/999ns", "99999999999999/1ns"} {
		if _, err := ParsePolicy("api", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// After Redis forgets its scripts (a restart, SCRIPT FLUSH), a pipelined
// decision still comes from Redis, not from the fallback.
func TestPipelinedDecisionSurvivesScriptFlush(t *testing.T) {
	t.Parallel()
	l := newLimiter(t)
	ctx := context.Background()
	p := Policy{Name: "flush", Limit: 5, Period: time.Minute}
	if err := l.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	pipe := l.rdb.Pipeline()
	pd := l.Queue(ctx, pipe, p, "k")
	_, _ = pipe.Exec(ctx)
	if d := pd.Decision(); !d.Allowed || d.Fallback || d.Remaining != 4 {
		t.Fatalf("after flush: %+v", d)
	}
	pipe = l.rdb.Pipeline()
	pd = l.Queue(ctx, pipe, p, "k")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("script not reloaded: %v", err)
	}
	if d := pd.Decision(); d.Remaining != 3 {
		t.Fatalf("second: %+v", d)
	}
}
