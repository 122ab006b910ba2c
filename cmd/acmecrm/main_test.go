package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/acmecrm/acmecrm/internal/infratest"
)

// childEnv makes the test binary run `acmecrm serve` (for tests that kill
// the service with SIGKILL, which they cannot do to themselves).
const childEnv = "ACMECRM_TEST_CHILD_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := exitCode(run(ctx, []string{"serve"}, os.Getenv, os.Stdout, os.Stderr), os.Stderr)
		stop()
		os.Exit(code)
	}
	infratest.Main(m)
}
