package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Simulator delivery statuses (SPEC §7).
const (
	DeliveryPending    = "pending"
	DeliveryDelivering = "delivering"
	DeliveryDelivered  = "delivered"
	DeliveryFailed     = "failed"
)

// Delivery is one webhook the simulator sends: the signed body is rebuilt
// per attempt from Body with a fresh timestamp.
type Delivery struct {
	ID                   string     `json:"id"`
	EventID              string     `json:"eventId"`
	EventType            string     `json:"eventType"`
	TargetURL            string     `json:"targetUrl"`
	Body                 []byte     `json:"-"`
	Source               string     `json:"source"`
	Status               string     `json:"status"`
	Attempts             int        `json:"attempts"`
	MaxAttempts          int        `json:"maxAttempts"`
	NextAttemptAt        *time.Time `json:"nextAttemptAt"`
	BadSignature         bool       `json:"badSignature"`
	TimestampSkewSeconds int        `json:"timestampSkewSeconds"`
	LastStatusCode       *int       `json:"lastStatusCode"`
	LastError            *string    `json:"lastError"`
	CreatedAt            time.Time  `json:"createdAt"`
	UpdatedAt            time.Time  `json:"updatedAt"`
	DeliveredAt          *time.Time `json:"deliveredAt"`
	// AttemptLog is filled by SimulatorDelivery only.
	AttemptLog []Attempt `json:"attemptLog,omitempty"`
}

// Attempt is one try of a delivery.
type Attempt struct {
	Attempt         int       `json:"attempt"`
	StartedAt       time.Time `json:"startedAt"`
	StatusCode      *int      `json:"statusCode"`
	LatencyMs       int       `json:"latencyMs"`
	Error           *string   `json:"error"`
	ResponseExcerpt *string   `json:"responseExcerpt"`
}

// NewDelivery is a delivery to store.
type NewDelivery struct {
	EventID              string
	EventType            string
	TargetURL            string
	Body                 []byte
	Source               string // "api" or "auto-trigger"
	MaxAttempts          int
	Delay                time.Duration
	BadSignature         bool
	TimestampSkewSeconds int
	// Lease, when set, stores the delivery already claimed for its first
	// attempt (status delivering, attempt 1) by the caller, who makes that
	// attempt at once; Delay is then ignored.
	Lease time.Duration
}

// deliveryColumns lists a delivery's columns, qualified by prefix ("d.")
// for statements that join. next_attempt_at shows only while one is due.
func deliveryColumns(p string) string {
	return p + `id::text, ` + p + `event_id, ` + p + `event_type, ` + p + `target_url, ` + p + `body, ` + p + `source, ` +
		p + `status, ` + p + `attempts, ` + p + `max_attempts, CASE WHEN ` + p + `status IN ('pending', 'delivering') THEN ` +
		p + `next_attempt_at END, ` + p + `bad_signature, ` + p + `timestamp_skew_seconds, ` + p + `last_status_code, ` +
		p + `last_error, ` + p + `created_at, ` + p + `updated_at, ` + p + `delivered_at`
}

var deliveryCols = deliveryColumns("")

func scanDelivery(r pgx.CollectableRow) (Delivery, error) {
	var d Delivery
	err := r.Scan(&d.ID, &d.EventID, &d.EventType, &d.TargetURL, &d.Body, &d.Source, &d.Status, &d.Attempts, &d.MaxAttempts,
		&d.NextAttemptAt, &d.BadSignature, &d.TimestampSkewSeconds, &d.LastStatusCode, &d.LastError,
		&d.CreatedAt, &d.UpdatedAt, &d.DeliveredAt)
	return d, err
}

