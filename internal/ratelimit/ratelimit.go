// Package ratelimit limits request rates with GCRA (the generic cell rate
// algorithm), atomically in Redis through one Lua script, and falls back to
// the same algorithm in process memory when Redis cannot be reached — the
// limiter fails open (still limiting per instance), never closed.
package ratelimit

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Policy allows Limit requests per Period, with bursts of up to Limit.
type Policy struct {
	Name   string
	Limit  int
	Period time.Duration
}

// ParsePolicy reads "N/duration" ("600/1m", "10/60s").
func ParsePolicy(name, s string) (Policy, error) {
	n, d, ok := strings.Cut(s, "/")
	limit, err := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err != nil || limit < 1 {
		return Policy{}, fmt.Errorf("%q is not N/duration with N ≥ 1 (e.g. 600/1m)", s)
	}
	period, err := time.ParseDuration(strings.TrimSpace(d))
	if err != nil || period <= 0 {
		return Policy{}, fmt.Errorf("%q is not N/duration with a positive duration (e.g. 600/1m)", s)
	}
	// GCRA spaces requests by Period/Limit; below a microsecond that spacing
	// is lost to rounding (and is zero in whole nanoseconds), so the limit
	// would not mean what it says.
	if period/time.Duration(limit) < time.Microsecond {
		return Policy{}, fmt.Errorf("%q allows more than 1,000,000 requests a second, more than the limiter can count", s)
	}
	return Policy{Name: name, Limit: limit, Period: period}, nil
}

// Decision is the outcome for one request.
type Decision struct {
	Allowed    bool
	Limit      int
	Remaining  int
	ResetAfter time.Duration // until the bucket is full again
	RetryAfter time.Duration // until the next request is allowed (when denied)
	// Fallback is set when Redis could not be used and the in-process
	// limiter decided.
	Fallback bool
}

//go:embed gcra.lua
var gcraSource string

var gcraScript = redis.NewScript(gcraSource)

// Limiter decides in Redis, or in memory when Redis fails.
type Limiter struct {
	rdb        *redis.Client
	prefix     string
	local      *local
	onFallback func(policy string, err error)
}

// New returns a limiter keeping its state under prefix in rdb. onFallback,
// if not nil, is called each time Redis fails and memory decides (to log and
// count it).
func New(rdb *redis.Client, prefix string, onFallback func(policy string, err error)) *Limiter {
	if onFallback == nil {
		onFallback = func(string, error) {}
	}
	return &Limiter{rdb: rdb, prefix: prefix + "rl:", local: newLocal(time.Now), onFallback: onFallback}
}

// Pending is a decision queued in a Redis pipeline; read it after Exec.
type Pending struct {
	ctx context.Context
	l   *Limiter
	p   Policy
	key string
	cmd *redis.Cmd
}

// Queue adds the decision for key to pipe, so that it shares the round trip
// with other commands (authentication's token check).
func (l *Limiter) Queue(ctx context.Context, pipe redis.Pipeliner, p Policy, key string) *Pending {
	k := l.prefix + p.Name + ":" + key
	cmd := gcraScript.EvalSha(ctx, pipe, []string{k}, p.Limit, p.Limit, p.Period.Seconds())
	return &Pending{ctx: ctx, l: l, p: p, key: key, cmd: cmd}
}

// Decision reads the queued result (EVALSHA: the script body is not resent
// on every request); on any Redis error the in-process limiter decides.
func (pd *Pending) Decision() Decision {
	d, err := parse(pd.p, pd.cmd)
	if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		// Redis lost its script cache (a restart): decide in a round trip
		// of its own, which loads the script for the next pipelines.
		return pd.l.Allow(pd.ctx, pd.p, pd.key)
	}
	if err != nil {
		pd.l.onFallback(pd.p.Name, err)
		d = pd.l.local.allow(pd.p, pd.key)
		d.Fallback = true
	}
	return d
}

// Allow decides for one request of key under p in its own round trip.
func (l *Limiter) Allow(ctx context.Context, p Policy, key string) Decision {
	k := l.prefix + p.Name + ":" + key
	cmd := gcraScript.Run(ctx, l.rdb, []string{k}, p.Limit, p.Limit, p.Period.Seconds())
	d, err := parse(p, cmd)
	if err != nil {
		l.onFallback(p.Name, err)
		d = l.local.allow(p, key)
		d.Fallback = true
	}
	return d
}

// Local is a limiter that decides in process memory only, for flood guards
// where a Redis round trip per request would cost more than it protects.
type Local struct{ m *local }

// NewLocal returns an in-memory limiter.
func NewLocal() *Local { return &Local{m: newLocal(time.Now)} }

// Allow decides for one request of key under p.
func (l *Local) Allow(p Policy, key string) Decision { return l.m.allow(p, key) }

func parse(p Policy, cmd *redis.Cmd) (Decision, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return Decision{}, err
	}
	if len(vals) != 4 {
		return Decision{}, fmt.Errorf("ratelimit: unexpected reply %v", vals)
	}
	allowed, _ := vals[0].(int64)
	remaining, _ := vals[1].(int64)
	retryS, ok1 := vals[2].(string)
	resetS, ok2 := vals[3].(string)
	retry, err1 := strconv.ParseFloat(retryS, 64)
	reset, err2 := strconv.ParseFloat(resetS, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return Decision{}, fmt.Errorf("ratelimit: unexpected reply %v", vals)
	}
	d := Decision{Allowed: allowed == 1, Limit: p.Limit, Remaining: int(remaining), ResetAfter: seconds(reset)}
	if !d.Allowed {
		d.RetryAfter = seconds(retry)
	}
	return d, nil
}

func seconds(f float64) time.Duration {
	if f < 0 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

// local is GCRA in memory: the theoretical arrival time per key.
type local struct {
	mu    sync.Mutex
	now   func() time.Time
	tat   map[string]time.Time
	calls int
}

func newLocal(now func() time.Time) *local {
	return &local{now: now, tat: map[string]time.Time{}}
}

func (m *local) allow(p Policy, key string) Decision {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := p.Name + ":" + key
	m.calls++
	if m.calls%1024 == 0 { // forget keys whose buckets are full again
		for k, t := range m.tat {
			if !t.After(now) {
				delete(m.tat, k)
			}
		}
	}
	interval := p.Period / time.Duration(p.Limit)
	tat := m.tat[k]
	if tat.Before(now) {
		tat = now
	}
	newTAT := tat.Add(interval)
	allowAt := newTAT.Add(-interval * time.Duration(p.Limit))
	diff := now.Sub(allowAt)
	if diff < 0 {
		return Decision{Allowed: false, Limit: p.Limit, Remaining: 0, ResetAfter: tat.Sub(now), RetryAfter: -diff}
	}
	m.tat[k] = newTAT
	return Decision{Allowed: true, Limit: p.Limit, Remaining: int(math.Floor(float64(diff) / float64(interval))), ResetAfter: newTAT.Sub(now)}
}
