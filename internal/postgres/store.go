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
	// RelayStall is how long a relay's transaction may wait on its client
	// before PostgreSQL ends the session (idle_in_transaction_session_timeout);
	// default 1 minute, well above the relay's 30 s produce timeout. A relay
	// cut off from the database without the server noticing (a network
	// partition, a frozen host) would otherwise keep the relays' turn (and
	// its rows) until TCP keepalives give up, hours later.
	RelayStall time.Duration
}

// NewStore returns a Store on pool.
func NewStore(pool *pgxpool.Pool, opts StoreOptions) *Store {
	if opts.ContactsTopic == "" {
		opts.ContactsTopic = "contacts"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RelayStall <= 0 {
		opts.RelayStall = time.Minute
	}
	return &Store{pool: pool, opts: opts, counts: newCountCache(opts.Now)}
}

// Pool is the underlying pool (for readiness checks).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
