package httpapi

import (
	"net/http"

	"github.com/acmecrm/acmecrm/internal/auth"
	"github.com/acmecrm/acmecrm/internal/ratelimit"
)

// addRoutes is the service's whole URL space, in one place.
func addRoutes(mux *http.ServeMux, opts Options) {
	started := opts.Now()
	g := &gate{auth: opts.Auth, limiter: opts.Limiter, limits: opts.Limits, proxies: opts.TrustedProxies, metrics: opts.Metrics, logger: opts.Logger, now: opts.Now}
	// Bodies are capped before anything reads them.
	body := func(h http.Handler) http.Handler { return limitBody(h, opts.MaxBodyBytes, opts.Now) }
	// Authenticated routes read paths and queries into SQL parameters: a
	// URL they cannot read as meant is refused first (after the token is
	// checked).
	text := func(h http.Handler) http.Handler { return checkURL(h, opts.Logger, opts.Now) }
	user := func(h http.Handler) http.Handler { return body(g.authenticated("", text(h))) }
	public := func(h http.Handler) http.Handler { return body(g.limitByIP(opts.Limits.Public, h)) }

	// Probes are not rate limited: orchestrators must always reach them.
	mux.Handle("GET /healthz", handleLiveness())
	mux.Handle("GET /readyz", handleReadiness(opts.Checks, opts.Logger, opts.Now))
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics.Handler())
	}
	if opts.ProbesOnly {
		mux.Handle("GET /health", handleHealth(opts.Version, started, opts.Now))
		mux.Handle("/", handleUnmatched(mux, opts.Now))
		return
	}
	mux.Handle("GET /health", public(handleHealth(opts.Version, started, opts.Now)))
	mux.Handle("GET /openapi.json", public(handleStatic("application/json", OpenAPI)))
	mux.Handle("GET /docs", public(handleStatic("text/html; charset=utf-8", docsPage)))

	// Authentication (SPEC §5).
	mux.Handle("POST /api/auth/login", body(g.limitByIP(opts.Limits.Login, handleLogin(opts.Store, opts.Auth, opts.PasswordChecks, opts.Logger, opts.Now))))
	mux.Handle("POST /api/auth/refresh", user(handleRefresh(opts.Store, opts.Auth, opts.Logger, opts.Now)))
	mux.Handle("POST /api/auth/logout", user(handleLogout(opts.Auth, opts.Logger, opts.Now)))
	mux.Handle("POST /api/auth/logout-all", user(handleLogoutAll(opts.Auth, opts.Logger, opts.Now)))

	// Contacts (SPEC §6).
	c := &contactsAPI{store: opts.Store, sim: opts.Simulator, searches: opts.Searches, logger: opts.Logger, now: opts.Now}
	mux.Handle("GET /api/contacts", user(c.list()))
	mux.Handle("POST /api/contacts", user(c.create()))
	mux.Handle("POST /api/contacts/acme", user(c.upsertAcme()))
	mux.Handle("GET /api/contacts/source/{source}/{sourceId}", user(c.getBySource()))
	mux.Handle("GET /api/contacts/{id}", user(c.get()))
	mux.Handle("PUT /api/contacts/{id}", user(c.replace()))
	mux.Handle("PATCH /api/contacts/{id}", user(c.patch()))
	mux.Handle("DELETE /api/contacts/{id}", user(c.delete()))

	// Webhooks (SPEC §3): the receiver is authenticated by its signature and
	// limited per source IP (in memory: a generous flood guard that should
	// not cost a Redis round trip per event); the audit API needs a token.
	mux.Handle("POST /api/webhooks", countWebhooks(limitBody(g.limitLocally(ratelimit.NewLocal(), opts.Limits.Webhook,
		handleWebhook(opts.Verifier, opts.Parser, opts.Ingest, opts.Metrics, opts.Tracing.Tracer("httpapi"), opts.Logger, opts.Now)),
		opts.WebhookMaxBodyBytes, opts.Now), opts.Metrics))
	mux.Handle("GET /api/webhooks", user(handleListWebhooks(opts.Store, false, opts.AuditTypeWindow, opts.Logger, opts.Now)))
	mux.Handle("GET /api/webhooks/pending", user(handleListWebhooks(opts.Store, true, opts.AuditTypeWindow, opts.Logger, opts.Now)))
	mux.Handle("GET /api/webhooks/{eventId}", user(handleGetWebhook(opts.Store, opts.Logger, opts.Now)))

	// Event tracking (SPEC §9), from durable state.
	mux.Handle("GET /api/metrics/events", user(handleEventMetrics(opts.Store, opts.EventStatsMinAge, opts.Logger, opts.Now)))

	// Administration (admin role).
	admin := func(h http.Handler) http.Handler { return body(g.authenticated(auth.RoleAdmin, text(h))) }
	mux.Handle("GET /api/admin/users", admin(handleListUsers(opts.Store, opts.Logger, opts.Now)))
	mux.Handle("GET /api/admin/dead-letters", admin(handleListDeadLetters(opts.Store, opts.Logger, opts.Now)))
	mux.Handle("POST /api/admin/dead-letters/{id}/replay", admin(handleReplayDeadLetter(opts.Store, opts.Logger, opts.Now)))
	mux.Handle("POST /api/admin/dead-letters/replay", admin(handleReplayDeadLetters(opts.Store, opts.Logger, opts.Now)))

	// The simulator plays AcmeCRM (SPEC §7, admin role).
	mux.Handle("POST /api/simulator/webhooks", admin(handleSimulate(opts.Simulator, opts.Logger, opts.Now)))
	mux.Handle("GET /api/simulator/webhooks/history", admin(handleSimulatorHistory(opts.Store, opts.Logger, opts.Now)))
	mux.Handle("GET /api/simulator/webhooks/history/{id}", admin(handleSimulatorDelivery(opts.Store, opts.Logger, opts.Now)))

	// Everything else: 404, or 405 with Allow when the path exists under
	// another method.
	mux.Handle("/", handleUnmatched(mux, opts.Now))
}
