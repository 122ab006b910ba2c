package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/acmecrm/acmecrm/internal/devstack"
)

const stackUsage = `Usage: acmecrm stack [--data DIR] -- COMMAND [ARG...]

Starts a throw-away PostgreSQL and Redis on loopback (installed OS packages,
no configuration), runs COMMAND with these variables set, and stops the
servers when COMMAND exits (its exit status is returned):

  DATABASE_URL / TEST_POSTGRES_URL   database "acmecrm" / the server's admin database
  REDIS_URL / TEST_REDIS_URL         the Redis server

'make test' runs 'go test' this way so that every test package of a run
shares one PostgreSQL and one Redis server.

Flags:
`

func cmdStack(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stack", stackUsage, stderr)
	dataDir := fs.String("data", "", "folder for the servers' data (default: a temporary folder, removed afterwards)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageError{"stack: no command given"}
	}
	dir := *dataDir
	if dir == "" {
		tmp, err := devstack.TempDir("acmecrm-stack-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	st, err := devstack.Start(ctx, devstack.Options{Dir: dir, Postgres: true, Redis: true, Log: stderrFilter(stderr)})
	if err != nil {
		return fmt.Errorf("start local servers: %w", err)
	}
	defer st.Stop()
	if err := st.Postgres.EnsureDatabase(ctx, "acmecrm"); err != nil {
		return err
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+st.Postgres.URL("acmecrm"),
		"TEST_POSTGRES_URL="+st.Postgres.URL("postgres"),
		"REDIS_URL="+st.Redis.URL(),
		"TEST_REDIS_URL="+st.Redis.URL(),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err = <-done
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if code := ee.ExitCode(); code > 0 {
			return exitStatus(code)
		}
		return exitStatus(1) // killed by a signal
	}
	return err
}

// stderrFilter keeps the servers' chatter out of the test output unless it
// is a warning or worse.
func stderrFilter(w io.Writer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		s := string(p)
		if strings.Contains(s, "overcommit") { // Redis's advice about a sysctl; not ours to act on
			return len(p), nil
		}
		if strings.Contains(s, "WARNING") || strings.Contains(s, "FATAL") || strings.Contains(s, "PANIC") {
			return w.Write(p)
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
