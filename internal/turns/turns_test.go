package turns

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

var errBusy = errors.New("busy")

// n turns at once; the next caller waits for one to be given back, and
// gives up with the busy error after its wait, or with its context's error.
func TestTurns(t *testing.T) {
	t.Parallel()
	turns := New(2, 50*time.Millisecond, errBusy)
	var releases []func()
	for range 2 {
		release, err := turns.Take(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	if turns.Running() != 2 {
		t.Fatalf("%d turns taken, want 2", turns.Running())
	}
	if _, err := turns.Take(context.Background()); !errors.Is(err, errBusy) {
		t.Errorf("a third turn: %v, want the busy error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := turns.Take(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("a turn for an ended request: %v, want context.Canceled", err)
	}

	// A caller that waits gets the first turn given back.
	patient := New(1, 10*time.Second, errBusy)
	release, err := patient.Take(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error)
	go func() {
		r, err := patient.Take(context.Background())
		if err == nil {
			r()
		}
		got <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for patient.Waiting() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second caller never waited")
		}
		time.Sleep(time.Millisecond)
	}
	release()
	if err := <-got; err != nil {
		t.Errorf("the waiting caller: %v", err)
	}

	for _, r := range releases {
		r()
	}
	if turns.Running() != 0 || patient.Running() != 0 || patient.Waiting() != 0 {
		t.Errorf("turns left taken: %d, %d; waiting: %d", turns.Running(), patient.Running(), patient.Waiting())
	}
	// At least one turn, whatever n says.
	if _, err := New(0, time.Millisecond, errBusy).Take(context.Background()); err != nil {
		t.Errorf("a turn of New(0): %v", err)
	}
}

// A caller's requests take the shared turns one at a time: while one of
// A's runs, A's next waits even with a turn free, and B's does not. Once
// every turn is taken, the turns go round the callers: B, who asked after
// A's second and third request, runs before them.
func TestTurnsGoRoundTheCallers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	turns := New(2, 10*time.Second, errBusy)
	a1, err := turns.TakeFor(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 4)
	var asking sync.WaitGroup // the requests below, until they give back their turns
	ask := func(key, name string) {
		defer asking.Done()
		release, err := turns.TakeFor(ctx, key)
		if err != nil {
			order <- name + ": " + err.Error()
			return
		}
		order <- name
		release()
	}
	waitFor := func(waiting int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for turns.Waiting() != waiting {
			if time.Now().After(deadline) {
				t.Fatalf("%d waiting, want %d", turns.Waiting(), waiting)
			}
			time.Sleep(time.Millisecond)
		}
	}
	asking.Add(1)
	go ask("a", "a2")
	waitFor(1)
	if turns.Running() != 1 {
		t.Fatalf("%d turns taken while a's second request waits, want 1 (a runs one at a time)", turns.Running())
	}
	// B is not held up by A's queue.
	b1, err := turns.TakeFor(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	asking.Add(1)
	go ask("a", "a3")
	waitFor(2)
	asking.Add(1)
	go ask("b", "b2")
	waitFor(3)
	// Every turn is taken (a1, b1). Give back b1: b2 gets it, while a2 and
	// a3 wait for a1.
	b1()
	if got := <-order; got != "b2" {
		t.Fatalf("first served: %s, want b2", got)
	}
	a1()
	for _, want := range []string{"a2", "a3"} {
		if got := <-order; got != want {
			t.Fatalf("served %s, want %s", got, want)
		}
	}
	asking.Wait()
	if turns.Running() != 0 || turns.Waiting() != 0 || turns.Callers() != 0 {
		t.Errorf("after every request ended: %d running, %d waiting, %d callers", turns.Running(), turns.Waiting(), turns.Callers())
	}

	// A caller who waited too long behind their own requests gives up
	// with the caller's busy error.
	errCallerBusy := errors.New("your requests are busy")
	patient := New(2, 30*time.Millisecond, errBusy).CallerBusy(errCallerBusy)
	r, err := patient.TakeFor(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := patient.TakeFor(ctx, "a"); !errors.Is(err, errCallerBusy) {
		t.Errorf("a's second request while its first runs: %v, want the caller's busy error", err)
	}
	r()
	if patient.Callers() != 0 {
		t.Errorf("%d callers left after every request ended", patient.Callers())
	}
}
