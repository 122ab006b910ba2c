package httpapi

import (
	"net/http/httptest"
	"strconv"
	"strings"
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

// Behind a load balancer every request's peer is the balancer, so the
// per-IP limits counted all clients as one: ten logins a minute for the
// whole user base, and one guesser locked everyone out. With the balancer
// in TRUSTED_PROXIES the client it names is counted instead — the
// rightmost address it appended, not what the client wrote before it —
// and without it X-Forwarded-For is ignored, so nobody can pick their own
// bucket by sending the header.
func TestPerIPLimitsCountTheClientBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	limits := generousLimits
	limits.Login = ratelimit.Policy{Name: "login", Limit: 2, Period: time.Hour}
	wrong := map[string]string{"username": "x@example.com", "password": "wrong-one"}
	proxies, err := ParseTrustedProxies("127.0.0.0/8, ::1")
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, setupOpts{limits: &limits, proxies: proxies}) // setup's two logins: the proxy's own address
	login := func(b *bundle, xff string) int {
		return b.call("POST", "/api/auth/login", "", wrong, "X-Forwarded-For", xff).status
	}
	for i := 0; i < 2; i++ {
		if s := login(b, "203.0.113.7"); s != 401 {
			t.Fatalf("attempt %d of 203.0.113.7: %d", i+1, s)
		}
	}
	for _, xff := range []string{"203.0.113.7", "198.51.100.1, 203.0.113.7", "198.51.100.2,203.0.113.7, 127.0.0.1"} {
		if s := login(b, xff); s != 429 {
			t.Errorf("X-Forwarded-For %q: %d, want 429 for 203.0.113.7", xff, s)
		}
	}
	if s := login(b, "203.0.113.8"); s != 401 {
		t.Errorf("another client behind the proxy: %d, want its own bucket", s)
	}

	// An IPv6 client picks any address of its /64: the network is counted.
	for i, xff := range []string{"2001:db8:1:2::1", "[2001:db8:1:2:ffff:ffff:ffff:fffe]:4711"} {
		if s := login(b, xff); s != 401 {
			t.Fatalf("attempt %d from 2001:db8:1:2::/64: %d", i+1, s)
		}
	}
	if s := login(b, "2001:db8:1:2:a:b:c:d"); s != 429 {
		t.Errorf("a third address of the same /64: %d, want 429", s)
	}
	if s := login(b, "2001:db8:1:3::1"); s != 401 {
		t.Errorf("the next /64: %d, want its own bucket", s)
	}

	untrusting := setup(t, setupOpts{limits: &limits}) // setup's two logins used 127.0.0.1's bucket
	if s := login(untrusting, "203.0.113.9"); s != 429 {
		t.Errorf("X-Forwarded-For believed without TRUSTED_PROXIES: %d, want 429", s)
	}
}

func TestLimitKey(t *testing.T) {
	t.Parallel()
	for ip, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::1":      "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"::1":                  "::/64",
		"not-an-address":       "not-an-address",
	} {
		if got := limitKey(ip); got != want {
			t.Errorf("limitKey(%q) = %q, want %q", ip, got, want)
		}
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	proxies, err := ParseTrustedProxies("10.0.0.0/8,192.0.2.7,2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		peer string
		xff  []string
		want string
	}{
		{"198.51.100.9:5000", []string{"203.0.113.1"}, "198.51.100.9"},                  // not a proxy: its header is ignored
		{"10.1.2.3:5000", nil, "10.1.2.3"},                                              // a proxy sending its own request
		{"10.1.2.3:5000", []string{"203.0.113.1"}, "203.0.113.1"},                       // one proxy
		{"10.1.2.3:5000", []string{"6.6.6.6, 203.0.113.1"}, "203.0.113.1"},              // the client's own claim is left of its address
		{"10.1.2.3:5000", []string{"6.6.6.6", "203.0.113.1, 192.0.2.7"}, "203.0.113.1"}, // two proxies, two header lines
		{"10.1.2.3:5000", []string{"10.9.9.9, 192.0.2.7"}, "10.9.9.9"},                  // every hop a proxy: the first
		{"10.1.2.3:5000", []string{"203.0.113.1, not-an-ip"}, "10.1.2.3"},               // garbage appended: stop at the proxy
		{"10.1.2.3:5000", []string{"203.0.113.1:4711"}, "203.0.113.1"},                  // with a port
		{"[2001:db8::5]:5000", []string{"[2001:db9::1]:4711"}, "2001:db9::1"},           // IPv6
		{"[::ffff:10.1.2.3]:5000", []string{"::ffff:203.0.113.1"}, "203.0.113.1"},       // IPv4-mapped
		{"10.1.2.3:5000", []string{""}, "10.1.2.3"},                                     // an empty header
		{"10.1.2.3:5000", []string{"203.0.113.1, , 10.0.0.1"}, "10.0.0.1"},              // an empty entry is malformed: the last proxy named
		{"[2001:db8::5]:5000", []string{"203.0.113.1"}, "203.0.113.1"},                  // a v6 proxy, a v4 client
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := proxies.clientIP(r); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
		if got := TrustedProxies(nil).clientIP(r); got != strings.Trim(c.peer[:strings.LastIndex(c.peer, ":")], "[]") {
			t.Errorf("no trusted proxies, peer %s: %s", c.peer, got)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", "10.0.0.1:80"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
