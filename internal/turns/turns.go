// Package turns bounds how many requests do one kind of costly work at once
// (a password check, a contact search): each waits a bounded time for a
// turn and is refused as busy when none comes, so that a flood of such work
// queues behind itself instead of taking every core from the rest of the
// service.
package turns

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Turns hands out at most n turns at once.
type Turns struct {
	slots      chan struct{}
	wait       time.Duration
	busy       error
	callerBusy error
	waiting    atomic.Int64

	mu      sync.Mutex
	callers map[string]*caller
}

// caller is one key's queue: its requests wait for the shared turns one at
// a time.
type caller struct {
	turn chan struct{}
	refs int
}

// New gives out at most n turns at once (at least one); a caller waits at
// most wait for one, then gets busy.
func New(n int, wait time.Duration, busy error) *Turns {
	return &Turns{slots: make(chan struct{}, max(n, 1)), wait: wait, busy: busy, callerBusy: busy, callers: map[string]*caller{}}
}

// CallerBusy sets the error of a TakeFor whose wait ran out behind the
// caller's own requests (by default the busy error), and returns t.
func (t *Turns) CallerBusy(err error) *Turns {
	t.callerBusy = err
	return t
}

// Take waits for a turn and returns the function that gives it back. It
// fails with the busy error when no turn came within the wait, or with
// ctx's error when ctx ended first.
func (t *Turns) Take(ctx context.Context) (release func(), err error) {
	return t.TakeFor(ctx, "")
}

// TakeFor is Take for one of many callers (a user, say): a caller's
// requests queue for the shared turns one at a time, so one who sends many
// at once has at most one of them among the shared turns' waiters and runs
// at most one at a time; everyone else's wait behind it, not behind all of
// them. Waiters are served in order, so the turns go round the callers. The
// wait covers both queues. An empty key is no caller's.
func (t *Turns) TakeFor(ctx context.Context, key string) (release func(), err error) {
	t.waiting.Add(1)
	defer t.waiting.Add(-1)
	timer := time.NewTimer(t.wait)
	defer timer.Stop()
	var c *caller
	if key != "" {
		c = t.join(key)
		if err := t.await(ctx, c.turn, timer.C, t.callerBusy); err != nil {
			t.leave(key, c)
			return nil, err
		}
	}
	if err := t.await(ctx, t.slots, timer.C, t.busy); err != nil {
		if c != nil {
			<-c.turn
			t.leave(key, c)
		}
		return nil, err
	}
	return func() {
		<-t.slots
		if c != nil {
			<-c.turn
			t.leave(key, c)
		}
	}, nil
}

// await takes one of slots, waiting until timeout (then failing with busy)
// or the end of ctx. (A channel's blocked senders are served in order.)
func (t *Turns) await(ctx context.Context, slots chan struct{}, timeout <-chan time.Time, busy error) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case slots <- struct{}{}:
		return nil
	case <-timeout:
		return busy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *Turns) join(key string) *caller {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.callers[key]
	if c == nil {
		c = &caller{turn: make(chan struct{}, 1)}
		t.callers[key] = c
	}
	c.refs++
	return c
}

func (t *Turns) leave(key string, c *caller) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.refs--; c.refs == 0 {
		delete(t.callers, key)
	}
}

// Running is how many turns are taken now.
func (t *Turns) Running() int { return len(t.slots) }

// Waiting is how many callers wait for a turn now.
func (t *Turns) Waiting() int { return int(t.waiting.Load()) }

// Callers is how many keys have a request running or waiting now.
func (t *Turns) Callers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.callers)
}
