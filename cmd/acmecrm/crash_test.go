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

// Crash safety: under sustained load the service is killed with SIGKILL and
// restarted; every webhook it acknowledged with 2xx ends applied exactly
// once.
func TestKill9LosesNoAcknowledgedEvent(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	vars["HTTP_ADDR"] = freeAddr(t)
	vars["LOG_LEVEL"] = "error"
	vars["KAFKA_SESSION_TIMEOUT"] = "6s" // the killed member's partitions move on sooner
	base := "http://" + vars["HTTP_ADDR"]
	child := startChild(t, vars)

	var mu sync.Mutex
	acked := map[string]string{} // event id → contact id
	var seq atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := seq.Add(1)
				id, contact := fmt.Sprintf("evt_crash_%d", n), fmt.Sprintf("c%d", rand.IntN(40))
				body := fmt.Sprintf(`{"event_type":"contact.updated","event_id":%q,"timestamp":%q,"data":{"contact_id":%q,`+
					`"acme_first_name":"N%d","acme_last_name":"Doe","acme_email":"d@example.com"}}`,
					id, time.Now().UTC().Format(time.RFC3339Nano), contact, n)
				req, _ := http.NewRequest("POST", base+"/api/webhooks", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				webhook.AcmeHeaders(req.Header, time.Now(), []byte(body), []byte("test-webhook-secret"))
				resp, err := client.Do(req)
				if err != nil {
					time.Sleep(10 * time.Millisecond) // the service is down: try the next event
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 202 {
					mu.Lock()
					acked[id] = contact
					mu.Unlock()
				}
			}
		}()
	}
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitAcks := func(n int) {
		deadline := time.Now().Add(60 * time.Second)
		for ackedCount() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d webhooks acknowledged", ackedCount())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAcks(300)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	killedAt := ackedCount()
	startChild(t, vars)
	waitAcks(killedAt + 300)
	close(stop)
	wg.Wait()

	pool, err := postgres.Open(context.Background(), vars["DATABASE_URL"], 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
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
			t.Fatalf("%d of %d acknowledged events processed after the crash", processed, len(ids))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Exactly once: one marker per processed event, none for others, and
	// every contact holds its newest event.
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
	t.Logf("%d acknowledged (%d before the kill), all applied exactly once", len(ids), killedAt)
}
