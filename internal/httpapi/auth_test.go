package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acmecrm/acmecrm/internal/auth"
	"github.com/acmecrm/acmecrm/internal/devstack"
	"github.com/acmecrm/acmecrm/internal/ratelimit"
)

var testSecret = []byte(strings.Repeat("s", 32))

// Logins take turns for their password checks, so that a flood of them
// (from many addresses, each within its limit) cannot take every core from
// the receiver. A login that finds no turn within the wait is answered
// 503 with Retry-After, and changes nothing.
func TestLoginsTakeTurnsForPasswordChecks(t *testing.T) {
	t.Parallel()
	checks := auth.NewPasswordChecks(1, 20*time.Millisecond)
	b := setup(t, setupOpts{passwords: checks}) // setup's logins took their turns
	slow, err := auth.HashPasswordCost("a slow password", 12)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = checks.Check(context.Background(), slow, "a slow password")
	}()
	deadline := time.Now().Add(10 * time.Second)
	for checks.Running() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow check never ran")
		}
		time.Sleep(time.Millisecond)
	}
	r := b.call("POST", "/api/auth/login", "", map[string]string{"username": "user@acmecrm.com", "password": userPassword})
	if r.status != 503 || r.errCode() != "SERVICE_UNAVAILABLE" || r.header.Get("Retry-After") == "" {
		t.Fatalf("login while the only turn is taken: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	<-done
	r = b.call("POST", "/api/auth/login", "", map[string]string{"username": "user@acmecrm.com", "password": userPassword})
	if r.status != 200 {
		t.Fatalf("login once the turn is free: %d %s", r.status, r.body)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.call("POST", "/api/auth/login", "", map[string]string{"username": "admin@acmecrm.com", "password": adminPassword})
	if r.status != 200 || r.json["tokenType"] != "Bearer" || r.json["expiresIn"] != float64(3600) {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	u, _ := r.json["user"].(map[string]any)
	if u["username"] != "admin@acmecrm.com" || u["role"] != "admin" || u["id"] == "" {
		t.Errorf("user = %v", u)
	}
	if strings.Contains(string(r.body), "password") {
		t.Errorf("login response mentions the password: %s", r.body)
	}

	wrongPassword := b.call("POST", "/api/auth/login", "", map[string]string{"username": "admin@acmecrm.com", "password": "nope-nope"})
	noUser := b.call("POST", "/api/auth/login", "", map[string]string{"username": "ghost@acmecrm.com", "password": "nope-nope"})
	for _, x := range []response{wrongPassword, noUser} {
		if x.status != 401 || x.errCode() != "INVALID_CREDENTIALS" {
			t.Errorf("bad credentials: %d %s", x.status, x.body)
		}
	}
	m1 := wrongPassword.json["error"].(map[string]any)["message"]
	m2 := noUser.json["error"].(map[string]any)["message"]
	if m1 != m2 {
		t.Errorf("answers differ by whether the user exists: %q vs %q", m1, m2)
	}

	if r := b.call("POST", "/api/auth/login", "", `{"username":`); r.status != 400 || r.errCode() != "MALFORMED_JSON" {
		t.Errorf("malformed: %d %s", r.status, r.body)
	}
	if r := b.call("POST", "/api/auth/login", "", map[string]any{"username": 1, "password": "x"}); r.status != 400 || r.errCode() != "INVALID_INPUT" {
		t.Errorf("wrong type: %d %s", r.status, r.body)
	}
	if r := b.call("POST", "/api/auth/login", "", map[string]any{}); r.status != 400 {
		t.Errorf("empty: %d %s", r.status, r.body)
	}
	if r := b.call("POST", "/api/auth/login", "", "username=a&password=b", "Content-Type", "application/x-www-form-urlencoded"); r.status != 415 || r.errCode() != "UNSUPPORTED_MEDIA_TYPE" {
		t.Errorf("form body: %d %s", r.status, r.body)
	}
}

// sign makes a token with arbitrary header and claims, HMAC-SHA256-signed
// with key — for forging tokens the way an attacker would.
func sign(header, claims map[string]any, key []byte, mac bool) string {
	enc := func(v any) string {
		j, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(j)
	}
	input := enc(header) + "." + enc(claims)
	if !mac {
		return input + "."
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func validClaims(sub, role string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": "acmecrm", "aud": "acmecrm-api", "sub": sub, "role": role,
		"jti": "forged-jti", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func TestHostileTokensAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := "/api/contacts"
	if r := b.call("GET", path, b.user, nil); r.status != 200 {
		t.Fatalf("a good token is refused: %d %s", r.status, r.body)
	}
	parts := strings.Split(b.user, ".")
	// Change one character of the signature.
	sig := []byte(parts[2])
	sig[5] ^= 1
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)
	// Make the payload claim admin, keep the signature.
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var cl map[string]any
	_ = json.Unmarshal(payload, &cl)
	cl["role"] = "admin"
	p2, _ := json.Marshal(cl)
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString(p2) + "." + parts[2]

	hs512 := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims(validClaims("x", "admin")))
	hs512Token, _ := hs512.SignedString(testSecret)

	missingJTI := validClaims("x", "user")
	delete(missingJTI, "jti")
	missingExp := validClaims("x", "user")
	delete(missingExp, "exp")
	wrongIss := validClaims("x", "user")
	wrongIss["iss"] = "someone-else"
	wrongAud := validClaims("x", "user")
	wrongAud["aud"] = "another-api"
	badRole := validClaims("x", "superuser")

	cases := map[string]string{
		"garbage":                  "not.a.token",
		"empty segments":           "..",
		"tampered signature":       tamperedSig,
		"tampered payload":         tamperedPayload,
		"alg none":                 sign(map[string]any{"alg": "none", "typ": "JWT"}, validClaims("x", "admin"), nil, false),
		"alg none with sig":        sign(map[string]any{"alg": "none", "typ": "JWT"}, validClaims("x", "admin"), testSecret, true),
		"HS512 with the secret":    hs512Token,
		"RS256 with secret as key": sign(map[string]any{"alg": "RS256", "typ": "JWT"}, validClaims("x", "admin"), testSecret, true),
		"wrong secret":             sign(map[string]any{"alg": "HS256", "typ": "JWT"}, validClaims("x", "admin"), []byte("guess"), true),
		"missing jti":              sign(map[string]any{"alg": "HS256", "typ": "JWT"}, missingJTI, testSecret, true),
		"missing exp":              sign(map[string]any{"alg": "HS256", "typ": "JWT"}, missingExp, testSecret, true),
		"wrong issuer":             sign(map[string]any{"alg": "HS256", "typ": "JWT"}, wrongIss, testSecret, true),
		"wrong audience":           sign(map[string]any{"alg": "HS256", "typ": "JWT"}, wrongAud, testSecret, true),
		"unknown role":             sign(map[string]any{"alg": "HS256", "typ": "JWT"}, badRole, testSecret, true),
	}
	for name, tok := range cases {
		r := b.call("GET", path, tok, nil)
		if r.status != 401 || r.errCode() != "INVALID_TOKEN" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// Correctly signed with the real secret but never issued (not in the
	// registry): revoked, never accepted.
	forged := sign(map[string]any{"alg": "HS256", "typ": "JWT"}, validClaims("x", "admin"), testSecret, true)
	if r := b.call("GET", path, forged, nil); r.status != 401 || r.errCode() != "TOKEN_REVOKED" {
		t.Errorf("unregistered token: %d %s", r.status, r.body)
	}
	if r := b.call("GET", path, "", nil); r.status != 401 || r.errCode() != "INVALID_TOKEN" {
		t.Errorf("no token: %d %s", r.status, r.body)
	}
	r := b.call("GET", path, "", nil, "Authorization", "Basic YWRtaW46YWRtaW4=")
	if r.status != 401 {
		t.Errorf("basic auth: %d %s", r.status, r.body)
	}
}

func TestExpiredToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	past := auth.New(auth.Config{Secret: testSecret, Issuer: "acmecrm", Audience: "acmecrm-api", TTL: time.Hour,
		KeyPrefix: b.prefix, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}, b.rdb)
	users, _ := b.store.Users(context.Background())
	tok, _, err := past.Issue(context.Background(), users[0].ID, users[0].Role)
	if err != nil {
		t.Fatal(err)
	}
	if r := b.call("GET", "/api/contacts", tok, nil); r.status != 401 || r.errCode() != "TOKEN_EXPIRED" {
		t.Errorf("expired: %d %s", r.status, r.body)
	}
}

func TestLogoutRefreshAndLogoutAll(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// logout revokes exactly the current token.
	other := b.login("user@acmecrm.com", userPassword)
	if r := b.call("POST", "/api/auth/logout", b.user, nil); r.status != 200 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	if r := b.call("GET", "/api/contacts", b.user, nil); r.status != 401 || r.errCode() != "TOKEN_REVOKED" {
		t.Errorf("after logout: %d %s", r.status, r.body)
	}
	if r := b.call("GET", "/api/contacts", other, nil); r.status != 200 {
		t.Errorf("the user's other token was revoked too: %d", r.status)
	}
	// refresh issues a new token and revokes the old one.
	r := b.call("POST", "/api/auth/refresh", other, nil)
	if r.status != 200 || r.json["token"] == "" {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	fresh := r.json["token"].(string)
	if r := b.call("GET", "/api/contacts", other, nil); r.status != 401 {
		t.Errorf("old token after refresh: %d", r.status)
	}
	if r := b.call("GET", "/api/contacts", fresh, nil); r.status != 200 {
		t.Errorf("new token: %d", r.status)
	}
	// logout-all revokes every token of the user, not other users'.
	second := b.login("user@acmecrm.com", userPassword)
	if r := b.call("POST", "/api/auth/logout-all", fresh, nil); r.status != 200 {
		t.Fatalf("logout-all: %d %s", r.status, r.body)
	}
	for _, tok := range []string{fresh, second} {
		if r := b.call("GET", "/api/contacts", tok, nil); r.status != 401 || r.errCode() != "TOKEN_REVOKED" {
			t.Errorf("after logout-all: %d %s", r.status, r.body)
		}
	}
	if r := b.call("GET", "/api/contacts", b.admin, nil); r.status != 200 {
		t.Errorf("another user's token was revoked: %d", r.status)
	}
	// Logging in again works.
	again := b.login("user@acmecrm.com", userPassword)
	if r := b.call("GET", "/api/contacts", again, nil); r.status != 200 {
		t.Errorf("login after logout-all: %d %s", r.status, r.body)
	}
}

// Of concurrent refreshes of one token, exactly one gets a new token: a
// refresh swaps the old token for the new one only while the old is live.
func TestConcurrentRefreshesOfOneTokenIssueOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tok := b.login("user@acmecrm.com", userPassword)
	const n = 20
	results := make([]response, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = b.call("POST", "/api/auth/refresh", tok, nil)
		}()
	}
	close(start)
	wg.Wait()
	var fresh []string
	for _, r := range results {
		switch {
		case r.status == 200:
			fresh = append(fresh, r.json["token"].(string))
		case r.status != 401 || r.errCode() != "TOKEN_REVOKED":
			t.Errorf("refresh: %d %s", r.status, r.body)
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("%d of %d concurrent refreshes of one token got a new token, want 1", len(fresh), n)
	}
	if r := b.call("GET", "/api/contacts", fresh[0], nil); r.status != 200 {
		t.Errorf("the new token: %d %s", r.status, r.body)
	}
	if r := b.call("GET", "/api/contacts", tok, nil); r.status != 401 {
		t.Errorf("the old token: %d", r.status)
	}
	// The new token is in the user's set: logout-all ends it.
	if r := b.call("POST", "/api/auth/logout-all", b.user, nil); r.status != 200 {
		t.Fatalf("logout-all: %d %s", r.status, r.body)
	}
	if r := b.call("GET", "/api/contacts", fresh[0], nil); r.status != 401 {
		t.Errorf("the new token after logout-all: %d", r.status)
	}
}

func TestRolesAreEnforced(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if r := b.call("GET", "/api/admin/users", b.user, nil); r.status != 403 || r.errCode() != "INSUFFICIENT_PERMISSIONS" {
		t.Errorf("user on admin route: %d %s", r.status, r.body)
	}
	r := b.call("GET", "/api/admin/users", b.admin, nil)
	if r.status != 200 || len(r.json["data"].([]any)) != 2 {
		t.Errorf("admin on admin route: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "$2a$") {
		t.Errorf("password hashes exposed: %s", r.body)
	}
	// Users may read and write contacts.
	if r := b.call("POST", "/api/contacts", b.user, newContact("r1")); r.status != 201 {
		t.Errorf("user creating a contact: %d %s", r.status, r.body)
	}
}

// With Redis stopped, authentication fails closed (503) and the rate
// limiter falls back to memory (public routes keep working, and limiting).
func TestRedisDownFailsClosedAndLimiterFallsBack(t *testing.T) {
	t.Parallel()
	dir, err := devstack.TempDir("acmecrm-redis-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	rs, err := devstack.StartRedis(devstack.RedisOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Stop() })
	limits := generousLimits
	limits.Public = ratelimit.Policy{Name: "public", Limit: 3, Period: time.Hour}
	b := setup(t, setupOpts{redisURL: rs.URL(), limits: &limits})

	if r := b.call("GET", "/api/contacts", b.user, nil); r.status != 200 {
		t.Fatalf("before: %d", r.status)
	}
	if err := rs.Stop(); err != nil {
		t.Fatal(err)
	}
	r := b.call("GET", "/api/contacts", b.user, nil)
	if r.status != 503 || r.errCode() != "SERVICE_UNAVAILABLE" {
		t.Errorf("auth with redis down: %d %s (must fail closed)", r.status, r.body)
	}
	if r := b.call("POST", "/api/auth/login", "", map[string]string{"username": "user@acmecrm.com", "password": userPassword}); r.status != 503 {
		t.Errorf("login with redis down: %d %s", r.status, r.body)
	}
	// The in-process limiter takes over: 3 allowed, then 429.
	for i := 1; i <= 4; i++ {
		r := b.call("GET", "/health", "", nil)
		want := 200
		if i == 4 {
			want = 429
		}
		if r.status != want || r.header.Get("RateLimit-Limit") != "3" {
			t.Fatalf("request %d with redis down: %d limit=%q", i, r.status, r.header.Get("RateLimit-Limit"))
		}
	}
}
