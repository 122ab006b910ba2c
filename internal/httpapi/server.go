// Package httpapi is the service's HTTP face: the server, every route (in
// routes.go), the middleware, the handlers, and the one table that turns
// error kinds into HTTP status codes and the SPEC §8 error envelope. It is
// the only package that knows about status codes.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/acmecrm/acmecrm/internal/auth"
	"github.com/acmecrm/acmecrm/internal/ingest"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/ratelimit"
	"github.com/acmecrm/acmecrm/internal/simulator"
	"github.com/acmecrm/acmecrm/internal/telemetry"
	"github.com/acmecrm/acmecrm/internal/turns"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

// Check is a readiness probe of one dependency.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Options are the server's settings and dependencies.
type Options struct {
	Logger *slog.Logger
	// Version is reported by /health.
	Version string
	// MaxBodyBytes caps the REST API's request bodies (413 above it);
	// WebhookMaxBodyBytes the receiver's.
	MaxBodyBytes        int64
	WebhookMaxBodyBytes int64
	// RequestTimeout bounds each request's context (504 when exceeded).
	RequestTimeout time.Duration
	// Checks are run by /readyz.
	Checks []Check
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// Store, Auth and Limiter serve the API routes; Limits are its rate
	// limits.
	Store   *postgres.Store
	Auth    *auth.Service
	Limiter *ratelimit.Limiter
	Limits  Limits
	// PasswordChecks bounds the logins' password checks (nil: half the
	// cores, at least one, and a wait of at most 2 s for a turn).
	PasswordChecks *auth.PasswordChecks
	// Searches bounds the contact lists whose cost grows with the table
	// (see SearchTurns; nil: SearchTurns(0, 2 s)).
	Searches *turns.Turns
	// EventStatsMinAge is the least time an answer of GET
	// /api/metrics/events is reused (default 1 s; it is reused ten times
	// as long as it took to compute, if that is longer).
	EventStatsMinAge time.Duration
	// AuditTypeWindow is how many stored webhooks (by id) one page of GET
	// /api/webhooks filtered by type alone looks at (default 100,000).
	AuditTypeWindow int64
	// TrustedProxies are believed about the client's address
	// (X-Forwarded-For), which the per-IP limits count.
	TrustedProxies TrustedProxies

	// ProbesOnly serves only /health, /healthz and /readyz (a process
	// running the relay or consumer role without the api role).
	ProbesOnly bool

	// Verifier, Parser and Ingest serve the webhook receiver.
	Verifier *webhook.Verifier
	Parser   *webhook.Parser
	Ingest   *ingest.Batcher

	// Simulator serves /api/simulator/* and the auto-trigger.
	Simulator *simulator.Simulator

	// Metrics are served at /metrics and fed by every request (nil: no
	// /metrics); Tracing traces every request (nil: off).
	Metrics *telemetry.Metrics
	Tracing *telemetry.Tracing
}

// NewServer returns the service's root handler: every route of routes.go
// behind the middleware chain.
func NewServer(opts Options) http.Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Logger = slog.New(telemetry.NewLogHandler(opts.Logger.Handler()))
	if opts.Tracing == nil {
		opts.Tracing = telemetry.Disabled()
	}
	if opts.PasswordChecks == nil {
		opts.PasswordChecks = auth.NewPasswordChecks(runtime.GOMAXPROCS(0)/2, 2*time.Second)
	}
	if opts.Searches == nil {
		opts.Searches = SearchTurns(0, 2*time.Second)
	}
	mux := http.NewServeMux()
	addRoutes(mux, opts)
	var h http.Handler = recordRoute(mux)
	h = withTimeout(h, opts.RequestTimeout)
	h = recoverPanics(h, opts.Logger, opts.Now)
	h = observe(h, opts.Logger, opts.Metrics, opts.Tracing.Tracer("httpapi"), opts.TrustedProxies)
	h = withRequestID(h)
	return h
}
