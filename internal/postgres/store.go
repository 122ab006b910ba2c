package postgres

import (
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Store runs the service's SQL on a pool. Multi-statement work is one
// method (one transaction) so transactions never leave this package.
type Store struct {
	pool   *pgxpool.Pool
	opts   StoreOptions
	counts *countCache
}

// StoreOptions names what the store writes to the outbox.
type StoreOptions struct {
	// ContactsTopic receives a change event for every API change of a contact.
	ContactsTopic string
	// Now is the clock for event timestamps; nil means time.Now.
	Now func() time.Time
}

// NewStore returns a Store on pool.
func NewStore(pool *pgxpool.Pool, opts StoreOptions) *Store {
	if opts.ContactsTopic == "" {
		opts.ContactsTopic = "contacts"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{pool: pool, opts: opts, counts: newCountCache(opts.Now)}
}

// Pool is the underlying pool (for readiness checks).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
