package httpapi

import (
	"strconv"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm/internal/ratelimit"
)

func TestAPIRateLimitPerUser(t *testing.T) {
	t.Parallel()
	limits := generousLimits
	limits.API = ratelimit.Policy{Name: "api", Limit: 5, Period: time.Hour}
	b := setup(t, setupOpts{limits: &limits})
	for i := 1; i <= 5; i++ {
		r := b.call("GET", "/api/contacts", b.user, nil)
		if r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
		if r.header.Get("RateLimit-Limit") != "5" || r.header.Get("RateLimit-Remaining") != strconv.Itoa(5-i) ||
			r.header.Get("X-RateLimit-Limit") != "5" || r.header.Get("X-RateLimit-Remaining") != strconv.Itoa(5-i) {
			t.Errorf("request %d headers: %v", i, r.header)
		}
		reset, err := strconv.Atoi(r.header.Get("RateLimit-Reset"))
		if err != nil || reset < 1 || reset > 3600 {
			t.Errorf("RateLimit-Reset = %q", r.header.Get("RateLimit-Reset"))
		}
		epoch, err := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64)
		if err != nil || epoch < time.Now().Unix() {
			t.Errorf("X-RateLimit-Reset = %q", r.header.Get("X-RateLimit-Reset"))
		}
	}
	r := b.call("GET", "/api/contacts", b.user, nil)
	retry, _ := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != 429 || r.errCode() != "TOO_MANY_REQUESTS" || retry < 1 || retry > 721 || r.header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("over the limit: %d Retry-After=%q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if e := r.json["error"].(map[string]any); e["type"] != "RATE_LIMIT" {
		t.Errorf("type = %v", e["type"])
	}
	// The limit is per user: the admin is unaffected.
	if r := b.call("GET", "/api/contacts", b.admin, nil); r.status != 200 {
		t.Errorf("another user limited: %d", r.status)
	}
}

func TestLoginRateLimitPerIP(t *testing.T) {
	t.Parallel()
	limits := generousLimits
	limits.Login = ratelimit.Policy{Name: "login", Limit: 3, Period: time.Hour}
	b := setup(t, setupOpts{limits: &limits}) // setup logs in twice
	if r := b.call("POST", "/api/auth/login", "", map[string]string{"username": "x@example.com", "password": "wrong-one"}); r.status != 401 {
		t.Fatalf("third attempt: %d", r.status)
	}
	r := b.call("POST", "/api/auth/login", "", map[string]string{"username": "user@acmecrm.com", "password": userPassword})
	if r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("fourth attempt, even with the right password: %d %s", r.status, r.body)
	}
}

func TestRefusedTokensAreLimitedPerIP(t *testing.T) {
	t.Parallel()
	limits := generousLimits
	limits.Public = ratelimit.Policy{Name: "public", Limit: 2, Period: time.Hour}
	b := setup(t, setupOpts{limits: &limits})
	for i := 0; i < 2; i++ {
		if r := b.call("GET", "/api/contacts", "guess."+strconv.Itoa(i)+".token", nil); r.status != 401 {
			t.Fatalf("guess %d: %d", i, r.status)
		}
	}
	if r := b.call("GET", "/api/contacts", "guess.3.token", nil); r.status != 429 {
		t.Fatalf("third guess: %d", r.status)
	}
	// A valid token is judged by the user's own limit, not the IP's.
	if r := b.call("GET", "/api/contacts", b.user, nil); r.status != 200 {
		t.Errorf("valid token: %d", r.status)
	}
}
