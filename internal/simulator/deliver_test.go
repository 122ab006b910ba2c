package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

func TestMain(m *testing.M) { infratest.Main(m) }

var testKey = []byte("simulator-test-secret")

// receiver is a test webhook endpoint: it checks every request's signature
// as our receiver does and answers with the scripted statuses in turn (the
// last one repeats).
type receiver struct {
	t        *testing.T
	srv      *httptest.Server
	script   []func(w http.ResponseWriter)
	mu       sync.Mutex
	requests []received
}

type received struct {
	at         time.Time
	deliveryID string
	timestamp  string
	body       string
	verified   bool
}

func status(code int, headers ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, http.StatusText(code))
	}
}

func newReceiver(t *testing.T, script ...func(w http.ResponseWriter)) *receiver {
	rc := &receiver{t: t, script: script}
	v := &webhook.Verifier{Secrets: []webhook.Secret{{ID: "current", Key: testKey}}, MaxAge: time.Minute, Now: time.Now}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, err := v.Verify(r.Header, body)
		rc.mu.Lock()
		n := len(rc.requests)
		rc.requests = append(rc.requests, received{at: time.Now(), deliveryID: r.Header.Get("X-Acme-Delivery-Id"),
			timestamp: r.Header.Get(webhook.HeaderAcmeTimestamp), body: string(body), verified: err == nil})
		rc.mu.Unlock()
		if r.URL.Path == "/elsewhere" {
			status(http.StatusOK)(w)
			return
		}
		rc.script[min(n, len(rc.script)-1)](w)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.requests...)
}

type fixture struct {
	t     *testing.T
	store *postgres.Store
	opts  Options
}

func newFixture(t *testing.T, allowed string) *fixture {
	t.Helper()
	targets, err := ParseTargets(allowed)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, store: postgres.NewStore(infratest.Pool(t), postgres.StoreOptions{}), opts: Options{
		Key: testKey, Targets: targets, Timeout: 5 * time.Second, PollInterval: 50 * time.Millisecond,
		Retry: RetryPolicy{MaxRetries: 3, InitialDelay: 40 * time.Millisecond, MaxDelay: time.Second},
	}}
}

// sim returns a new simulator on the fixture's database, like one more
// process of the service.
func (f *fixture) sim() *Simulator { return New(f.store, f.opts) }

// run starts a simulator's worker until the test ends.
func (f *fixture) run(s *Simulator) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	f.t.Cleanup(func() { cancel(); <-done })
}

var contactData = json.RawMessage(`{"contact_id":"c-1","acme_first_name":"Ada","acme_last_name":"Lovelace","acme_email":"ada@example.com"}`)

func (f *fixture) send(s *Simulator, target string, mod ...func(*Request)) Result {
	f.t.Helper()
	req := Request{EventType: acmecrm.EventContactCreated, Data: contactData, TargetURL: target}
	for _, m := range mod {
		m(&req)
	}
	res, err := s.Send(context.Background(), req)
	if err != nil {
		f.t.Fatalf("send: %v", err)
	}
	return res
}

