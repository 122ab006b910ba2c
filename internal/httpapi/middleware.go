package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"sort"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/telemetry"
)

type ctxKey int

const routeKey ctxKey = iota

// requestID returns the id of the request ctx belongs to.
func requestID(ctx context.Context) string { return telemetry.RequestID(ctx) }

// validRequestID accepts a caller's X-Request-ID only if it is short and
// plain, so it cannot inject anything into logs or headers.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withRequestID gives every request an id: the caller's X-Request-ID when
// valid, else a new one. It is echoed on every response.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(telemetry.WithRequestID(r.Context(), id)))
	})
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// route carries the matched route pattern from the mux back out to the
// middleware that runs around it (requests are copied on the way in, so the
// mux's r.Pattern is not visible outside), and the error code of an error
// answer.
type route struct{ pattern, errCode string }

// setErrCode records the error envelope's code for the middleware.
func setErrCode(ctx context.Context, code string) {
	if rt, ok := ctx.Value(routeKey).(*route); ok {
		rt.errCode = code
	}
}

// recordRoute runs the mux and records which pattern served the request.
func recordRoute(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if rt, ok := r.Context().Value(routeKey).(*route); ok {
			rt.pattern = r.Pattern
		}
	})
}

// routeLabel names a pattern for logs and metrics without unbounded values.
func routeLabel(pattern string) string {
	if pattern == "" || pattern == "/" {
		return "unmatched"
	}
	return pattern
}

// observe runs each request in a server span (continuing the caller's
// traceparent), counts it in the metrics by route pattern, and writes one
// structured access-log line.
func observe(next http.Handler, logger *slog.Logger, m *telemetry.Metrics, tracer trace.Tracer, proxies TrustedProxies) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		done := m.HTTPStarted()
		defer done()
		ctx := telemetry.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		rt := &route{}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(ctx, routeKey, rt)))
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		d := time.Since(start)
		label := routeLabel(rt.pattern)
		m.HTTPRequest(r.Method, label, sw.status, d)
		span.SetName(label)
		span.SetAttributes(attribute.String("http.route", label), attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
		level := slog.LevelInfo
		if sw.status >= 500 {
			level = slog.LevelError
		}
		if !logger.Enabled(ctx, level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("route", label),
			slog.Int("status", sw.status),
			slog.Int64("bytes", sw.bytes),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			slog.String("remote", r.RemoteAddr),
		}
		if len(proxies) > 0 { // behind proxies, also the client they name
			attrs = append(attrs, slog.String("client", proxies.clientIP(r)))
		}
		if rt.errCode != "" {
			attrs = append(attrs, slog.String("error_code", rt.errCode))
		}
		logger.LogAttrs(ctx, level, "http request", attrs...)
	})
}

// recoverPanics turns a handler panic into a logged 500 with the standard
// envelope, so one bad request never takes the process down.
func recoverPanics(next http.Handler, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			logger.ErrorContext(r.Context(), "panic serving request", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
				return // headers already sent; nothing more can be said
			}
			writeEnvelope(w, r, now, acmecrm.KindInternal, "", "internal server error", nil)
		}()
		next.ServeHTTP(w, r)
	})
}

// withTimeout bounds each request's context; handlers that give up on it
// answer 504 through classify.
func withTimeout(next http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// limitBody caps request bodies at max bytes: a declared Content-Length
// above it is refused at once with 413, and a longer streamed body fails its
// read with *http.MaxBytesError, which classify maps to 413 as well.
func limitBody(next http.Handler, max int64, now func() time.Time) http.Handler {
	if max <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			w.Header().Set("Connection", "close")
			writeEnvelope(w, r, now, acmecrm.KindTooLarge, "PAYLOAD_TOO_LARGE",
				fmt.Sprintf("request body exceeds %d bytes", max), nil)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}

// checkURL answers 400 for a request whose path or query a handler cannot
// read as meant, naming each parameter, before a handler passes it on:
//   - text PostgreSQL cannot compare or store (not UTF-8, or U+0000, both
//     easy to send as %FF or %00), which would fail in a query as a 500;
//   - a query string that is not well formed (a bad %-escape, or `;` as a
//     separator): Go drops such pairs, so `?search=%zz` would list every
//     contact instead of saying what is wrong;
//   - a parameter given more than once: every parameter takes one value,
//     and picking one of two silently is a guess.
func checkURL(next http.Handler, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p acmecrm.Problems
		if !acmecrm.ValidText(r.URL.Path) {
			p.Add("(path)", "must be UTF-8 text without NUL characters")
		}
		// One parse: the pairs it could read, and the first it could not.
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			p.Add("(query)", "is not a well-formed query string: %v", err)
		}
		names := make([]string, 0, len(q))
		for name := range q {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if !acmecrm.ValidText(name) {
				p.Add("(query)", "parameter names must be UTF-8 text without NUL characters")
				continue
			}
			if len(q[name]) > 1 {
				p.Add(name, "must be given once")
			}
			for _, v := range q[name] {
				if !acmecrm.ValidText(v) {
					p.Add(name, "must be UTF-8 text without NUL characters")
					break
				}
			}
		}
		if err := p.Err("invalid request URL"); err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}
