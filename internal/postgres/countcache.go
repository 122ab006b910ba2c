package postgres

import (
	"fmt"
	"sync"
	"time"
)

// countCache remembers the totals of contact list queries for a moment:
// a search's COUNT(*) is linear in the table, and even a kept total (the
// lists without a search, migration 00012) costs a round trip. Every
// contact write made through this Store bumps the generation, which
// invalidates all entries at once, so a process always sees its own
// writes; writes by other instances show within countTTL.
type countCache struct {
	mu      sync.Mutex
	gen     uint64
	entries map[string]countEntry
	now     func() time.Time
}

type countEntry struct {
	gen   uint64
	at    time.Time
	total listTotal
}

// listTotal is a list's matches, live and deleted.
type listTotal struct{ live, deleted int }

const (
	countTTL        = time.Second
	countMaxEntries = 1024
)

func newCountCache(now func() time.Time) *countCache {
	return &countCache{entries: map[string]countEntry{}, now: now}
}

func countKey(cond string, args []any) string { return fmt.Sprintf("%s|%v", cond, args) }

// get returns a fresh total for key, and the generation to store with a
// newly computed one.
func (c *countCache) get(key string) (total listTotal, ok bool, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.entries[key]
	if found && e.gen == c.gen && c.now().Sub(e.at) < countTTL {
		return e.total, true, c.gen
	}
	return listTotal{}, false, c.gen
}

// put stores a total computed at generation gen (dropped if a write
// happened meanwhile).
func (c *countCache) put(key string, gen uint64, total listTotal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= countMaxEntries {
		clear(c.entries)
	}
	c.entries[key] = countEntry{gen: gen, at: c.now(), total: total}
}

// invalidate forgets every total (after a contact write).
func (c *countCache) invalidate() {
	c.mu.Lock()
	c.gen++
	c.mu.Unlock()
}
