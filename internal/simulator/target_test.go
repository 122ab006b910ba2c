package simulator

import (
	"net/netip"
	"testing"
)

func TestTargetPrefixes(t *testing.T) {
	t.Parallel()
	targets, err := ParseTargets("http://127.0.0.1:3000/api/webhooks, https://Hooks.Example.com/in/")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:3000/api/webhooks", true},
		{"http://127.0.0.1:3000/api/webhooks?x=1", true},
		{"http://127.0.0.1:3000/api/webhooks/sub", true},
		{"https://hooks.example.com/in/anything", true},
		{"HTTPS://HOOKS.EXAMPLE.COM/in/x", true},
		{"http://127.0.0.1:3000/api/webhooksX", false},         // not at a path boundary
		{"http://127.0.0.1:30001/api/webhooks", false},         // another port
		{"http://127.0.0.1:3000@10.0.0.1/api/webhooks", false}, // credentials trick
		{"http://user:pw@127.0.0.1:3000/api/webhooks", false},
		{"http://hooks.example.com/in/x", false}, // scheme is part of the prefix
		{"https://hooks.example.com.evil.test/in/", false},
		{"ftp://127.0.0.1:3000/api/webhooks", false},
		{"http://169.254.169.254/latest/meta-data", false},
		{"http://10.0.0.1/api/webhooks", false},
		{"/api/webhooks", false},
		{"", false},
		// Dot segments climb out of an allowed path on the target's server,
		// written plainly, percent-encoded or with backslashes.
		{"https://hooks.example.com/in/../admin", false},
		{"https://hooks.example.com/in/./x/../../admin", false},
		{"https://hooks.example.com/in/%2e%2e/admin", false},
		{"https://hooks.example.com/in/%2E%2e%2Fadmin", false},
		{"https://hooks.example.com/in/..%5cadmin", false},
		{"http://127.0.0.1:3000/api/webhooks/../../metrics", false},
		{"https://hooks.example.com/in/..x/a.b/...", true}, // names, not dot segments
	} {
		_, err := targets.Check(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
	if _, err := ParseTargets(" , "); err == nil {
		t.Error("an empty list must be refused")
	}
	if _, err := ParseTargets("https://hooks.example.com/in/../"); err == nil {
		t.Error("a prefix with a dot segment must be refused")
	}
	if _, err := ParseTargets("gopher://x"); err == nil {
		t.Error("a non-http prefix must be refused")
	}
}

func TestTargetAddresses(t *testing.T) {
	t.Parallel()
	targets, err := ParseTargets("http://127.0.0.1:3000/api/webhooks,https://hooks.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	local, err := ParseTargets("http://localhost:3000/api/webhooks")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr         string
		ok, okViaLoc bool
	}{
		{"127.0.0.1", true, true}, // named as a literal / as localhost
		{"127.0.0.2", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", true, true},
		{"10.1.2.3", false, false},
		{"172.16.0.1", false, false},
		{"192.168.1.1", false, false},
		{"169.254.169.254", false, false}, // cloud metadata
		{"fd00:ec2::254", false, false},   // AWS IPv6 metadata
		{"100.64.0.1", false, false},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"224.0.0.1", false, false},
		{"fe80::1", false, false},
		{"93.184.216.34", true, true}, // public
		{"2606:4700::1111", true, true},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := targets.AllowsAddr(a); got != tc.ok {
			t.Errorf("AllowsAddr(%s) = %v, want %v", tc.addr, got, tc.ok)
		}
		if got := local.AllowsAddr(a); got != tc.okViaLoc {
			t.Errorf("localhost targets: AllowsAddr(%s) = %v, want %v", tc.addr, got, tc.okViaLoc)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{MaxRetries: 10, InitialDelay: 1000e6, MaxDelay: 60000e6}
	for failures, want := range map[int]float64{1: 1, 2: 2, 3: 4, 6: 32, 7: 60, 20: 60} {
		lo, hi := p.Backoff(failures, 0).Seconds(), p.Backoff(failures, 0.999999).Seconds()
		if lo != want/2 || hi > want || hi < want*0.999 {
			t.Errorf("failures %d: backoff in [%v, %v], want [%v, %v]", failures, lo, hi, want/2, want)
		}
	}
}
