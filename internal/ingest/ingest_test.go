package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

func TestMain(m *testing.M) { infratest.Main(m) }

func event(id, contact string) postgres.IncomingEvent {
	now := time.Now().UTC()
	return postgres.IncomingEvent{
		Event: acmecrm.Event{EventID: id, EventType: acmecrm.EventContactDeleted, OccurredAt: now, ReceivedAt: now,
			Source: acmecrm.SourceAcme, ContactID: contact, Data: acmecrm.AcmeContact{ContactID: contact}},
		Scheme: "acme", SecretID: "current", Headers: map[string]string{}, RawBody: []byte(`{}`),
	}
}

// Concurrent requests share commits, and each is answered with its own
// outcome only after the commit.
func TestConcurrentRecordsAreCoalesced(t *testing.T) {
	t.Parallel()
	store := postgres.NewStore(infratest.Pool(t), postgres.StoreOptions{})
	b := New(store, Options{Topic: "contact-events", Writers: 1, MaxBatch: 64})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()

	const n = 300
	outcomes := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("evt_%d", i%250) // 50 re-deliveries among them
			o, err := b.Record(context.Background(), event(id, "c"))
			if err != nil {
				t.Error(err)
			}
			outcomes[i] = o
			// Answered only after the commit: the row is visible now.
			var seen int
			_ = store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_events WHERE event_id = $1`, id).Scan(&seen)
			if seen != 1 {
				t.Errorf("%s answered before it was committed", id)
			}
		}()
	}
	wg.Wait()
	accepted := 0
	for _, o := range outcomes {
		if o == postgres.OutcomeAccepted {
			accepted++
		}
	}
	if accepted != 250 {
		t.Errorf("accepted %d, want 250", accepted)
	}
	batches, rows := b.Stats()
	if rows != n || batches >= n/2 {
		t.Errorf("%d rows in %d commits: concurrent requests were not coalesced", rows, batches)
	}
	cancel()
	<-done
	if _, err := b.Record(context.Background(), event("late", "c")); err != ErrStopped {
		t.Errorf("after stop: %v", err)
	}
}
