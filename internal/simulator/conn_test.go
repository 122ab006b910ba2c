package simulator

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm/internal/webhook"
)

// loadReceiver answers every signed webhook 202 accepted through a real
// HTTP server and counts the connections it was sent on.
type loadReceiver struct {
	srv               *httptest.Server
	conns             atomic.Int64
	verified, refused atomic.Int64
	mu                sync.Mutex
	ids               map[string]int
}

func newLoadReceiver(t *testing.T, handle func(w http.ResponseWriter, n int64), configure func(*http.Server)) *loadReceiver {
	rc := &loadReceiver{ids: map[string]int{}}
	v := &webhook.Verifier{Secrets: []webhook.Secret{{ID: "current", Key: testKey}}, MaxAge: time.Minute, Now: time.Now}
	var n atomic.Int64
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := v.Verify(r.Header, body); err != nil {
			rc.refused.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		rc.verified.Add(1)
		rc.mu.Lock()
		rc.ids[string(body)]++
		rc.mu.Unlock()
		handle(w, n.Add(1))
	}))
	rc.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rc.conns.Add(1)
		}
	}
	if configure != nil {
		configure(rc.srv.Config)
	}
	rc.srv.Start()
	t.Cleanup(rc.srv.Close)
	return rc
}

func accepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"accepted"}`)
}

func runLoad(t *testing.T, opts LoadOptions) Summary {
	t.Helper()
	opts.Key = testKey
	l, err := NewLoad(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return l.Run(ctx)
}

// Each worker keeps one connection for the whole run, whatever the size
// or framing of the answers.
func TestLoadKeepsOneConnectionPerWorker(t *testing.T) {
	t.Parallel()
	rc := newLoadReceiver(t, func(w http.ResponseWriter, n int64) {
		if n%3 == 0 { // chunked, longer than the 4 KiB the generator keeps
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"status":"accepted","pad":"`+strings.Repeat("x", 10000)+`"}`)
			w.(http.Flusher).Flush()
			return
		}
		accepted(w)
	}, nil)
	s := runLoad(t, LoadOptions{URL: rc.srv.URL + "/api/webhooks", Concurrency: 4, Events: 300})
	if s.Errors != 0 || len(s.Rejected) != 0 || s.Accepted != 300 || rc.verified.Load() != 300 {
		t.Fatalf("summary %+v, receiver verified %d refused %d", s, rc.verified.Load(), rc.refused.Load())
	}
	if c := rc.conns.Load(); c != 4 {
		t.Fatalf("%d connections for 4 workers", c)
	}
}

// A server that closes idle connections, or asks to close after an
// answer, costs a reconnect, not a failed webhook; nothing is sent twice
// that was answered.
func TestLoadReconnectsWhenTheServerClosesConnections(t *testing.T) {
	t.Parallel()
	idle := newLoadReceiver(t, func(w http.ResponseWriter, _ int64) { accepted(w) },
		func(s *http.Server) { s.IdleTimeout = 5 * time.Millisecond })
	// 40 events at 50/s on one connection: 20 ms between requests, four
	// times the server's idle timeout.
	s := runLoad(t, LoadOptions{URL: idle.srv.URL + "/api/webhooks", Concurrency: 1, Events: 40, Rate: 50})
	if s.Errors != 0 || s.Accepted != 40 || idle.conns.Load() < 10 {
		t.Fatalf("idle-closing server: summary %+v over %d connections (last error %q)", s, idle.conns.Load(), s.LastError)
	}
	closing := newLoadReceiver(t, func(w http.ResponseWriter, n int64) {
		if n%2 == 0 {
			w.Header().Set("Connection", "close")
		}
		accepted(w)
	}, nil)
	s = runLoad(t, LoadOptions{URL: closing.srv.URL + "/api/webhooks", Concurrency: 2, Events: 100})
	if s.Errors != 0 || s.Accepted != 100 || closing.verified.Load() != 100 || closing.conns.Load() < 50 {
		t.Fatalf("closing server: summary %+v, verified %d over %d connections (last error %q)",
			s, closing.verified.Load(), closing.conns.Load(), s.LastError)
	}
	for _, rc := range []*loadReceiver{idle, closing} {
		for body, n := range rc.ids {
			if n != 1 {
				t.Fatalf("sent %d times: %.80s", n, body)
			}
		}
	}
}

// A receiver that is not there is an error per webhook, not a hang, and
// a URL the generator cannot speak to is refused up front.
func TestLoadReportsUnreachableReceivers(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := runLoad(t, LoadOptions{URL: "http://" + addr + "/api/webhooks", Concurrency: 2, Events: 6})
	if s.Errors != 6 || s.Accepted != 0 || !strings.Contains(s.LastError, "refused") {
		t.Fatalf("summary %+v", s)
	}
	if _, err := NewLoad(LoadOptions{URL: "ftp://127.0.0.1/x", Key: testKey, Events: 1}); err == nil {
		t.Fatal("ftp URL accepted")
	}
}

// Options that would make a run send nothing, or forever, are refused.
func TestLoadRefusesOptionsThatCannotRun(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]LoadOptions{
		"NaN rate":       {Rate: math.NaN(), Events: 1},
		"infinite rate":  {Rate: math.Inf(1), Events: 1},
		"huge rate":      {Rate: 1e308, Events: 1},
		"negative rate":  {Rate: -1, Events: 1},
		"NaN ratio":      {DuplicateRatio: math.NaN(), Events: 1},
		"ratio above 1":  {DeleteRatio: 1.5, Events: 1},
		"negative count": {Events: -3, Duration: time.Second},
		"negative time":  {Duration: -time.Second, Events: 5},
		"neither":        {},
	} {
		o.URL, o.Key = "http://127.0.0.1:1/api/webhooks", testKey
		if _, err := NewLoad(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
