package httpapi

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies are the addresses (single IPs or CIDR ranges) whose
// X-Forwarded-For header is believed: the load balancers and reverse
// proxies in front of the service (TRUSTED_PROXIES). Empty, every request's
// client is its connection's peer.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies reads a comma-separated list of IPs and CIDRs.
func ParseTrustedProxies(s string) (TrustedProxies, error) {
	var t TrustedProxies
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			t = append(t, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or a CIDR range", part)
		}
		a = a.Unmap()
		t = append(t, netip.PrefixFrom(a, a.BitLen()))
	}
	return t, nil
}

func (t TrustedProxies) trusts(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the address a request came from, which the per-IP rate
// limits count: the connection's peer, unless the peer is a trusted proxy.
// Then it is the rightmost address of X-Forwarded-For that is not a
// trusted proxy itself: each proxy appends the address it received the
// request from, so the entries left of that one are whatever the client
// chose to send and cannot be believed. A malformed entry ends the walk at
// the last proxy that was trusted.
func (t TrustedProxies) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(t) == 0 { // the default: nothing more to read
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !t.trusts(peer.Unmap()) {
		return host
	}
	client := peer.Unmap()
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		list := strings.Split(hops[i], ",")
		for j := len(list) - 1; j >= 0; j-- {
			a, ok := parseHop(list[j])
			if !ok {
				return client.String()
			}
			client = a
			if !t.trusts(a) {
				return a.String()
			}
		}
	}
	return client.String() // every hop is a proxy: the leftmost sent it
}

// clientKey is what the per-IP rate limits count a request against: the
// client's address (clientIP), except that an IPv6 client is counted by its
// /64 network. One subscriber or host is given a whole /64 and picks any
// address in it, so counting single IPv6 addresses would give one client
// 2^64 buckets — an unlimited login guesser.
func (t TrustedProxies) clientKey(r *http.Request) string {
	return limitKey(t.clientIP(r))
}

func limitKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	switch {
	case err != nil:
		return ip
	case a.Unmap().Is4():
		return a.Unmap().String()
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}
