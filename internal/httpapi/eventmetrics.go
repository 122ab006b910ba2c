package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/acmecrm/acmecrm/internal/postgres"
)

// handleEventMetrics is GET /api/metrics/events: the event tracking of
// SPEC §9, read from the database (correct across restarts and instances).
func handleEventMetrics(store *postgres.Store, logger *slog.Logger, now func() time.Time) http.Handler {
	type stats struct {
		postgres.EventStats
		GeneratedAt time.Time `json:"generatedAt"`
	}
	type body struct {
		Data stats `json:"data"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := store.EventStats(r.Context())
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		encode(w, http.StatusOK, body{Data: stats{EventStats: st, GeneratedAt: now().UTC()}})
	})
}
