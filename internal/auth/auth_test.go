package auth

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acmecrm/acmecrm/internal/infratest"
)

func TestMain(m *testing.M) { infratest.Main(m) }

// clock is a settable time for the service under test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newService(t *testing.T, ttl time.Duration) (*Service, *redis.Client, *clock) {
	t.Helper()
	rdb, prefix := infratest.RedisClient(t)
	c := &clock{now: time.Now()}
	s := New(Config{Secret: []byte(strings.Repeat("s", 32)), Issuer: "acmecrm", Audience: "acmecrm-api", TTL: ttl, KeyPrefix: prefix, Now: c.Now}, rdb)
	return s, rdb, c
}

// A user who keeps logging in (an integration logging in for every job)
// does not grow Redis: the registry of the user's tokens drops the ones
// that have expired as new ones come. It used to keep every token id for
// as long as the logins went on.
func TestTheTokenRegistryForgetsExpiredTokens(t *testing.T) {
	t.Parallel()
	s, rdb, c := newService(t, time.Minute)
	ctx := context.Background()
	for round := range 5 {
		for range 20 {
			if _, _, err := s.Issue(ctx, "u1", RoleUser); err != nil {
				t.Fatal(err)
			}
		}
		// Each round's tokens expire before the next round logs in.
		if round < 4 {
			c.add(2 * time.Minute)
		}
	}
	n, err := rdb.ZCard(ctx, s.liveKey("u1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Errorf("the registry lists %d token ids after 5 rounds of 20 logins a TTL apart, want the last round's 20", n)
	}
	ttl, err := rdb.PTTL(ctx, s.liveKey("u1")).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Errorf("the registry's own lifetime: %v %v, want at most the tokens' (1m)", ttl, err)
	}
}

// logout-all ends every live token of the user, including one issued the
// same second (which the valid-after time alone would not refuse) and
// those an older build registered in its plain set.
func TestRevokeAllEndsEveryToken(t *testing.T) {
	t.Parallel()
	s, rdb, _ := newService(t, time.Hour)
	ctx := context.Background()
	fresh, _, err := s.Issue(ctx, "u2", RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	refreshed, _, err := s.Issue(ctx, "u2", RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Authenticate(ctx, refreshed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if refreshed, _, err = s.Rotate(ctx, id, RoleUser); err != nil {
		t.Fatal(err)
	}
	// As the build before the sorted set registered a token.
	legacy, lid, err := s.sign("u2", RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, s.tokenKey(lid.TokenID), "u2", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(ctx, s.legacyTokensKey("u2"), lid.TokenID).Err(); err != nil {
		t.Fatal(err)
	}
	other, _, err := s.Issue(ctx, "someone-else", RoleUser)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"fresh": fresh, "refreshed": refreshed, "legacy": legacy} {
		if _, err := s.Authenticate(ctx, tok, nil); err != nil {
			t.Fatalf("%s token before logout-all: %v", name, err)
		}
	}
	if err := s.RevokeAll(ctx, "u2"); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"fresh": fresh, "refreshed": refreshed, "legacy": legacy} {
		if _, err := s.Authenticate(ctx, tok, nil); err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("%s token after logout-all, the same second: %v, want revoked", name, err)
		}
		if n, _ := rdb.Exists(ctx, s.tokenKey(mustParse(t, s, tok).TokenID)).Result(); n != 0 {
			t.Errorf("%s token's key is still in Redis", name)
		}
	}
	if _, err := s.Authenticate(ctx, other, nil); err != nil {
		t.Errorf("another user's token after logout-all: %v", err)
	}
	if n, _ := rdb.Exists(ctx, s.liveKey("u2"), s.legacyTokensKey("u2")).Result(); n != 0 {
		t.Errorf("%d registries of the user are left", n)
	}
}

func mustParse(t *testing.T, s *Service, tok string) Identity {
	t.Helper()
	id, err := s.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
