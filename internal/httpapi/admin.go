package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/acmecrm/acmecrm/internal/postgres"
)

// handleListUsers lists the API's users (admin only).
func handleListUsers(store *postgres.Store, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		users, err := store.Users(r.Context())
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		out := make([]userJSON, len(users))
		for i, u := range users {
			out[i] = userJSON{ID: u.ID, Username: u.Username, Role: u.Role}
		}
		encode(w, http.StatusOK, map[string]any{"data": out})
	})
}