// CreateDeliveries stores deliveries as pending, due after their delay (or
// claimed, see NewDelivery.Lease), in one statement, and returns them in
// the given order.
func (s *Store) CreateDeliveries(ctx context.Context, ds []NewDelivery) ([]Delivery, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	n := len(ds)
	eventIDs, types, targets, sources := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	bodies, maxes, delays := make([][]byte, n), make([]int32, n), make([]int64, n)
	bad, skews, claimed := make([]bool, n), make([]int32, n), make([]bool, n)
	for i, d := range ds {
		eventIDs[i], types[i], targets[i], bodies[i] = d.EventID, d.EventType, d.TargetURL, d.Body
		sources[i] = d.Source
		if sources[i] == "" {
			sources[i] = "api"
		}
		maxes[i], delays[i], bad[i], skews[i] = int32(d.MaxAttempts), d.Delay.Milliseconds(), d.BadSignature, int32(d.TimestampSkewSeconds)
		if d.Lease > 0 {
			delays[i], claimed[i] = d.Lease.Milliseconds(), true
		}
	}
	rows, err := s.pool.Query(ctx, `INSERT INTO simulator_deliveries (event_id, event_type, target_url, body, source, status,
			max_attempts, next_attempt_at, bad_signature, timestamp_skew_seconds, attempts)
		SELECT e, t, u, b, src, CASE WHEN c THEN 'delivering' ELSE 'pending' END, m,
			now() + d * interval '1 millisecond', bs, sk, CASE WHEN c THEN 1 ELSE 0 END
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::int[], $7::bigint[], $8::bool[],
			$9::int[], $10::bool[]) WITH ORDINALITY AS x(e, t, u, b, src, m, d, bs, sk, c, ord)
		ORDER BY ord
		RETURNING `+deliveryCols, eventIDs, types, targets, bodies, sources, maxes, delays, bad, skews, claimed)
	if err != nil {
		return nil, translate("create deliveries", err)
	}
	out, err := pgx.CollectRows(rows, scanDelivery)
	return out, translate("create deliveries", err)
}

// ClaimDeliveries takes up to limit due deliveries (or, when ids are given,
// only those of them that are due) for one attempt each: their attempt
// count goes up by one in the same statement, so two workers never make
// the same attempt, and the lease makes a dead worker's claim due again.
// A delivery whose last attempt was lost with its worker is failed.
func (s *Store) ClaimDeliveries(ctx context.Context, ids []string, limit int, lease time.Duration) ([]Delivery, error) {
	if _, err := s.pool.Exec(ctx, `UPDATE simulator_deliveries SET status = 'failed', updated_at = now(),
			last_error = 'the delivery worker stopped during the last attempt'
		WHERE status = 'delivering' AND next_attempt_at <= now() AND attempts >= max_attempts`); err != nil {
		return nil, translate("claim deliveries", err)
	}
	rows, err := s.pool.Query(ctx, `UPDATE simulator_deliveries d
		SET status = 'delivering', attempts = d.attempts + 1, updated_at = now(),
			next_attempt_at = now() + $3 * interval '1 millisecond'
		FROM (SELECT id FROM simulator_deliveries
			WHERE status IN ('pending', 'delivering') AND next_attempt_at <= now() AND attempts < max_attempts
				AND ($1::uuid[] IS NULL OR id = ANY($1::uuid[]))
			ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
		WHERE d.id = due.id
		RETURNING `+deliveryColumns("d."), nullIfEmpty(ids), limit, lease.Milliseconds())
	if err != nil {
		return nil, translate("claim deliveries", err)
	}
	out, err := pgx.CollectRows(rows, scanDelivery)
	return out, translate("claim deliveries", err)
}

func nullIfEmpty(ids []string) any {
	if len(ids) == 0 {
		return nil
	}
	return ids
}

// AttemptResult is the outcome of one claimed attempt.
type AttemptResult struct {
	DeliveryID      string
	Attempt         int
	StartedAt       time.Time
	StatusCode      int // 0: no response
	Latency         time.Duration
	Error           string
	ResponseExcerpt string
	// Status is the delivery's next status: delivered, failed, or pending
	// (retry after RetryIn).
	Status  string
	RetryIn time.Duration
}

// ErrLeaseLost reports that a delivery was claimed again (its lease ran
// out) before this attempt finished; nothing of this attempt is recorded,
// the delivery's state is the newer claim's.
var ErrLeaseLost = errors.New("delivery lease lost")