// waitFor polls a delivery until it reaches a final status.
func (f *fixture) waitFor(id string, timeout time.Duration) postgres.Delivery {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d, err := f.store.SimulatorDelivery(context.Background(), id)
		if err != nil {
			f.t.Fatal(err)
		}
		if d.Status == postgres.DeliveryDelivered || d.Status == postgres.DeliveryFailed {
			return d
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("delivery %s still %s after %v (attempts %d)", id, d.Status, timeout, d.Attempts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func codes(d postgres.Delivery) []int {
	var out []int
	for _, a := range d.AttemptLog {
		c := 0
		if a.StatusCode != nil {
			c = *a.StatusCode
		}
		out = append(out, c)
	}
	return out
}

func TestRetriesWithBackoffUntilDelivered(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(500), status(502), status(202))
	f := newFixture(t, rc.srv.URL+"/")
	s := f.sim()
	f.run(s)
	res := f.send(s, rc.srv.URL+"/hook")
	if res.Deliveries[0].Attempts != 1 || res.Deliveries[0].Status != postgres.DeliveryPending {
		t.Fatalf("after the first attempt: %+v", res.Deliveries[0])
	}
	d := f.waitFor(res.Deliveries[0].ID, 10*time.Second)
	if d.Status != postgres.DeliveryDelivered || d.Attempts != 3 || !equalInts(codes(d), []int{500, 502, 202}) {
		t.Fatalf("delivery %s after %d attempts, codes %v", d.Status, d.Attempts, codes(d))
	}
	reqs := rc.got()
	if len(reqs) != 3 {
		t.Fatalf("receiver saw %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if !r.verified || r.body != reqs[0].body {
			t.Errorf("request %d: verified %v, same body %v", i, r.verified, r.body == reqs[0].body)
		}
		if i > 0 {
			// Backoff: 40 ms then 80 ms, with equal jitter (at least half).
			if gap, lo := r.at.Sub(reqs[i-1].at), 20*time.Millisecond<<(i-1); gap < lo {
				t.Errorf("retry %d came %v after the previous attempt, want ≥ %v", i, gap, lo)
			}
			if r.timestamp == reqs[i-1].timestamp {
				t.Errorf("retry %d reused the signature timestamp %s", i, r.timestamp)
			}
		}
	}
	if d.LastStatusCode == nil || *d.LastStatusCode != 202 || d.DeliveredAt == nil {
		t.Errorf("final state: %+v", d)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(429, "Retry-After", "1"), status(200))
	f := newFixture(t, rc.srv.URL+"/")
	f.opts.Retry.InitialDelay = 10 * time.Millisecond
	s := f.sim()
	f.run(s)
	d := f.waitFor(f.send(s, rc.srv.URL+"/").Deliveries[0].ID, 10*time.Second)
	reqs := rc.got()
	if d.Status != postgres.DeliveryDelivered || len(reqs) != 2 {
		t.Fatalf("delivery %s, %d requests", d.Status, len(reqs))
	}
	if gap := reqs[1].at.Sub(reqs[0].at); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1", gap)
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 5000)
	rc := newReceiver(t, func(w http.ResponseWriter) { w.WriteHeader(400); _, _ = io.WriteString(w, big) })
	f := newFixture(t, rc.srv.URL+"/")
	s := f.sim()
	f.run(s)
	res := f.send(s, rc.srv.URL+"/")
	if got := res.Deliveries[0]; got.Status != postgres.DeliveryFailed || got.Attempts != 1 {
		t.Fatalf("a 400 left the delivery %s after %d attempts", got.Status, got.Attempts)
	}
	d, err := f.store.SimulatorDelivery(context.Background(), res.Deliveries[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.AttemptLog) != 1 || d.AttemptLog[0].ResponseExcerpt == nil || len(*d.AttemptLog[0].ResponseExcerpt) != 1024 {
		t.Fatalf("attempt log: %+v", d.AttemptLog)
	}
	if d.NextAttemptAt != nil {
		t.Errorf("a failed delivery is still due at %v", d.NextAttemptAt)
	}
}

func TestGivesUpAfterMaxRetries(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(503))
	f := newFixture(t, rc.srv.URL+"/")
	f.opts.Retry = RetryPolicy{MaxRetries: 2, InitialDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
	s := f.sim()
	f.run(s)
	d := f.waitFor(f.send(s, rc.srv.URL+"/").Deliveries[0].ID, 10*time.Second)
	if d.Status != postgres.DeliveryFailed || d.Attempts != 3 || len(rc.got()) != 3 || !strings.Contains(*d.LastError, "gave up") {
		t.Fatalf("delivery %s after %d attempts (%d requests), last error %v", d.Status, d.Attempts, len(rc.got()), d.LastError)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(302, "Location", "/elsewhere"))
	f := newFixture(t, rc.srv.URL+"/")
	d := f.send(f.sim(), rc.srv.URL+"/").Deliveries[0]
	if d.Status != postgres.DeliveryFailed || d.LastStatusCode == nil || *d.LastStatusCode != 302 {
		t.Fatalf("redirected delivery: %+v", d)
	}
	if n := len(rc.got()); n != 1 {
		t.Errorf("the redirect was followed: %d requests", n)
	}
}

func TestPendingDeliveriesResumeAfterRestart(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(503), status(200))
	f := newFixture(t, rc.srv.URL+"/")
	// The first process makes the first attempt and stops before the retry.
	first := f.send(f.sim(), rc.srv.URL+"/").Deliveries[0]
	if first.Status != postgres.DeliveryPending {
		t.Fatalf("after a 503: %s", first.Status)
	}
	// Another delivery was claimed by a worker that then died mid-attempt.
	lost := f.send(f.sim(), rc.srv.URL+"/", func(r *Request) { r.Delay = time.Millisecond }).Deliveries[0]
	deadline := time.Now().Add(5 * time.Second)
	for {
		claimed, err := f.store.ClaimDeliveries(context.Background(), []string{lost.ID}, 1, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(claimed) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delayed delivery never became due")
		}
		time.Sleep(time.Millisecond)
	}
	// A restarted service resumes both.
	f.run(f.sim())
	for _, id := range []string{first.ID, lost.ID} {
		if d := f.waitFor(id, 10*time.Second); d.Status != postgres.DeliveryDelivered || d.Attempts != 2 {
			t.Errorf("delivery %s: %s after %d attempts", id, d.Status, d.Attempts)
		}
	}
}

func TestWorkersNeverMakeTheSameAttemptTwice(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(200))
	f := newFixture(t, rc.srv.URL+"/")
	const n = 120
	var ids []string
	for range n {
		res := f.send(f.sim(), rc.srv.URL+"/", func(r *Request) { r.Delay = time.Millisecond })
		ids = append(ids, res.Deliveries[0].ID)
	}
	for range 3 {
		f.run(f.sim())
	}
	for _, id := range ids {
		if d := f.waitFor(id, 20*time.Second); d.Status != postgres.DeliveryDelivered || d.Attempts != 1 {
			t.Errorf("delivery %s: %s after %d attempts", id, d.Status, d.Attempts)
		}
	}
	seen := map[string]int{}
	for _, r := range rc.got() {
		seen[r.deliveryID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("delivery %s was sent %d times", id, seen[id])
		}
	}
}

