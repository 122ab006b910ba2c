package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

// startChild runs `acmecrm serve` in a child process with vars and waits
// until it is ready.
func startChild(t *testing.T, vars map[string]string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get("http://" + vars["HTTP_ADDR"] + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("child service not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// webhookLoad sends signed contact.updated webhooks (40 contacts) from
// several workers until ended, and remembers which the service
// acknowledged and every other status it answered. A request that gets no
// answer (the service is down or closing) is not retried: the worker goes
// on with the next event.
type webhookLoad struct {
	mu     sync.Mutex
	acked  map[string]string // event id → contact id
	others []int             // statuses other than 202
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startWebhookLoad(base, prefix string, workers int) *webhookLoad {
	l := &webhookLoad{acked: map[string]string{}, stop: make(chan struct{})}
	var seq atomic.Int64
	client := &http.Client{Timeout: 5 * time.Second}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				n := seq.Add(1)
				id, contact := fmt.Sprintf("%s_%d", prefix, n), fmt.Sprintf("c%d", rand.IntN(40))
				body := fmt.Sprintf(`{"event_type":"contact.updated","event_id":%q,"timestamp":%q,"data":{"contact_id":%q,`+
					`"acme_first_name":"N%d","acme_last_name":"Doe","acme_email":"d@example.com"}}`,
					id, time.Now().UTC().Format(time.RFC3339Nano), contact, n)
				req, _ := http.NewRequest("POST", base+"/api/webhooks", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				webhook.AcmeHeaders(req.Header, time.Now(), []byte(body), []byte(secret))
				resp, err := client.Do(req)
				if err != nil {
					time.Sleep(10 * time.Millisecond) // the service is down: try the next event
					continue
				}
				resp.Body.Close()
				l.mu.Lock()
				if resp.StatusCode == 202 {
					l.acked[id] = contact
				} else {
					l.others = append(l.others, resp.StatusCode)
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *webhookLoad) count() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.acked) }

// waitAcks waits until n webhooks in all were acknowledged.
func (l *webhookLoad) waitAcks(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for l.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d webhooks acknowledged", l.count())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// end stops the workers and returns the acknowledged event ids.
func (l *webhookLoad) end() []string {
	close(l.stop)
	l.wg.Wait()
	ids := make([]string, 0, len(l.acked))
	for id := range l.acked {
		ids = append(ids, id)
	}
	return ids
}

// waitAppliedOnce waits until every event of ids is processed, then checks
// that each processed event left exactly one marker and that every contact
// holds its newest event.
func waitAppliedOnce(t *testing.T, dbURL string, ids []string) {
	t.Helper()
	pool, err := postgres.Open(context.Background(), dbURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var processed int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events WHERE event_id = ANY($1) AND status = 'processed'`, ids).Scan(&processed); err != nil {
			t.Fatal(err)
		}
		if processed == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events processed", processed, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var markers, processedAll, wrong int
	err = pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM processed_events),
		(SELECT count(*) FROM webhook_events WHERE status = 'processed'),
		(SELECT count(*) FROM contacts c WHERE c.last_event_id <> (
			SELECT e.event_id FROM webhook_events e WHERE e.contact_id = c.source_id ORDER BY e.occurred_at DESC, e.event_id DESC LIMIT 1))`).
		Scan(&markers, &processedAll, &wrong)
	if err != nil {
		t.Fatal(err)
	}
	if markers != processedAll || processedAll < len(ids) || wrong != 0 {
		t.Fatalf("markers %d, processed %d, acknowledged %d, contacts not at their newest event %d", markers, processedAll, len(ids), wrong)
	}
}

// Crash safety: under sustained load the service is killed with SIGKILL and
// restarted; every webhook it acknowledged with 2xx ends applied exactly
// once.
func TestKill9LosesNoAcknowledgedEvent(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	vars["HTTP_ADDR"] = freeAddr(t)
	vars["LOG_LEVEL"] = "error"
	vars["KAFKA_SESSION_TIMEOUT"] = "6s" // the killed member's partitions move on sooner
	child := startChild(t, vars)

	load := startWebhookLoad("http://"+vars["HTTP_ADDR"], "evt_crash", 8)
	load.waitAcks(t, 300)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	killedAt := load.count()
	startChild(t, vars)
	load.waitAcks(t, killedAt+300)
	ids := load.end()

	waitAppliedOnce(t, vars["DATABASE_URL"], ids)
	t.Logf("%d acknowledged (%d before the kill), all applied exactly once", len(ids), killedAt)
}
