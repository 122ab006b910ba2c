package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

// handleListDeadLetters lists dead letters (admin), newest first, a page
// at a time: ?eventType=&notReplayed=&limit=&cursor=.
func handleListDeadLetters(store *postgres.Store, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := deadLetterFilter(r)
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		dls, err := store.DeadLetters(r.Context(), f)
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		if dls == nil {
			dls = []postgres.DeadLetter{}
		}
		var next *string
		if len(dls) == f.Limit {
			c := encodeCursor(dls[len(dls)-1].ID)
			next = &c
		}
		encode(w, http.StatusOK, map[string]any{"data": dls, "nextCursor": next})
	})
}

func deadLetterFilter(r *http.Request) (postgres.DeadLetterFilter, error) {
	q := r.URL.Query()
	var p acmecrm.Problems
	f := postgres.DeadLetterFilter{EventType: q.Get("eventType"), Limit: 100}
	switch q.Get("notReplayed") {
	case "", "false":
	case "true":
		f.NotReplayed = true
	default:
		p.Add("notReplayed", "must be true or false")
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			p.Add("limit", "must be a whole number from 1 to 1000")
		}
		f.Limit = n
	}
	f.Before = cursorParam(q, &p)
	return f, p.Err("invalid query parameters")
}

// handleReplayDeadLetter replays one dead letter (admin).
func handleReplayDeadLetter(store *postgres.Store, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id < 1 {
			var p acmecrm.Problems
			p.Add("id", "must be a dead letter id")
			writeError(w, r, logger, now, p.Err("invalid dead letter id"))
			return
		}
		n, err := store.ReplayDeadLetters(r.Context(), postgres.DeadLetterFilter{ID: id})
		if err == nil && n == 0 {
			err = acmecrm.Errorf(acmecrm.KindNotFound, "RESOURCE_NOT_FOUND", "dead letter not found")
		}
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		encode(w, http.StatusAccepted, map[string]any{"message": "Dead letter queued for replay", "replayed": n})
	})
}

// handleReplayDeadLetters replays a filtered set, or all (admin). The body
// must say which: {"eventType": "…"}, {"notReplayed": true} or {"all": true}.
func handleReplayDeadLetters(store *postgres.Store, logger *slog.Logger, now func() time.Time) http.Handler {
	type request struct {
		EventType   string `json:"eventType"`
		NotReplayed bool   `json:"notReplayed"`
		All         bool   `json:"all"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decode(r, &req); err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		if !req.All && req.EventType == "" && !req.NotReplayed {
			writeError(w, r, logger, now, acmecrm.Errorf(acmecrm.KindInvalid, "INVALID_INPUT",
				`say which dead letters to replay: {"eventType": "…"}, {"notReplayed": true} or {"all": true}`))
			return
		}
		if req.All && (req.EventType != "" || req.NotReplayed) {
			var p acmecrm.Problems
			p.Add("all", "replays every dead letter and takes no filter: send eventType and notReplayed without it")
			writeError(w, r, logger, now, p.Err("contradictory selection"))
			return
		}
		n, err := store.ReplayDeadLetters(r.Context(), postgres.DeadLetterFilter{EventType: req.EventType, NotReplayed: req.NotReplayed})
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		encode(w, http.StatusAccepted, map[string]any{"message": "Dead letters queued for replay", "replayed": n})
	})
}