// dnsServer answers A queries on a loopback UDP port with the address
// answer returns for the n-th query (1-based), and AAAA with nothing: a
// real resolver path for testing what a hostname resolves to.
func dnsServer(t *testing.T, answer func(n int) netip.Addr) *net.Resolver {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var queries atomic.Int32
	go func() {
		buf := make([]byte, 1500)
		for {
			k, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:k])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			_ = b.StartQuestions()
			_ = b.Question(q)
			_ = b.StartAnswers()
			if q.Type == dnsmessage.TypeA {
				ip := answer(int(queries.Add(1))).As4()
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET}, dnsmessage.AResource{A: ip})
			}
			msg, err := b.Finish()
			if err == nil {
				_, _ = pc.WriteTo(msg, addr)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

func TestHostnamesResolvingToPrivateAddressesAreRefused(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(200))
	port := rc.srv.Listener.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct{ host, addr string }{
		{"loopback.test", "127.0.0.1"},
		{"metadata.test", "169.254.169.254"},
		{"intranet.test", "10.0.0.7"},
	} {
		f := newFixture(t, "http://"+tc.host+":"+strconv.Itoa(port)+"/")
		f.opts.Resolver = dnsServer(t, func(int) netip.Addr { return netip.MustParseAddr(tc.addr) })
		_, err := f.sim().Send(context.Background(), Request{EventType: acmecrm.EventContactCreated, Data: contactData,
			TargetURL: "http://" + tc.host + ":" + strconv.Itoa(port) + "/"})
		if e := (*acmecrm.Error)(nil); !errors.As(err, &e) || e.Code != "TARGET_NOT_ALLOWED" {
			t.Errorf("%s → %s: err = %v, want TARGET_NOT_ALLOWED", tc.host, tc.addr, err)
		}
	}
	if n := len(rc.got()); n != 0 {
		t.Errorf("the receiver was reached %d times", n)
	}
}

func TestDNSRebindingIsCaughtAtDialTime(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(200))
	port := strconv.Itoa(rc.srv.Listener.Addr().(*net.TCPAddr).Port)
	f := newFixture(t, "http://rebind.test:"+port+"/")
	// The check at request time sees a public address; the dial sees loopback.
	f.opts.Resolver = dnsServer(t, func(n int) netip.Addr {
		if n == 1 {
			return netip.MustParseAddr("93.184.216.34")
		}
		return netip.MustParseAddr("127.0.0.1")
	})
	d := f.send(f.sim(), "http://rebind.test:"+port+"/").Deliveries[0]
	if d.Status != postgres.DeliveryFailed || d.LastError == nil || !strings.Contains(*d.LastError, "not allowed") {
		t.Fatalf("rebound delivery: status %s, error %v", d.Status, d.LastError)
	}
	if n := len(rc.got()); n != 0 {
		t.Errorf("the receiver was reached %d times", n)
	}
}

func TestNetworkErrorsAndTimeoutsAreRetried(t *testing.T) {
	t.Parallel()
	// Nothing listens on a closed listener's port: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/"
	ln.Close()
	// A receiver that answers only after the attempt timeout.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets the handler return so Close does not wait

	f := newFixture(t, closed+","+slow.URL+"/")
	f.opts.Timeout = 200 * time.Millisecond
	f.opts.Retry.InitialDelay, f.opts.Retry.MaxDelay = time.Hour, time.Hour // the retry is scheduled, not made, here
	s := f.sim()
	for _, target := range []string{closed, slow.URL + "/"} {
		d := f.send(s, target).Deliveries[0]
		if d.Status != postgres.DeliveryPending || d.Attempts != 1 || d.LastError == nil || d.LastStatusCode != nil ||
			d.NextAttemptAt == nil || time.Until(*d.NextAttemptAt) < 20*time.Minute {
			t.Errorf("%s: status %s attempts %d next %v error %v", target, d.Status, d.Attempts, d.NextAttemptAt, d.LastError)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		" 7 ":                           7 * time.Second,
		"0":                             0,
		"-5":                            0,
		"soon":                          0,
		"86400":                         maxRetryAfter,
		"9223372036":                    maxRetryAfter, // ~292 years
		"18446744074":                   maxRetryAfter, // × 1e9 ns wraps around to 0.29 s
		"99999999999999999999":          0,             // not a number Go can hold
		"Fri, 02 Jan 2026 03:05:05 GMT": time.Minute,
		"Fri, 31 Dec 9999 23:59:59 GMT": maxRetryAfter,
		"Thu, 01 Jan 2026 00:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %v, want %v", v, got, want)
		}
	}
}
