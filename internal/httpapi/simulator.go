package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/simulator"
)

// Bounds of the simulator's chaos knobs.
const (
	maxSimDuplicates = 10
	maxSimDelay      = time.Hour
	maxSimSkew       = 86400
)

// handleSimulate sends one simulated AcmeCRM webhook (SPEC §7, admin).
func handleSimulate(sim *simulator.Simulator, logger *slog.Logger, now func() time.Time) http.Handler {
	type request struct {
		EventType            string          `json:"eventType"`
		Data                 json.RawMessage `json:"data"`
		TargetURL            string          `json:"targetUrl"`
		Duplicates           int             `json:"duplicates"`
		DelayMs              int64           `json:"delayMs"`
		BadSignature         bool            `json:"badSignature"`
		TimestampSkewSeconds int             `json:"timestampSkewSeconds"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in request
		if err := decode(r, &in); err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		var p acmecrm.Problems
		if in.Duplicates < 0 || in.Duplicates > maxSimDuplicates {
			p.Add("duplicates", "must be from 0 to %d", maxSimDuplicates)
		}
		if in.DelayMs < 0 || in.DelayMs > maxSimDelay.Milliseconds() {
			p.Add("delayMs", "must be from 0 to %d", maxSimDelay.Milliseconds())
		}
		if in.TimestampSkewSeconds < -maxSimSkew || in.TimestampSkewSeconds > maxSimSkew {
			p.Add("timestampSkewSeconds", "must be from -%d to %d", maxSimSkew, maxSimSkew)
		}
		if err := p.Err("invalid simulator request"); err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		res, err := sim.Send(r.Context(), simulator.Request{
			EventType: in.EventType, Data: in.Data, TargetURL: in.TargetURL, Duplicates: in.Duplicates,
			Delay: time.Duration(in.DelayMs) * time.Millisecond, BadSignature: in.BadSignature,
			TimestampSkewSeconds: in.TimestampSkewSeconds,
		})
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		logger.InfoContext(r.Context(), "simulated webhook", "event_id", res.Event.EventID,
			"event_type", res.Event.EventType, "deliveries", len(res.Deliveries))
		encode(w, http.StatusAccepted, map[string]any{
			"event": res.Event, "delivery": res.Deliveries[0], "duplicates": res.Deliveries[1:],
		})
	})
}

// handleSimulatorHistory lists deliveries: ?status=&eventId=&limit=&offset=.
func handleSimulatorHistory(store *postgres.Store, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var p acmecrm.Problems
		f := postgres.DeliveryFilter{Status: q.Get("status"), EventID: q.Get("eventId"), Limit: 50}
		switch f.Status {
		case "", postgres.DeliveryPending, postgres.DeliveryDelivering, postgres.DeliveryDelivered, postgres.DeliveryFailed:
		default:
			p.Add("status", "must be one of pending, delivering, delivered, failed")
		}
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 100 {
				p.Add("limit", "must be a whole number from 1 to 100")
			}
			f.Limit = n
		}
		if s := q.Get("offset"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 1_000_000 {
				p.Add("offset", "must be a whole number from 0 to 1000000")
			}
			f.Offset = n
		}
		if err := p.Err("invalid query parameters"); err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		ds, total, err := store.Deliveries(r.Context(), f)
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		if ds == nil {
			ds = []postgres.Delivery{}
		}
		encode(w, http.StatusOK, map[string]any{
			"data":       ds,
			"pagination": map[string]int{"limit": f.Limit, "offset": f.Offset, "total": total},
		})
	})
}

// handleSimulatorDelivery returns one delivery with all its attempts.
func handleSimulatorDelivery(store *postgres.Store, logger *slog.Logger, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
			var p acmecrm.Problems
			p.Add("id", "must be a delivery id (UUID)")
			writeError(w, r, logger, now, p.Err("invalid delivery id"))
			return
		}
		d, err := store.SimulatorDelivery(r.Context(), id)
		if err != nil {
			writeError(w, r, logger, now, err)
			return
		}
		encode(w, http.StatusOK, map[string]any{"data": d})
	})
}
