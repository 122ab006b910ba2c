// Package turns bounds how many requests do one kind of costly work at once
// (a password check, a contact search): each waits a bounded time for a
// turn and is refused as busy when none comes, so that a flood of such work
// queues behind itself instead of taking every core from the rest of the
// service.
package turns

import (
	"context"
	"sync/atomic"
	"time"
)

// Turns hands out at most n turns at once.
type Turns struct {
	slots   chan struct{}
	wait    time.Duration
	busy    error
	waiting atomic.Int64
}

// New gives out at most n turns at once (at least one); a caller waits at
// most wait for one, then gets busy.
func New(n int, wait time.Duration, busy error) *Turns {
	return &Turns{slots: make(chan struct{}, max(n, 1)), wait: wait, busy: busy}
}

// Take waits for a turn and returns the function that gives it back. It
// fails with the busy error when no turn came within the wait, or with
// ctx's error when ctx ended first.
func (t *Turns) Take(ctx context.Context) (release func(), err error) {
	select {
	case t.slots <- struct{}{}:
		return t.release, nil
	default:
	}
	t.waiting.Add(1)
	defer t.waiting.Add(-1)
	timer := time.NewTimer(t.wait)
	defer timer.Stop()
	select {
	case t.slots <- struct{}{}:
		return t.release, nil
	case <-timer.C:
		return nil, t.busy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *Turns) release() { <-t.slots }

// Running is how many turns are taken now.
func (t *Turns) Running() int { return len(t.slots) }

// Waiting is how many callers wait for a turn now.
func (t *Turns) Waiting() int { return int(t.waiting.Load()) }
