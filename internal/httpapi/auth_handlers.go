package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/auth"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

type userJSON struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Role     string `json:"role"`
}

type tokenJSON struct {
	Token     string   `json:"token"`
	TokenType string   `json:"tokenType"`
	ExpiresIn int64    `json:"expiresIn"`
	User      userJSON `json:"user"`
}

func tokenResponse(tok string, id auth.Identity, u postgres.User, now time.Time) tokenJSON {
	return tokenJSON{
		Token: tok, TokenType: "Bearer",
		ExpiresIn: int64(id.ExpiresAt.Sub(now).Round(time.Second).Seconds()),
		User:      userJSON{ID: u.ID, Username: u.Username, Role: u.Role},
	}
}

var errBadCredentials = acmecrm.Errorf(acmecrm.KindUnauthorized, "INVALID_CREDENTIALS", "invalid username or password")

// handleLogin exchanges a username and password for a token. A wrong
// username and a wrong password get the same answer in similar time. The
// password checks take turns (checks), so that logins never take more
// than their share of the cores from the receiver.
func handleLogin(store *postgres.Store, a *auth.Service, checks *auth.PasswordChecks, logger *slog.Logger, now func() time.Time) http.Handler {
	type request struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decode(r, &req); err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		var p acmecrm.Problems
		if req.Username == "" || len(req.Username) > 255 {
			p.Add("username", "is required (at most 255 characters)")
		}
		if req.Password == "" || len(req.Password) > 72 {
			p.Add("password", "is required (at most 72 bytes)")
		}
		if err := p.Err("invalid login request"); err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		u, err := store.UserByUsername(r.Context(), req.Username)
		if err != nil && acmecrm.ErrorKind(err) != acmecrm.KindNotFound {
			writeError(w, r, logger, now, err)
			return
		}
		ok, err := checks.Check(r.Context(), u.PasswordHash, req.Password)
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		if !ok {
			writeError(w, r, logger, now, errBadCredentials)
			return
		}
		tok, id, err := a.Issue(r.Context(), u.ID, u.Role)
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		encode(w, http.StatusOK, tokenResponse(tok, id, u, now()))
	})
}

// handleRefresh swaps the caller's token for a new one and revokes the old.
func handleRefresh(store *postgres.Store, a *auth.Service, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		old := identity(r.Context())
		u, err := store.UserByID(r.Context(), old.UserID)
		if acmecrm.ErrorKind(err) == acmecrm.KindNotFound {
			err = acmecrm.Errorf(acmecrm.KindUnauthorized, "INVALID_TOKEN", "the token's user no longer exists")
		}
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		tok, id, err := a.Rotate(r.Context(), old, u.Role)
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		encode(w, http.StatusOK, tokenResponse(tok, id, u, now()))
	})
}

// handleLogout revokes the caller's token.
func handleLogout(a *auth.Service, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.Revoke(r.Context(), identity(r.Context())); err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		encode(w, http.StatusOK, map[string]string{"message": "Logged out successfully"})
	})
}

// handleLogoutAll revokes every token of the caller's user.
func handleLogoutAll(a *auth.Service, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.RevokeAll(r.Context(), identity(r.Context()).UserID); err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		encode(w, http.StatusOK, map[string]string{"message": "Logged out from all sessions"})
	})
}

// isVersionConflict unwraps a store conflict.
func isVersionConflict(err error) (*postgres.VersionConflict, bool) {
	var vc *postgres.VersionConflict
	ok := errors.As(err, &vc)
	return vc, ok
}
