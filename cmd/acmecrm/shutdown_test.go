package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/webhook"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Graceful shutdown under load (SPEC §9): on SIGTERM the service stops
// accepting connections but answers every request it had begun — here one
// whose body is only half sent when the signal arrives — with its real
// outcome, commits what it acknowledged, and exits 0. Nothing it
// acknowledged is lost: after a restart every such event is applied
// exactly once, and a graceful stop commits the consumer's offsets.
func TestSIGTERMFinishesRequestsInFlight(t *testing.T) {
	t.Parallel()
	vars := testEnv(t)
	vars["HTTP_ADDR"] = freeAddr(t)
	vars["LOG_LEVEL"] = "error"
	vars["RATE_LIMIT_WEBHOOK"] = "100000/1s" // the load is not what is tested
	base := "http://" + vars["HTTP_ADDR"]
	child := startChild(t, vars)

	// A webhook whose body stops half-way: the server has begun it.
	const inflightID = "evt_sigterm_inflight"
	body := contactWebhook(inflightID, "contact.updated", "c-inflight", "Ada", time.Now())
	conn, err := net.Dial("tcp", vars["HTTP_ADDR"])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := http.Header{}
	webhook.AcmeHeaders(h, time.Now(), []byte(body), []byte(secret))
	half := len(body) / 2
	if _, err := fmt.Fprintf(conn, "POST /api/webhooks HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
		"X-Acme-Timestamp: %s\r\nX-Acme-Signature: %s\r\n\r\n%s",
		vars["HTTP_ADDR"], len(body), h.Get("X-Acme-Timestamp"), h.Get("X-Acme-Signature"), body[:half]); err != nil {
		t.Fatal(err)
	}
	// The scrape is one request in flight; the half-sent webhook the other.
	deadline := time.Now().Add(10 * time.Second)
	for value(scrape(t, base), "acmecrm_http_requests_in_flight") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the half-sent webhook never became a request in flight")
		}
		time.Sleep(10 * time.Millisecond)
	}

	load := startWebhookLoad(base, "evt_sigterm", 8)
	load.waitAcks(t, 200)
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()

	// New connections are refused once the shutdown has begun…
	deadline = time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", vars["HTTP_ADDR"], time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 10 s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-exited:
		t.Fatalf("the service exited (%v) with a request in flight", err)
	default:
	}
	// …and the request begun before it is still answered, with its outcome.
	if _, err := io.WriteString(conn, body[half:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight got no answer: %v", err)
	}
	var answer struct{ EventID, Status string }
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if resp.StatusCode != 202 || answer.EventID != inflightID || answer.Status != "accepted" {
		t.Fatalf("the request in flight: %d %+v", resp.StatusCode, answer)
	}

	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the service did not exit within 60 s of SIGTERM")
	}
	ids := append(load.end(), inflightID)
	if len(load.others) > 0 {
		t.Fatalf("requests answered other than 202 around the shutdown: %v", load.others)
	}

	// Every acknowledged webhook was committed before the exit…
	pool, err := postgres.Open(context.Background(), vars["DATABASE_URL"], 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var stored int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_events WHERE event_id = ANY($1)`, ids).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != len(ids) {
		t.Fatalf("%d of %d acknowledged webhooks stored after the shutdown", stored, len(ids))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(vars["KAFKA_BROKERS"], ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	offsets := func() (committed kadm.OffsetResponses, ends kadm.ListedOffsets) {
		t.Helper()
		committed, err := adm.FetchOffsets(ctx, "contact-events-group")
		if err != nil {
			t.Fatal(err)
		}
		ends, err = adm.ListEndOffsets(ctx, "contact-events")
		if err != nil {
			t.Fatal(err)
		}
		return committed, ends
	}
	from, _ := offsets()

	// …and each is applied exactly once after a restart.
	child = startChild(t, vars)
	waitAppliedOnce(t, vars["DATABASE_URL"], ids)
	// Some records may be on the topic twice (the first relay stopped
	// between publishing rows and deleting them), or applied by the first
	// consumer after its last commit: the second one has read every record
	// once the outbox is empty and it has settled as many records as the
	// topic holds past the offsets it started from.
	deadline = time.Now().Add(60 * time.Second)
	for {
		var waiting int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE topic = 'contact-events'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		_, ends := offsets()
		var unread int64
		ends.Each(func(end kadm.ListedOffset) {
			start, _ := from.Lookup(end.Topic, end.Partition)
			unread += end.Offset - max(start.At, 0)
		})
		settled := total(scrape(t, "http://"+vars["HTTP_ADDR"]), "acmecrm_events_processed_total")
		if waiting == 0 && settled >= float64(unread) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer settled %v of %d records (%d outbox rows waiting)", settled, unread, waiting)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A graceful stop commits the consumer's offsets: a next start has
	// nothing of contact-events to read again.
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	committed, ends := offsets()
	ends.Each(func(end kadm.ListedOffset) {
		c, _ := committed.Lookup(end.Topic, end.Partition)
		if end.Offset > 0 && c.At != end.Offset {
			t.Errorf("partition %d: committed offset %d, end %d", end.Partition, c.At, end.Offset)
		}
	})
	t.Logf("%d acknowledged, the last one in flight at SIGTERM; all applied exactly once", len(ids))
}
