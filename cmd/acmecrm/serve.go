package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/acmecrm/acmecrm/internal/auth"
	"github.com/acmecrm/acmecrm/internal/consumer"
	"github.com/acmecrm/acmecrm/internal/httpapi"
	"github.com/acmecrm/acmecrm/internal/ingest"
	"github.com/acmecrm/acmecrm/internal/kafka"
	"github.com/acmecrm/acmecrm/internal/outbox"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/ratelimit"
	"github.com/acmecrm/acmecrm/internal/retention"
	"github.com/acmecrm/acmecrm/internal/simulator"
	"github.com/acmecrm/acmecrm/internal/telemetry"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

const serveUsage = `Usage: acmecrm serve [--roles api,relay,consumer,simulator]

Runs the service. All roles run in one process by default; give a subset to
scale them separately. Configuration comes from the environment.

Flags:
`

// allRoles are the parts of the service one process can run.
var allRoles = []string{"api", "relay", "consumer", "simulator"}

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", serveUsage, stderr)
	rolesFlag := fs.String("roles", strings.Join(allRoles, ","), "comma-separated roles to run")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("serve: unexpected argument %q", fs.Arg(0))}
	}
	roles, err := parseRoles(*rolesFlag)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stdout)
	return serve(ctx, cfg, roles, logger, nil)
}

func parseRoles(s string) ([]string, error) {
	var roles []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !slices.Contains(allRoles, r) {
			return nil, usageError{fmt.Sprintf("unknown role %q in --roles (roles: %s)", r, strings.Join(allRoles, ", "))}
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return nil, usageError{"--roles: no role given"}
	}
	return roles, nil
}

// newLogger logs structured lines; those logged with a context carry its
// request id, trace id and span id.
func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(telemetry.NewLogHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(w, opts)))
}

// deps are the connections every role shares.
type deps struct {
	pool  *pgxpool.Pool
	redis *redis.Client
	kafka *kgo.Client
}

