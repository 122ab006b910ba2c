package auth

import (
	"context"
	"time"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/turns"
)

// PasswordChecks runs password checks a few at a time. A bcrypt check
// takes ~50 ms of a core. Run without a bound, a flood of logins from many
// addresses, each within its own rate limit, took every core, and Go's
// scheduler shared them out evenly among the checks and the webhooks:
// measured on two cores, 400 wrong logins from 40 addresses cut the
// receiver from 300 to 55 webhooks/s, with a p99 of 0.95 s.
type PasswordChecks struct{ turns *turns.Turns }

// ErrBusy answers a login that waited too long for a password check.
var ErrBusy = &acmecrm.Error{Kind: acmecrm.KindUnavailable, Code: "SERVICE_UNAVAILABLE",
	Message: "too many logins at once; retry in a moment"}

// NewPasswordChecks runs at most n checks at once; a login waits at most
// wait for its turn.
func NewPasswordChecks(n int, wait time.Duration) *PasswordChecks {
	return &PasswordChecks{turns: turns.New(n, wait, ErrBusy)}
}

// Check waits for a turn and reports whether password matches hash (see
// CheckPassword). It fails with ErrBusy when no turn came within the
// wait, or with ctx's error when ctx ended first.
func (p *PasswordChecks) Check(ctx context.Context, hash, password string) (bool, error) {
	release, err := p.turns.Take(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return CheckPassword(hash, password), nil
}

// Running is how many checks are running now.
func (p *PasswordChecks) Running() int { return p.turns.Running() }
