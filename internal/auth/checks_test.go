package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Password checks run n at a time: while n run, the next waits for a turn
// and gives up with ErrBusy (or its context's error) when none comes.
func TestPasswordChecksRunAFewAtATime(t *testing.T) {
	t.Parallel()
	slow, err := HashPasswordCost("correct horse", 12) // ≥ 0.25 s a check: long enough to be seen running
	if err != nil {
		t.Fatal(err)
	}
	fast, err := HashPasswordCost("correct horse", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	checks := NewPasswordChecks(2, 50*time.Millisecond)
	done := make(chan bool, 2)
	for range 2 {
		go func() {
			ok, err := checks.Check(context.Background(), slow, "correct horse")
			done <- ok && err == nil
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for checks.Running() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d checks running, want 2", checks.Running())
		}
		time.Sleep(time.Millisecond)
	}
	// Both turns are taken for ≥ 0.25 s: a third check waits 50 ms, then gives up…
	if ok, err := checks.Check(context.Background(), slow, "correct horse"); ok || !errors.Is(err, ErrBusy) {
		t.Errorf("third check while two run: %v %v, want ErrBusy", ok, err)
	}
	// …or stops waiting when its request ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := checks.Check(ctx, slow, "correct horse"); !errors.Is(err, context.Canceled) {
		t.Errorf("check of an ended request: %v, want context.Canceled", err)
	}
	for range 2 {
		if !<-done {
			t.Error("a running check did not match its password")
		}
	}
	// Turns are given back.
	if ok, err := checks.Check(context.Background(), fast, "wrong horse"); ok || err != nil {
		t.Errorf("check after the others ended: %v %v, want false, nil", ok, err)
	}
	if checks.Running() != 0 {
		t.Errorf("%d checks running after all ended", checks.Running())
	}
}
