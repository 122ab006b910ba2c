// Package auth issues and verifies the API's JWTs and keeps the registry of
// live tokens in Redis (SPEC §5). A token is accepted only when its HS256
// signature and claims verify AND Redis says its id (jti) is live and the
// user has not logged out everywhere since it was issued. When Redis cannot
// answer, authentication fails closed.
package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/acmecrm/acmecrm"
)

// leeway tolerates clock skew between instances in exp and iat checks.
const leeway = 5 * time.Second

// Roles.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
)

// ValidRole reports whether r is a known role.
func ValidRole(r string) bool { return r == RoleAdmin || r == RoleUser }

// Config configures token issuing and checking.
type Config struct {
	Secret   []byte
	Issuer   string
	Audience string
	TTL      time.Duration
	// KeyPrefix namespaces every Redis key (tests use one per test).
	KeyPrefix string
	Now       func() time.Time
}

// Identity is who a verified token speaks for.
type Identity struct {
	UserID    string
	Role      string
	TokenID   string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// claims are the token's claims; all of exp iat iss aud sub jti role are
// required.
type claims struct {
	jwt.RegisteredClaims
	Role string `json:"role"`
}

// Service issues, verifies and revokes tokens.
type Service struct {
	cfg    Config
	rdb    *redis.Client
	parser *jwt.Parser

	// verified remembers tokens whose signature and claims checked out, so
	// a busy client's token is not parsed and HMAC-checked on every request.
	// Verifying the same bytes again would give the same answer; expiry is
	// still checked each time, and liveness is always asked of Redis.
	mu       sync.RWMutex
	verified map[string]Identity
}

// maxVerified bounds the verified-token memo; it is simply emptied when full.
const maxVerified = 10000

// New returns a Service on rdb.
func New(cfg Config, rdb *redis.Client) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{
		cfg:      cfg,
		rdb:      rdb,
		verified: make(map[string]Identity),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), // pinned: no none, HS512, RS256…
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(cfg.Now),
			jwt.WithLeeway(leeway),
		),
	}
}

func (s *Service) tokenKey(jti string) string { return s.cfg.KeyPrefix + "auth:token:" + jti }

// liveKey is the user's registry of token ids: a sorted set scored by each
// token's expiry (Unix ms), so that expired ids are dropped as new ones
// come. Builds before it kept a plain set under legacyTokensKey, which only
// logout and refresh ever shrank: a user who logged in again and again (an
// integration logging in for every job) grew it for as long as the logins
// went on. logout-all still ends the tokens listed there.
func (s *Service) liveKey(id string) string { return s.cfg.KeyPrefix + "auth:user:" + id + ":live" }
func (s *Service) legacyTokensKey(id string) string {
	return s.cfg.KeyPrefix + "auth:user:" + id + ":tokens"
}
func (s *Service) validAfterKey(id string) string {
	return s.cfg.KeyPrefix + "auth:user:" + id + ":valid-after"
}
func unavailable(err error) error {
	return &acmecrm.Error{Kind: acmecrm.KindUnavailable, Code: "SERVICE_UNAVAILABLE", Message: "authentication is unavailable", Err: err}
}

func invalidToken(msg string) error {
	return acmecrm.Errorf(acmecrm.KindUnauthorized, "INVALID_TOKEN", "%s", msg)
}

// register is the Lua that makes a signed token live: its key (the user
// id, for the token's lifetime) and its id in the user's registry, which
// drops the ids that have expired and lives as long as the newest token.
// KEYS[3] is the token, KEYS[2] the registry; ARGV[2] the token id, ARGV[3]
// the user id, ARGV[4] the lifetime and ARGV[5] the expiry (Unix ms),
// ARGV[6] now (Unix ms).
const register = `
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
`

// issue registers a new token (KEYS and ARGV as register's; KEYS[1] and
// ARGV[1] unused).
var issue = redis.NewScript(register + `return 1`)

// rotate ends the old token and registers the new one in one step, and only
// if the old one is still live: of concurrent refreshes of one token, one
// gets a new token. KEYS[1] is the old token, ARGV[1] its id; the rest as
// register's.
var rotate = redis.NewScript(`
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
` + register + `return 1`)

// registerArgs are the KEYS and ARGV of issue and rotate.
func (s *Service) registerArgs(old, id Identity) ([]string, []any) {
	keys := []string{s.tokenKey(old.TokenID), s.liveKey(id.UserID), s.tokenKey(id.TokenID)}
	return keys, []any{old.TokenID, id.TokenID, id.UserID, s.cfg.TTL.Milliseconds(), id.ExpiresAt.UnixMilli(), s.cfg.Now().UnixMilli()}
}

// Issue signs a new token for the user and registers it as live.
func (s *Service) Issue(ctx context.Context, userID, role string) (string, Identity, error) {
	signed, id, err := s.sign(userID, role)
	if err != nil {
		return "", Identity{}, err
	}
	keys, args := s.registerArgs(Identity{}, id)
	if err := issue.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
		return "", Identity{}, unavailable(err)
	}
	return signed, id, nil
}

