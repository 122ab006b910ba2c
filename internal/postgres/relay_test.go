package postgres_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

// Relays take turns. While one relay's batch is on its way to Kafka, a
// second relay claims nothing: were it to publish the next rows meanwhile,
// a later change of a contact could reach Kafka before an earlier one, and
// consumers of the topic would see them out of order.
func TestRelaysTakeTurns(t *testing.T) {
	t.Parallel()
	store := postgres.NewStore(infratest.Pool(t), postgres.StoreOptions{})
	ctx := context.Background()
	queue(t, store, 4) // four changes of one contact, in order
	var mu sync.Mutex
	var published []int64
	publish := func(msgs []postgres.OutboxMessage) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			published = append(published, m.ID)
		}
	}

	// The first relay claims two rows and is slow to publish them.
	release := make(chan struct{})
	first := holdTurn(t, store, 2, release, publish)
	// The second relay, meanwhile, publishes nothing.
	n, _, err := store.PublishOutbox(ctx, 0, 2, func(_ context.Context, msgs []postgres.OutboxMessage) (map[int64]error, error) {
		publish(msgs)
		return nil, nil
	})
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("a second relay published %d rows while the first was publishing", n)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// Then it takes its turn.
	for range 10 {
		n, _, err := store.PublishOutbox(ctx, 0, 2, func(_ context.Context, msgs []postgres.OutboxMessage) (map[int64]error, error) {
			publish(msgs)
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if len(published) != 4 || !slices.IsSorted(published) {
		t.Errorf("published rows %v, want all four in id order", published)
	}
}

// A relay that stops talking in the middle of its turn — cut off from the
// database without the server noticing — loses its session after
// RelayStall, and the turn with it: the other relays do not wait for TCP
// keepalives to give up, hours later.
func TestAStalledRelayLosesItsTurn(t *testing.T) {
	t.Parallel()
	store := postgres.NewStore(infratest.Pool(t), postgres.StoreOptions{RelayStall: 300 * time.Millisecond})
	ctx := context.Background()
	queue(t, store, 2)
	release := make(chan struct{})
	defer close(release)
	first := holdTurn(t, store, 10, release, nil) // and stalls
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _, err := store.PublishOutbox(ctx, 0, 10, func(context.Context, []postgres.OutboxMessage) (map[int64]error, error) {
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stalled relay kept its turn")
		}
		time.Sleep(20 * time.Millisecond)
	}
	release <- struct{}{}
	if err := <-first; err == nil {
		t.Error("the stalled relay's transaction committed after it lost its session")
	}
}

// queue adds n outbox rows for one contact.
func queue(t *testing.T, store *postgres.Store, n int) {
	t.Helper()
	for range n {
		if _, err := store.Pool().Exec(context.Background(), `INSERT INTO outbox (topic, key, payload, headers) VALUES ('contacts', 'c1', '{}', '{}')`); err != nil {
			t.Fatal(err)
		}
	}
}

// holdTurn starts a relay that claims up to n rows and then waits for
// release (30 s at most) before it publishes them (to publish, when not
// nil). It returns once the rows are claimed; the relay's result arrives
// on the channel.
func holdTurn(t *testing.T, store *postgres.Store, n int, release <-chan struct{}, publish func([]postgres.OutboxMessage)) <-chan error {
	t.Helper()
	claimed := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		_, _, err := store.PublishOutbox(context.Background(), 0, n, func(_ context.Context, msgs []postgres.OutboxMessage) (map[int64]error, error) {
			close(claimed)
			select {
			case <-release:
			case <-time.After(30 * time.Second):
			}
			if publish != nil {
				publish(msgs)
			}
			return nil, nil
		})
		result <- err
	}()
	select {
	case <-claimed:
	case <-time.After(30 * time.Second):
		t.Fatal("the first relay claimed nothing")
	}
	return result
}
