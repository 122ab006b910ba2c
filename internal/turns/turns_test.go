package turns

import (
	"context"
	"errors"
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
