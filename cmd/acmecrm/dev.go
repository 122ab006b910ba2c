package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/acmecrm/acmecrm/internal/devstack"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

const devUsage = `Usage: acmecrm dev [--data DIR] [--roles api,relay,consumer,simulator]

The local run. Starts PostgreSQL and Redis from this machine's binaries and
an embedded Kafka-protocol broker (franz-go's kfake), keeps their data under
DIR so a restart keeps contacts and unconsumed events, applies migrations and
serves on :3000 (PORT overrides). Ctrl-C stops everything.

Any of DATABASE_URL (or POSTGRES_HOST), REDIS_URL (or REDIS_HOST) and
KAFKA_BROKERS that is set is used instead of the local server.

--roles runs only some parts of the service, as serve --roles does: e.g.
--roles api receives webhooks and serves the API while nothing publishes or
applies them (the outbox keeps them until a run with the relay).

Flags:
`

func cmdDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", devUsage, stderr)
	dataDir := fs.String("data", ".acmecrm", "folder for the local servers' data")
	rolesFlag := fs.String("roles", strings.Join(allRoles, ","), "comma-separated roles to run (as serve --roles)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("dev: unexpected argument %q", fs.Arg(0))}
	}
	roles, err := parseRoles(*rolesFlag)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockDir(dir, dirLockWait)
	if err != nil {
		return err
	}
	defer unlock()

	// Development defaults; anything the user set still wins.
	vars := map[string]string{
		"APP_ENV": "development", "LOG_FORMAT": "text",
		"ADMIN_USERNAME": demoAdminUsername, "ADMIN_PASSWORD": demoAdminPassword,
	}
	getenv = overlay(getenv, vars)
	opts := devstack.Options{
		Dir:             dir,
		Durable:         true,
		Postgres:        getenv("DATABASE_URL") == "" && getenv("POSTGRES_HOST") == "",
		Redis:           getenv("REDIS_URL") == "" && getenv("REDIS_HOST") == "",
		Kafka:           getenv("KAFKA_BROKERS") == "",
		PostgresPort:    5433,
		RedisPort:       6380,
		KafkaPort:       9092,
		KafkaPartitions: 6,
	}
	if p, err := strconv.Atoi(getenv("KAFKA_PARTITIONS")); err == nil && p > 0 {
		opts.KafkaPartitions = p
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "servers.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	opts.Log = logFile

	fmt.Fprintf(stdout, "acmecrm dev: starting local servers (data in %s, their logs in %s)\n", dir, logFile.Name())
	stack, err := devstack.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("start local servers: %w", err)
	}
	defer func() {
		fmt.Fprintln(stdout, "acmecrm dev: stopping local servers")
		if err := stack.Stop(); err != nil {
			fmt.Fprintln(stderr, "acmecrm dev:", err)
		}
	}()
	if stack.Postgres != nil {
		if err := stack.Postgres.EnsureDatabase(ctx, "acmecrm"); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
		vars["DATABASE_URL"] = stack.Postgres.URL("acmecrm")
	}
	if stack.Redis != nil {
		vars["REDIS_URL"] = stack.Redis.URL()
	}
	if stack.Kafka != nil {
		vars["KAFKA_BROKERS"] = strings.Join(stack.Kafka.Brokers(), ",")
	}

	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	n, err := postgres.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	// Listen before saying where: a taken port fails here, not after the
	// banner has told the user to go ahead.
	ln, err := listen(cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	host, _, _ := net.SplitHostPort(cfg.Addr)
	if host == "" {
		host = "localhost"
	}
	base := "http://" + net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	fmt.Fprintf(stdout, `acmecrm dev: applied %d migration(s)
  API        %s/api
  health     %s/health   ready: %s/readyz
  postgres   %s
  redis      %s
  kafka      %s
  admin      %s / %s   (demo account; set ADMIN_USERNAME/ADMIN_PASSWORD to change)
Try:
  curl -s -X POST %s/api/auth/login -H 'Content-Type: application/json' \
       -d '{"username":"%s","password":"%s"}'
Press Ctrl-C to stop.
`, n, base, base, base, redactURL(cfg.DatabaseURL), redactURL(cfg.RedisURL), strings.Join(cfg.Kafka.Brokers, ","),
		cfg.AdminUsername, shownPassword(cfg.AdminPassword), base, cfg.AdminUsername, shownPassword(cfg.AdminPassword))
	return serve(ctx, cfg, roles, newLogger(cfg, stdout), ln)
}

// shownPassword prints the demo password, never one the user chose.
func shownPassword(p string) string {
	if p == demoAdminPassword {
		return p
	}
	return "<ADMIN_PASSWORD>"
}

// dirLockWait is how long lockDir waits for the data folder's lock.
const dirLockWait = 3 * time.Second

// lockDir takes an exclusive lock on dir so that two local runs never share
// (and corrupt) the same data. A lock that is taken is tried again until
// wait has passed, because a lock just released may still look taken: the
// run before may be ending (stopping its servers), and a process forked
// while the lock was open shares it until it execs (the test binary runs
// local runs next to tests that start servers).
func lockDir(dir string, wait time.Duration) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%s is in use by another `acmecrm dev` (stop it first, or pass --data)", dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redactURL hides the password of a URL for display.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}
