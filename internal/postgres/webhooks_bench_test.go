package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/simulator"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

// The receiver's writers: two (INGEST_WRITERS' default) committing at once.
const benchWriters = 2

// BenchmarkRecordEvents is the receiver's storage work without HTTP:
// realistic signed webhooks (as `acmecrm simulate --emit` writes them),
// verified and parsed beforehand, stored by RecordEvents from two writers,
// in batches of 1, 5, 20 (what 50 concurrent senders coalesce into) and 50
// webhooks; b.N counts webhooks. It reports rows/s and, when the server
// runs on this machine, PostgreSQL's CPU time per stored webhook (all of
// its processes: backends, WAL writer, checkpointer), which `make bench`
// prints as the database's share of the cost of a webhook. Across the
// batch sizes the figures show what coalescing buys: each commit has a
// fixed cost (a WAL flush, statement start, locks, a round trip) that a
// batch shares among its webhooks. `make bench` runs it against the durable
// local server (fsync and synchronous_commit on); the servers `acmecrm
// stack` starts for tests run without fsync, and their figures say nothing
// about a durable commit.
func BenchmarkRecordEvents(b *testing.B) {
	for _, size := range []int{1, 5, 20, 50} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchRecordEvents(b, size) })
	}
}

func benchRecordEvents(b *testing.B, size int) {
	ctx := context.Background()
	pool := infratest.Pool(b)
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	batches := benchBatches(b, b.N, size)
	var dataDir string
	_ = pool.QueryRow(ctx, "SHOW data_directory").Scan(&dataDir)
	cpu0, cpuOK := serverCPU(dataDir)

	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchWriters)
	for range benchWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(batches) {
					return
				}
				outcomes, err := store.RecordEvents(ctx, "contact-events", batches[i])
				if err == nil {
					for _, o := range outcomes {
						if o != postgres.OutcomeAccepted {
							err = fmt.Errorf("outcome %q for a new event", o)
							break
						}
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	rows := float64(b.N)
	b.ReportMetric(rows/elapsed.Seconds(), "rows/s")
	if cpu1, ok := serverCPU(dataDir); ok && cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/rows, "pg-µs/row")
	}
}

// benchBatches returns n fresh, parsed webhooks in batches of size (the
// last one smaller when size does not divide n).
func benchBatches(b *testing.B, n, size int) [][]postgres.IncomingEvent {
	b.Helper()
	var buf bytes.Buffer
	if err := simulator.Emit(&buf, simulator.EmitOptions{Key: []byte("bench-secret"), Events: n, MaxUpdates: 3, DeleteRatio: 0.1}); err != nil {
		b.Fatal(err)
	}
	parser, err := webhook.NewParser(5 * time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	batches := make([][]postgres.IncomingEvent, 0, (n+size-1)/size)
	batch := make([]postgres.IncomingEvent, 0, size)
	stored := 0
	received := time.Now()
	for line := range strings.Lines(buf.String()) {
		header, body, err := simulator.ReadEmitted(line)
		if err != nil {
			b.Fatal(err)
		}
		headers := make(map[string]string, len(header))
		for name := range header {
			headers[name] = header.Get(name)
		}
		ev, err := parser.Parse(body, received)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, postgres.IncomingEvent{Event: ev, Scheme: "acme", SecretID: "current", Headers: headers, RawBody: body})
		if len(batch) == size {
			batches = append(batches, batch)
			stored += len(batch)
			batch = make([]postgres.IncomingEvent, 0, size)
		}
	}
	if len(batch) > 0 {
		batches = append(batches, batch)
		stored += len(batch)
	}
	if stored != n {
		b.Fatalf("prepared %d webhooks, want %d", stored, n)
	}
	return batches
}

// serverCPU is the CPU time (user + system) used so far by the PostgreSQL
// server whose data directory is dir and by all of its processes (those
// that ended included), read from /proc; false when the server is not a
// process of this machine.
func serverCPU(dir string) (time.Duration, bool) {
	pidFile, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if dir == "" || err != nil {
		return 0, false
	}
	postmaster, _, _ := strings.Cut(string(pidFile), "\n")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	const ticksPerSecond = 100 // USER_HZ, 100 on every Linux architecture Go runs on
	var ticks int64
	found := false
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime stime cutime cstime: fields 4 and
		// 14–17; comm may hold spaces.
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 || (e.Name() != postmaster && f[1] != postmaster) {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += utime + stime
		if e.Name() == postmaster && len(f) >= 15 {
			cutime, _ := strconv.ParseInt(f[13], 10, 64)
			cstime, _ := strconv.ParseInt(f[14], 10, 64)
			ticks += cutime + cstime
			found = true
		}
	}
	return time.Duration(ticks) * time.Second / ticksPerSecond, found
}