// Rotate swaps the live token old for a new one with the given role (a
// refresh). If old is no longer live — revoked, or already swapped by a
// concurrent refresh — no token is issued and the error is TOKEN_REVOKED.
func (s *Service) Rotate(ctx context.Context, old Identity, role string) (string, Identity, error) {
	signed, id, err := s.sign(old.UserID, role)
	if err != nil {
		return "", Identity{}, err
	}
	keys, args := s.registerArgs(old, id)
	n, err := rotate.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return "", Identity{}, unavailable(err)
	}
	if n == 0 {
		return "", Identity{}, errRevoked
	}
	return signed, id, nil
}

var errRevoked = acmecrm.Errorf(acmecrm.KindUnauthorized, "TOKEN_REVOKED", "the token has been revoked")

// sign makes a new token for the user; it is not live until registered.
func (s *Service) sign(userID, role string) (string, Identity, error) {
	now := s.cfg.Now()
	id := Identity{UserID: userID, Role: role, TokenID: uuid.NewString(), IssuedAt: now, ExpiresAt: now.Add(s.cfg.TTL)}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(id.ExpiresAt),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        id.TokenID,
		},
		Role: role,
	})
	signed, err := tok.SignedString(s.cfg.Secret)
	if err != nil {
		return "", Identity{}, fmt.Errorf("sign token: %w", err)
	}
	return signed, id, nil
}

// Parse verifies the signature and claims of token without asking Redis.
func (s *Service) Parse(token string) (Identity, error) {
	s.mu.RLock()
	id, ok := s.verified[token]
	s.mu.RUnlock()
	if ok {
		if !s.cfg.Now().Before(id.ExpiresAt.Add(leeway)) {
			return Identity{}, acmecrm.Errorf(acmecrm.KindUnauthorized, "TOKEN_EXPIRED", "the token has expired")
		}
		return id, nil
	}
	id, err := s.parse(token)
	if err != nil {
		return Identity{}, err
	}
	s.mu.Lock()
	if len(s.verified) >= maxVerified {
		clear(s.verified)
	}
	s.verified[token] = id
	s.mu.Unlock()
	return id, nil
}

func (s *Service) parse(token string) (Identity, error) {
	var c claims
	_, err := s.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.cfg.Secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Identity{}, acmecrm.Errorf(acmecrm.KindUnauthorized, "TOKEN_EXPIRED", "the token has expired")
	case err != nil:
		return Identity{}, invalidToken("the token is invalid")
	case c.Subject == "" || c.ID == "" || c.IssuedAt == nil || !ValidRole(c.Role):
		return Identity{}, invalidToken("the token lacks required claims")
	}
	return Identity{UserID: c.Subject, Role: c.Role, TokenID: c.ID, IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time}, nil
}

// Authenticate verifies token and checks in Redis that it is live. also,
// if not nil, may queue more commands (the rate limiter's) in the same
// pipeline, so that authentication and rate limiting cost one round trip.
func (s *Service) Authenticate(ctx context.Context, token string, also func(redis.Pipeliner, Identity)) (Identity, error) {
	id, err := s.Parse(token)
	if err != nil {
		return Identity{}, err
	}
	pipe := s.rdb.Pipeline()
	live := pipe.Exists(ctx, s.tokenKey(id.TokenID))
	after := pipe.Get(ctx, s.validAfterKey(id.UserID))
	if also != nil {
		also(pipe, id)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	n, err := live.Result()
	if err != nil {
		return Identity{}, unavailable(err)
	}
	va, err := after.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Identity{}, unavailable(err)
	}
	if n == 0 || (va != 0 && id.IssuedAt.Unix() < va) {
		return Identity{}, errRevoked
	}
	return id, nil
}

// Revoke ends one token.
func (s *Service) Revoke(ctx context.Context, id Identity) error {
	pipe := s.rdb.TxPipeline()
	pipe.Del(ctx, s.tokenKey(id.TokenID))
	pipe.ZRem(ctx, s.liveKey(id.UserID), id.TokenID)
	pipe.SRem(ctx, s.legacyTokensKey(id.UserID), id.TokenID)
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// revokeAll ends every token in the user's registries (the sorted set and
// an older build's set) and refuses from now on tokens issued before this
// second, in one step: a token registered while it runs cannot escape it.
// KEYS: registry, legacy set, valid-after; ARGV: the token key prefix, now
// (Unix s), how long to keep valid-after (ms).
var revokeAll = redis.NewScript(`
for _, j in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do redis.call('DEL', ARGV[1] .. j) end
for _, j in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', ARGV[1] .. j) end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
return 1
`)

// RevokeAll ends every token of the user: the live ones are deleted, and
// tokens issued before this second are refused from now on.
func (s *Service) RevokeAll(ctx context.Context, userID string) error {
	keys := []string{s.liveKey(userID), s.legacyTokensKey(userID), s.validAfterKey(userID)}
	// valid-after is kept as long as any token issued before it could
	// still be unexpired.
	args := []any{s.tokenKey(""), s.cfg.Now().Unix(), (s.cfg.TTL + time.Minute).Milliseconds()}
	if err := revokeAll.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}