// connect opens PostgreSQL, Redis and Kafka clients and checks each answers,
// so a misconfigured deployment fails at start-up, loudly.
func connect(ctx context.Context, cfg config, kafkaOpts ...kgo.Opt) (*deps, error) {
	d := &deps{}
	var err error
	if d.pool, err = openDatabase(ctx, cfg.DatabaseURL, cfg.PostgresMaxConn); err != nil {
		return nil, err
	}
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		d.close()
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	d.redis = redis.NewClient(ropts)
	if err := d.redis.Ping(ctx).Err(); err != nil {
		d.close()
		return nil, fmt.Errorf("connect to redis %s: %w", ropts.Addr, err)
	}
	if d.kafka, err = kafka.NewClient(cfg.Kafka, kafkaOpts...); err != nil {
		d.close()
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := kafka.Ping(pctx, d.kafka); err != nil {
		d.close()
		return nil, fmt.Errorf("connect to kafka %s: %w", strings.Join(cfg.Kafka.Brokers, ","), err)
	}
	return d, nil
}

// openDatabase opens a pool on a database whose schema this build can use,
// or says which command to run.
func openDatabase(ctx context.Context, url string, conns int) (*pgxpool.Pool, error) {
	pool, err := postgres.Open(ctx, url, conns)
	if err != nil {
		return nil, err
	}
	if err := postgres.CheckSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func (d *deps) close() {
	if d.kafka != nil {
		d.kafka.Close()
	}
	if d.redis != nil {
		_ = d.redis.Close()
	}
	if d.pool != nil {
		d.pool.Close()
	}
}

func newAuth(cfg config, rdb *redis.Client) *auth.Service {
	return auth.New(auth.Config{
		Secret: []byte(cfg.JWTSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		TTL: cfg.JWTExpiration, KeyPrefix: cfg.RedisKeyPrefix,
	}, rdb)
}

// ensureAdmin creates the first admin from ADMIN_USERNAME/ADMIN_PASSWORD
// when that user does not exist yet; an existing user is left as it is.
func ensureAdmin(ctx context.Context, store *postgres.Store, cfg config, logger *slog.Logger) error {
	if cfg.AdminUsername == "" {
		return nil
	}
	hash, err := auth.HashPassword(cfg.AdminPassword)
	if err != nil {
		return err
	}
	created, err := store.EnsureUser(ctx, cfg.AdminUsername, hash, auth.RoleAdmin)
	if err != nil {
		return fmt.Errorf("create admin user: %w", err)
	}
	if created {
		logger.Info("created admin user", "username", cfg.AdminUsername)
	}
	return nil
}

// serve runs the given roles until ctx is cancelled, then shuts down
// gracefully: stop accepting, finish in-flight requests, close clients. It
// serves on ln, or when ln is nil listens on cfg.Addr once its clients are
// connected.
func serve(ctx context.Context, cfg config, roles []string, logger *slog.Logger, ln net.Listener) error {
	debug.SetGCPercent(cfg.GCPercent)
	var metrics *telemetry.Metrics
	if cfg.Metrics {
		metrics = telemetry.NewMetrics(version)
	}
	tracing, err := telemetry.NewTracing(ctx, cfg.Tracing)
	if err != nil {
		return err
	}
	defer func() {
		// Last: flush the spans of everything that stopped before.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tracing.Shutdown(fctx); err != nil {
			logger.Warn("flushing spans failed", "err", err)
		}
	}()
	var kafkaOpts []kgo.Opt
	if hooks := telemetry.KafkaHooks(metrics, tracing, "producer"); len(hooks) > 0 {
		kafkaOpts = append(kafkaOpts, kgo.WithHooks(hooks...))
	}
	d, err := connect(ctx, cfg, kafkaOpts...)
	if err != nil {
		return err
	}
	defer d.close()

	store := postgres.NewStore(d.pool, postgres.StoreOptions{ContactsTopic: cfg.ContactsTopic})
	metrics.WatchOutbox(func(ctx context.Context) ([]telemetry.Backlog, error) {
		bs, err := store.OutboxBacklog(ctx)
		out := make([]telemetry.Backlog, len(bs))
		for i, b := range bs {
			out[i] = telemetry.Backlog{Topic: b.Topic, Rows: b.Rows, OldestAge: b.OldestAge}
		}
		return out, err
	}, cfg.EventsTopic, cfg.ContactsTopic)
	if err := ensureAdmin(ctx, store, cfg, logger); err != nil {
		return err
	}
	const day = 24 * time.Hour
	parts := int32(cfg.KafkaPartitions)
	if err := kafka.EnsureTopics(ctx, d.kafka,
		kafka.Topic{Name: cfg.EventsTopic, Partitions: parts, Retention: 7 * day},
		kafka.Topic{Name: cfg.DLQTopic, Partitions: parts, Retention: 30 * day},
		kafka.Topic{Name: cfg.ContactsTopic, Partitions: parts, Retention: 7 * day}); err != nil {
		return err
	}
	// The relay and the consumer stop after the HTTP server (see below).
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var workers sync.WaitGroup
	defer func() { stopWork(); workers.Wait() }()
	start := func(name string, run func(context.Context) error) {
		workers.Add(1)
		go func() {
			defer workers.Done()
			if err := run(workCtx); err != nil {
				logger.Error(name+" stopped", "err", err)
			}
		}()
	}
	if slices.Contains(roles, "relay") {
		start("outbox relay", outbox.New(store, d.kafka, logger, outbox.Options{Metrics: metrics}).Run)
		if cfg.Retention > 0 {
			start("retention", retention.New(store, logger, retention.Options{Retention: cfg.Retention, Metrics: metrics}).Run)
		}
		start("kept counts", compactCounts(store, logger, countsEvery))
	}
	if slices.Contains(roles, "consumer") {
		c, err := consumer.New(cfg.Kafka, store, logger, consumer.Options{
			Group: cfg.ConsumerGroup, Topic: cfg.EventsTopic, DLQTopic: cfg.DLQTopic, MaxRetries: cfg.MaxRetries,
			SessionTimeout: cfg.SessionTimeout, Metrics: metrics, Tracing: tracing})
		if err != nil {
			return err
		}
		start("consumer", c.Run)
	}
	parser, err := webhook.NewParser(cfg.WebhookMaxAge)
	if err != nil {
		return err
	}
	// The batcher outlives the HTTP server: requests in flight during the
	// graceful shutdown still need their commits.
	batcher := ingest.New(store, ingest.Options{Topic: cfg.EventsTopic, Writers: cfg.IngestWriters, MaxBatch: cfg.IngestMaxBatch,
		Metrics: metrics})
	ingestCtx, stopIngest := context.WithCancel(context.WithoutCancel(ctx))
	ingestDone := make(chan struct{})
	go func() { _ = batcher.Run(ingestCtx); close(ingestDone) }()
	defer func() { stopIngest(); <-ingestDone }()

	if ln == nil {
		if ln, err = listen(cfg.Addr); err != nil {
			return err
		}
	}
	sim, err := newSimulator(cfg, store, logger, metrics, ln.Addr().(*net.TCPAddr).Port)
	if err != nil {
		_ = ln.Close()
		return err
	}
	if slices.Contains(roles, "simulator") {
		start("simulator", sim.Run)
	}
	handler := httpapi.NewServer(httpapi.Options{
		Logger:              logger,
		Version:             version,
		MaxBodyBytes:        cfg.MaxBodyBytes,
		WebhookMaxBodyBytes: cfg.WebhookMaxBody,
		RequestTimeout:      cfg.RequestTimeout,
		Verifier:            &webhook.Verifier{Secrets: cfg.WebhookSecrets, MaxAge: cfg.WebhookMaxAge, Now: time.Now},
		Parser:              parser,
		Ingest:              batcher,
		Simulator:           sim,
		Store:               store,
		Auth:                newAuth(cfg, d.redis),
		Limiter: ratelimit.New(d.redis, cfg.RedisKeyPrefix, func(policy string, err error) {
			logger.Warn("rate limiter fell back to memory", "policy", policy, "err", err)
		}),
		Limits:         cfg.Limits,
		Searches:       httpapi.SearchTurns(cfg.Searches, 2*time.Second),
		TrustedProxies: cfg.TrustedProxies,
		ProbesOnly:     !slices.Contains(roles, "api"),
		Metrics:        metrics,
		Tracing:        tracing,
		Checks: []httpapi.Check{
			{Name: "postgres", Check: d.pool.Ping},
			{Name: "redis", Check: func(ctx context.Context) error { return d.redis.Ping(ctx).Err() }},
			{Name: "kafka", Check: func(ctx context.Context) error { return kafka.Ping(ctx, d.kafka) }},
		},
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.RequestTimeout,
		WriteTimeout:      cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	logger.Info("serving", "addr", ln.Addr().String(), "roles", strings.Join(roles, ","), "version", version, "env", cfg.Env)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// countsEvery is how often the relay role folds the deltas of the kept
// counts: the event counts (migration 00010), the contact totals (00012),
// the outbox backlog (00014) and the dead letters (00017). The triggers
// write a few rows per statement that changes webhook states, moves
// contacts between groups, queues or publishes outbox rows or writes dead
// letters, ~1,000–2,000 a second at full speed.
const countsEvery = 10 * time.Second

// compactCounts folds the kept counts' deltas every interval, so that
// reading them stays cheap. Instances may fold side by side.
func compactCounts(store *postgres.Store, logger *slog.Logger, every time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			if _, err := store.CompactCounts(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("kept counts: folding failed; trying again later", "err", err, "retry_in", every.String())
			}
		}
	}
}

// listen opens the HTTP listener; the error says how to pick another
// address when the port is taken.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("listen on %s: %w (another process uses the port; set PORT or HTTP_ADDR to choose another)", addr, err)
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// newSimulator builds the simulator for a service listening on port: it
// signs with the current webhook secret, so its deliveries pass this
// service's receiver.
func newSimulator(cfg config, store *postgres.Store, logger *slog.Logger, metrics *telemetry.Metrics, port int) (*simulator.Simulator, error) {
	target, targets, err := cfg.Simulator.resolve(port)
	if err != nil {
		return nil, err
	}
	return simulator.New(store, simulator.Options{
		Key:           cfg.WebhookSecrets[0].Key,
		Targets:       targets,
		DefaultTarget: target,
		AutoTrigger:   cfg.Simulator.AutoTrigger,
		Retry:         cfg.Simulator.Retry,
		Timeout:       cfg.Simulator.Timeout,
		UserAgent:     "AcmeCRM-Simulator/" + version,
		Logger:        logger,
		Metrics:       metrics,
	}), nil
}