// FinishAttempt records an attempt and moves its delivery on, in one
// transaction, provided the delivery is still this attempt's claim, and
// returns the delivery as the attempt left it.
func (s *Store) FinishAttempt(ctx context.Context, a AttemptResult) (Delivery, error) {
	var code *int
	if a.StatusCode != 0 {
		code = &a.StatusCode
	}
	var errText, excerpt *string
	if a.Error != "" {
		errText = &a.Error
	}
	if a.ResponseExcerpt != "" {
		excerpt = &a.ResponseExcerpt
	}
	var d Delivery
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO simulator_attempts (delivery_id, attempt, started_at, status_code, latency_ms,
				error, response_excerpt) VALUES ($1, $2, $3, $4, $5, left($6, 2000), $7)`,
			a.DeliveryID, a.Attempt, a.StartedAt, code, a.Latency.Milliseconds(), errText, excerpt); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE simulator_deliveries SET status = $3, updated_at = now(),
				last_status_code = $4, last_error = left($5, 2000),
				next_attempt_at = CASE WHEN $3 = 'pending' THEN now() + $6 * interval '1 millisecond' ELSE next_attempt_at END,
				delivered_at = CASE WHEN $3 = 'delivered' THEN now() END
			WHERE id = $1 AND attempts = $2 AND status = 'delivering'
			RETURNING `+deliveryCols,
			a.DeliveryID, a.Attempt, a.Status, code, errText, a.RetryIn.Milliseconds())
		if err != nil {
			return err
		}
		d, err = pgx.CollectExactlyOneRow(rows, scanDelivery)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrLeaseLost
		}
		return err
	})
	if errors.Is(err, ErrLeaseLost) {
		return Delivery{}, err
	}
	return d, translate("finish attempt", err)
}

// NextDeliveryDue is when the next pending delivery is due (ok false when
// none is waiting).
func (s *Store) NextDeliveryDue(ctx context.Context) (due time.Time, ok bool, err error) {
	var t *time.Time
	err = s.pool.QueryRow(ctx, `SELECT min(next_attempt_at) FROM simulator_deliveries
		WHERE status IN ('pending', 'delivering') AND attempts < max_attempts`).Scan(&t)
	if err != nil || t == nil {
		return time.Time{}, false, translate("next delivery", err)
	}
	return *t, true, nil
}

// DeliveryFilter selects deliveries for the history API.
type DeliveryFilter struct {
	Status  string
	EventID string
	Limit   int
	Offset  int
}

// Deliveries lists deliveries, newest first, with the total that match.
func (s *Store) Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, int, error) {
	const where = `WHERE ($1 = '' OR status = $1) AND ($2 = '' OR event_id = $2)`
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM simulator_deliveries `+where, f.Status, f.EventID).Scan(&total); err != nil {
		return nil, 0, translate("count deliveries", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM simulator_deliveries `+where+`
		ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4`, f.Status, f.EventID, f.Limit, f.Offset)
	if err != nil {
		return nil, 0, translate("list deliveries", err)
	}
	out, err := pgx.CollectRows(rows, scanDelivery)
	return out, total, translate("list deliveries", err)
}

// SimulatorDelivery returns one delivery with every attempt, or a
// not-found error.
func (s *Store) SimulatorDelivery(ctx context.Context, id string) (Delivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM simulator_deliveries WHERE id = $1`, id)
	if err != nil {
		return Delivery{}, translate("get delivery", err)
	}
	d, err := pgx.CollectExactlyOneRow(rows, scanDelivery)
	if errors.Is(err, pgx.ErrNoRows) {
		return Delivery{}, notFound("delivery")
	}
	if err != nil {
		return Delivery{}, translate("get delivery", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT attempt, started_at, status_code, latency_ms, error, response_excerpt
		FROM simulator_attempts WHERE delivery_id = $1 ORDER BY attempt`, id)
	if err != nil {
		return Delivery{}, translate("get delivery attempts", err)
	}
	d.AttemptLog, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attempt, error) {
		var a Attempt
		err := r.Scan(&a.Attempt, &a.StartedAt, &a.StatusCode, &a.LatencyMs, &a.Error, &a.ResponseExcerpt)
		return a, err
	})
	if d.AttemptLog == nil {
		d.AttemptLog = []Attempt{}
	}
	return d, translate("get delivery attempts", err)
}
