package httpapi

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/auth"
	"github.com/acmecrm/acmecrm/internal/ratelimit"
	"github.com/acmecrm/acmecrm/internal/telemetry"
)

// Limits are the rate-limit policies of SPEC §5.
type Limits struct {
	API     ratelimit.Policy // per authenticated user on /api/*
	Login   ratelimit.Policy // per client IP on POST /api/auth/login
	Public  ratelimit.Policy // per client IP on other unauthenticated routes
	Webhook ratelimit.Policy // per source IP on the webhook receiver
}

const identityKey ctxKey = 100

// identity returns the caller a request was authenticated as.
func identity(ctx context.Context) auth.Identity {
	id, _ := ctx.Value(identityKey).(auth.Identity)
	return id
}

// setRateHeaders writes the IETF RateLimit-* headers and the original's
// X-RateLimit-* ones (whose Reset is a Unix time, as express-rate-limit sent).
func setRateHeaders(w http.ResponseWriter, d ratelimit.Decision, now time.Time) {
	h := w.Header()
	reset := int64(math.Ceil(d.ResetAfter.Seconds()))
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", strconv.FormatInt(reset, 10))
	h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(d.ResetAfter).Unix()+1, 10))
}

// deny answers 429 with Retry-After.
func deny(w http.ResponseWriter, r *http.Request, now func() time.Time, d ratelimit.Decision) {
	retry := int64(math.Ceil(d.RetryAfter.Seconds()))
	if retry < 1 {
		retry = 1
	}
	w.Header().Set("Retry-After", strconv.FormatInt(retry, 10))
	writeEnvelope(w, r, now, acmecrm.KindRateLimited, "TOO_MANY_REQUESTS", "too many requests; retry later",
		map[string]any{"retryAfterSeconds": retry})
}

// gate holds what the access-control middleware needs.
type gate struct {
	auth    *auth.Service
	limiter *ratelimit.Limiter
	limits  Limits
	proxies TrustedProxies
	metrics *telemetry.Metrics
	logger  *slog.Logger
	now     func() time.Time
}

// limitByIP rate-limits an unauthenticated route per client IP.
func (g *gate) limitByIP(p ratelimit.Policy, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := g.limiter.Allow(r.Context(), p, g.proxies.clientKey(r))
		g.metrics.RateLimit(p.Name, d.Allowed, d.Fallback)
		setRateHeaders(w, d, g.now())
		if !d.Allowed {
			deny(w, r, g.now, d)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitLocally rate-limits per client IP in process memory (the webhook
// receiver's flood guard; see docs/DECISIONS.md).
func (g *gate) limitLocally(lim *ratelimit.Local, p ratelimit.Policy, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := lim.Allow(p, g.proxies.clientKey(r))
		g.metrics.RateLimit(p.Name, d.Allowed, true) // in memory by design
		setRateHeaders(w, d, g.now())
		if !d.Allowed {
			deny(w, r, g.now, d)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer extracts the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// authenticated admits requests with a live token and within the user's
// rate limit — checked together in one Redis round trip — and, when role is
// not empty, of that role. Requests without a usable token are limited per
// IP before they are refused, so tokens cannot be guessed at full speed.
func (g *gate) authenticated(role string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			g.refuse(w, r, acmecrm.Errorf(acmecrm.KindUnauthorized, "INVALID_TOKEN", "missing bearer token (Authorization: Bearer <token>)"))
			return
		}
		var pending *ratelimit.Pending
		id, err := g.auth.Authenticate(r.Context(), tok, func(pipe redis.Pipeliner, id auth.Identity) {
			pending = g.limiter.Queue(r.Context(), pipe, g.limits.API, "user:"+id.UserID)
		})
		if err != nil {
			if acmecrm.ErrorKind(err) == acmecrm.KindUnauthorized && pending == nil {
				g.refuse(w, r, err) // rejected before Redis: count it per IP
				return
			}
			writeError(w, r, g.logger, g.now, err)
			return
		}
		d := pending.Decision()
		g.metrics.RateLimit(g.limits.API.Name, d.Allowed, d.Fallback)
		setRateHeaders(w, d, g.now())
		if !d.Allowed {
			deny(w, r, g.now, d)
			return
		}
		if role != "" && id.Role != role {
			writeEnvelope(w, r, g.now, acmecrm.KindForbidden, "INSUFFICIENT_PERMISSIONS",
				"this action needs the "+role+" role", nil)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey, id)))
	})
}

// refuse answers 401 for a request without a usable token, after counting
// it against the client IP's public limit (429 once that is spent).
func (g *gate) refuse(w http.ResponseWriter, r *http.Request, err error) {
	d := g.limiter.Allow(r.Context(), g.limits.Public, g.proxies.clientKey(r))
	g.metrics.RateLimit(g.limits.Public.Name, d.Allowed, d.Fallback)
	setRateHeaders(w, d, g.now())
	if !d.Allowed {
		deny(w, r, g.now, d)
		return
	}
	writeError(w, r, g.logger, g.now, err)
}
