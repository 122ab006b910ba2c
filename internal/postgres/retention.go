package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// pruneLock is the transaction-level advisory lock a pruning batch holds,
// so that instances running the relay role do not prune side by side
// ("acmecrm prune" in an int64).
const pruneLock int64 = 0x61636d65_7072756e

// pruneBusy takes the pruning turn for tx's transaction, or reports that
// another instance holds it.
func pruneBusy(ctx context.Context, tx pgx.Tx) (bool, error) {
	var busy bool
	err := tx.QueryRow(ctx, `SELECT NOT pg_try_advisory_xact_lock($1)`, pruneLock).Scan(&busy)
	return busy, err
}

// PruneCursor is where PruneWebhooks continues: the receipts with ids up
// to After were looked at.
type PruneCursor struct{ After int64 }

// PruneWebhooks deletes, among the next n webhook receipts after cur (in
// id order, which is arrival order), those received before cutoff whose
// processing is over — processed, or ignored (an unknown event type) —
// with their state rows and processed-event markers. Webhooks still on
// their way (received, published, failed) and dead ones (their dead
// letter waits for a replay) are kept whatever their age. It returns how
// many it deleted, the cursor to continue from, and done once it reached a
// receipt not older than cutoff or the end; busy when another instance is
// pruning (nothing was done).
func (s *Store) PruneWebhooks(ctx context.Context, cur PruneCursor, cutoff time.Time, n int) (deleted int, next PruneCursor, done, busy bool, err error) {
	next = cur
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if busy, err = pruneBusy(ctx, tx); err != nil || busy {
			return err
		}
		var last *int64
		var scanned int
		var young bool
		// The state rows are locked in id order, as the relay and the
		// consumer lock them (DECISIONS.md #34).
		err = tx.QueryRow(ctx, `
WITH cand AS (
	SELECT id, received_at < $2 AS old FROM webhook_receipts WHERE id > $1 ORDER BY id LIMIT $3
), upto AS (
	SELECT coalesce(min(id) FILTER (WHERE NOT old), max(id) + 1, $1 + 1) AS id, count(*) AS scanned, bool_or(NOT old) AS young FROM cand
), doomed AS (
	SELECT s.id FROM webhook_event_state s, upto u
	WHERE s.status IN ('processed', 'ignored') AND s.id > $1 AND s.id < u.id
	ORDER BY s.id FOR UPDATE OF s
), st AS (
	DELETE FROM webhook_event_state WHERE id IN (SELECT id FROM doomed)
), gone AS (
	DELETE FROM webhook_receipts WHERE id IN (SELECT id FROM doomed) RETURNING event_id
), markers AS (
	DELETE FROM processed_events WHERE event_id IN (SELECT event_id FROM gone)
)
SELECT (SELECT count(*) FROM gone), (SELECT max(c.id) FROM cand c, upto u WHERE c.id < u.id), u.scanned, coalesce(u.young, false)
FROM upto u`, cur.After, cutoff, n).Scan(&deleted, &last, &scanned, &young)
		if err != nil {
			return err
		}
		if last != nil {
			next.After = *last
		}
		done = young || scanned < n
		return nil
	})
	if err != nil {
		return 0, cur, false, false, translate("prune webhooks", err)
	}
	return deleted, next, done, busy, nil
}

// PruneFinished deletes up to n dead letters replayed before cutoff (a
// dead letter not replayed is kept: it waits for someone to act) and up to
// n simulator deliveries that ended (delivered, or failed for good) before
// cutoff, with their attempts. It returns how many of each it deleted.
func (s *Store) PruneFinished(ctx context.Context, cutoff time.Time, n int) (deadLetters, deliveries int, busy bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if busy, err = pruneBusy(ctx, tx); err != nil || busy {
			return err
		}
		return tx.QueryRow(ctx, `
WITH dl AS (
	DELETE FROM dead_letters WHERE id IN (
		SELECT id FROM dead_letters WHERE replayed_at < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
	RETURNING 1
), sd AS (
	DELETE FROM simulator_deliveries WHERE id IN (
		SELECT id FROM simulator_deliveries WHERE status IN ('delivered', 'failed') AND updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
	RETURNING 1
)
SELECT (SELECT count(*) FROM dl), (SELECT count(*) FROM sd)`, cutoff, n).Scan(&deadLetters, &deliveries)
	})
	if err != nil {
		return 0, 0, false, translate("prune", err)
	}
	return deadLetters, deliveries, busy, nil
}
