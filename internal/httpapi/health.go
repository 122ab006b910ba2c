package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/acmecrm/acmecrm"
)

// handleHealth is the original service's cheap health answer; it touches no
// dependency.
func handleHealth(version string, started time.Time, now func() time.Time) http.Handler {
	type body struct {
		Status    string  `json:"status"`
		Timestamp string  `json:"timestamp"`
		Uptime    float64 `json:"uptime"`
		Version   string  `json:"version"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := now()
		encode(w, http.StatusOK, body{
			Status:    "ok",
			Timestamp: t.UTC().Format(time.RFC3339Nano),
			Uptime:    t.Sub(started).Seconds(),
			Version:   version,
		})
	})
}

// handleLiveness says the process is serving requests.
func handleLiveness() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// readinessTimeout bounds each dependency probe so that /readyz answers
// quickly even when a dependency hangs.
const readinessTimeout = 2 * time.Second

// handleReadiness probes every dependency concurrently: 200 when all answer,
// 503 with the failing ones named otherwise. Causes are logged, not shown.
func handleReadiness(checks []Check, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readinessTimeout)
		defer cancel()
		results := make(map[string]string, len(checks))
		var mu sync.Mutex
		var wg sync.WaitGroup
		failed := false
		for _, c := range checks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.Check(ctx)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed = true
					results[c.Name] = "unavailable"
					logger.WarnContext(ctx, "readiness check failed", "check", c.Name, "err", err)
					return
				}
				results[c.Name] = "ok"
			}()
		}
		wg.Wait()
		if failed {
			w.Header().Set("Retry-After", "5")
			writeEnvelope(w, r, now, acmecrm.KindUnavailable, "SERVICE_UNAVAILABLE",
				"a dependency is unavailable", map[string]any{"checks": results})
			return
		}
		encode(w, http.StatusOK, map[string]any{"status": "ready", "checks": results})
	})
}
