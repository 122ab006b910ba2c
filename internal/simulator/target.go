package simulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/acmecrm/acmecrm"
)

// Targets is where the simulator may send: URL prefixes, and the
// addresses those may reach. A target must start with an allowed prefix; the
// address it resolves to is checked again when the connection is dialled,
// so a hostname that later resolves elsewhere (DNS rebinding) cannot reach
// private hosts. Private, loopback, link-local (cloud metadata) and other
// special addresses are refused unless an allowed prefix names them as an
// IP literal, or as localhost (which means loopback, RFC 6761, and is never
// asked of DNS).
type Targets struct {
	prefixes []string
	allowed  []netip.Prefix
}

// ParseTargets reads a comma-separated list of URL prefixes.
func ParseTargets(list string) (*Targets, error) {
	t := &Targets{}
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		u, err := parseTargetURL(s)
		if err != nil {
			return nil, fmt.Errorf("allowed target %q: %w", s, err)
		}
		t.prefixes = append(t.prefixes, normalURL(u))
		host := u.Hostname()
		if ip, err := netip.ParseAddr(host); err == nil {
			t.allowed = append(t.allowed, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		} else if isLocalhost(host) {
			t.allowed = append(t.allowed, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		}
	}
	if len(t.prefixes) == 0 {
		return nil, errors.New("no allowed target")
	}
	return t, nil
}

// Prefixes are the allowed URL prefixes, normalised.
func (t *Targets) Prefixes() []string { return append([]string(nil), t.prefixes...) }

func isLocalhost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

func parseTargetURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("has no host")
	case u.User != nil:
		return nil, errors.New("must not carry credentials")
	case u.Fragment != "" || u.Opaque != "":
		return nil, errors.New("must not have a fragment")
	case hasDotSegment(u.Path):
		return nil, errors.New(`must not have "." or ".." path segments`)
	}
	return u, nil
}

// hasDotSegment reports whether a decoded path has a "." or ".." segment,
// counting a backslash as a separator as some servers do. The prefix check
// compares strings, so "/in/../admin" starts with an allowed "/in/" but
// reaches "/admin" on a server that resolves dot segments.
func hasDotSegment(path string) bool {
	for _, seg := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// normalURL is the form prefixes are compared in: lower-case scheme and
// host, escaped path, query.
func normalURL(u *url.URL) string {
	s := strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + u.EscapedPath()
	if u.RawQuery != "" {
		s += "?" + u.RawQuery
	}
	return s
}

// notAllowed is the client-facing error of a refused target.
func notAllowed(format string, args ...any) error {
	return acmecrm.Errorf(acmecrm.KindInvalid, "TARGET_NOT_ALLOWED", format, args...)
}

// Check returns the target in normal form if it starts with an allowed
// prefix (at a path boundary: a prefix ending in "/hooks" does not allow
// "/hooksX"), else a TARGET_NOT_ALLOWED error.
func (t *Targets) Check(raw string) (string, error) {
	u, err := parseTargetURL(raw)
	if err != nil {
		return "", notAllowed("targetUrl %s", err)
	}
	n := normalURL(u)
	for _, p := range t.prefixes {
		if rest, ok := strings.CutPrefix(n, p); ok &&
			(rest == "" || strings.HasSuffix(p, "/") || rest[0] == '/' || rest[0] == '?') {
			return n, nil
		}
	}
	return "", notAllowed("targetUrl is not one of the allowed targets (WEBHOOK_SIMULATOR_ALLOWED_TARGETS)")
}

// special are ranges no target may reach unless allowed by name: besides
// Go's loopback / private / link-local / multicast / unspecified tests,
// "this network", carrier-grade NAT, IETF protocol assignments, benchmark
// and reserved ranges, and IPv6 discard and documentation space.
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// AllowsAddr reports whether a connection to ip may be made.
func (t *Targets) AllowsAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range t.allowed {
		if p.Contains(ip) {
			return true
		}
	}
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range special {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// errAddrNotAllowed is returned by dials to refused addresses.
var errAddrNotAllowed = errors.New("target address not allowed")

// control is the dialer hook that refuses disallowed addresses after
// resolution, on the address actually being connected to.
func (t *Targets) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", errAddrNotAllowed, address)
	}
	if !t.AllowsAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", errAddrNotAllowed, ap.Addr())
	}
	return nil
}

// CheckResolved resolves a target's host and refuses it when any address
// is not allowed, so that a bad target is a 400 at once rather than a
// failed delivery later. The dial-time check still guards every attempt.
func (t *Targets) CheckResolved(ctx context.Context, r *net.Resolver, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return notAllowed("targetUrl is not a URL")
	}
	host := u.Hostname()
	var addrs []netip.Addr
	switch ip, err := netip.ParseAddr(host); {
	case err == nil:
		addrs = []netip.Addr{ip}
	case isLocalhost(host):
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	default:
		addrs, err = r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return notAllowed("targetUrl host %q does not resolve", host)
		}
	}
	for _, a := range addrs {
		if !t.AllowsAddr(a) {
			return notAllowed("targetUrl host %q resolves to an address that is not allowed", host)
		}
	}
	return nil
}
