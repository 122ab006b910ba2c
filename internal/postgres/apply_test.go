package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/infratest"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

// row is the part of a contact that CRM events determine.
type row struct {
	Fields    acmecrm.ContactFields
	Deleted   bool
	DeletedAt string // when, so that the time of a tombstone converges too
	LastEvent string
}

func readRows(t *testing.T, store *postgres.Store) map[string]row {
	t.Helper()
	rows, err := store.Pool().Query(context.Background(), `SELECT source_id FROM contacts WHERE source = 'acmecrm'`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		ids = append(ids, id)
	}
	out := map[string]row{}
	for _, id := range ids {
		c, err := store.ContactBySource(context.Background(), "acmecrm", id)
		if err != nil {
			t.Fatal(err)
		}
		var last string
		_ = store.Pool().QueryRow(context.Background(), `SELECT last_event_id FROM contacts WHERE source='acmecrm' AND source_id=$1`, id).Scan(&last)
		r := row{Fields: c.ContactFields, Deleted: c.DeletedAt != nil, LastEvent: last}
		if c.DeletedAt != nil {
			r.DeletedAt = c.DeletedAt.UTC().Format(time.RFC3339Nano)
		}
		out[id] = r
	}
	return out
}

func randomHistory(r *rand.Rand, contact string, base time.Time) []acmecrm.Event {
	n := 1 + r.IntN(6)
	evs := make([]acmecrm.Event, n)
	t := base
	for i := range evs {
		// Equal timestamps happen: the event id breaks the tie.
		if r.IntN(4) != 0 {
			t = t.Add(time.Duration(1+r.IntN(1000)) * time.Millisecond)
		}
		typ := []string{acmecrm.EventContactCreated, acmecrm.EventContactUpdated, acmecrm.EventContactUpdated, acmecrm.EventContactDeleted}[r.IntN(4)]
		ev := acmecrm.Event{EventID: fmt.Sprintf("evt_%s_%02d_%d", contact, i, r.IntN(100)), EventType: typ, OccurredAt: t,
			ReceivedAt: t, Source: acmecrm.SourceAcme, ContactID: contact}
		if typ != acmecrm.EventContactDeleted {
			ev.Data = acmecrm.AcmeContact{ContactID: contact, FirstName: fmt.Sprintf("F%d", r.IntN(3)), LastName: "L",
				Email: fmt.Sprintf("e%d@example.com", r.IntN(3)), Company: []string{"", "Acme"}[r.IntN(2)],
				Address: "1 Main St, Springfield, IL 62701, USA", Status: []string{"Active", "lead"}[r.IntN(2)],
				Tags: []string{"t"}[:r.IntN(2)]}
		} else {
			ev.Data = acmecrm.AcmeContact{ContactID: contact}
		}
		evs[i] = ev
	}
	return evs
}

// Property: random event histories for many contacts, delivered shuffled,
// duplicated and delayed, end in the same rows as applying each history in
// order.
func TestAnyDeliveryOrderConverges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for seed := uint64(1); seed <= 4; seed++ {
		r := rand.New(rand.NewPCG(seed, 99))
		var all []acmecrm.Event
		base := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
		for c := 0; c < 40; c++ {
			all = append(all, randomHistory(r, fmt.Sprintf("c%d", c), base)...)
		}
		inOrder := append([]acmecrm.Event(nil), all...)
		sort.SliceStable(inOrder, func(i, j int) bool {
			if !inOrder[i].OccurredAt.Equal(inOrder[j].OccurredAt) {
				return inOrder[i].OccurredAt.Before(inOrder[j].OccurredAt)
			}
			return inOrder[i].EventID < inOrder[j].EventID
		})
		want := postgres.NewStore(infratest.Pool(t), postgres.StoreOptions{})
		for _, ev := range inOrder {
			if _, err := want.ApplyContactEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}

		// Shuffled, a third duplicated, some redelivered at the very end.
		var delivery []acmecrm.Event
		for _, ev := range all {
			delivery = append(delivery, ev)
			if r.IntN(3) == 0 {
				delivery = append(delivery, ev)
			}
		}
		r.Shuffle(len(delivery), func(i, j int) { delivery[i], delivery[j] = delivery[j], delivery[i] })
		delivery = append(delivery, delivery[:len(delivery)/5]...)
		got := postgres.NewStore(infratest.Pool(t), postgres.StoreOptions{})
		dups := 0
		for _, ev := range delivery {
			o, err := got.ApplyContactEvent(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			if o == postgres.AppliedDuplicate {
				dups++
			}
		}
		if dups != len(delivery)-len(all) {
			t.Errorf("seed %d: %d duplicates recognised, want %d", seed, dups, len(delivery)-len(all))
		}
		// The consumer's batched path: the same delivery in random batches.
		batched := postgres.NewStore(infratest.Pool(t), postgres.StoreOptions{})
		fresh := 0
		for i := 0; i < len(delivery); {
			n := 1 + r.IntN(50)
			end := min(i+n, len(delivery))
			k, err := batched.ApplyContactEvents(ctx, delivery[i:end])
			if err != nil {
				t.Fatal(err)
			}
			fresh += len(k)
			i = end
		}
		if fresh != len(all) {
			t.Errorf("seed %d: batches counted %d new events, want %d", seed, fresh, len(all))
		}
		if b, w := readRows(t, batched), readRows(t, want); !reflect.DeepEqual(b, w) {
			t.Fatalf("seed %d: batched rows differ from in-order rows", seed)
		}
		w, g := readRows(t, want), readRows(t, got)
		if len(w) != 40 || !reflect.DeepEqual(w, g) {
			for id := range w {
				if !reflect.DeepEqual(w[id], g[id]) {
					t.Errorf("seed %d contact %s:\n in order %+v\n shuffled %+v", seed, id, w[id], g[id])
				}
			}
			t.Fatalf("seed %d: rows differ", seed)
		}
	}
}

func TestApplySemantics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := postgres.NewStore(infratest.Pool(t), postgres.StoreOptions{})
	at := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	ev := func(id, typ string, sec int, first string) acmecrm.Event {
		e := acmecrm.Event{EventID: id, EventType: typ, OccurredAt: at.Add(time.Duration(sec) * time.Second), ContactID: "42",
			Data: acmecrm.AcmeContact{ContactID: "42"}}
		if typ != acmecrm.EventContactDeleted {
			e.Data = acmecrm.AcmeContact{ContactID: "42", FirstName: first, LastName: "Doe", Email: "j@example.com"}
		}
		return e
	}
	apply := func(e acmecrm.Event, want string) acmecrm.Contact {
		t.Helper()
		got, err := store.ApplyContactEvent(ctx, e)
		if err != nil || got != want {
			t.Fatalf("%s: %s %v, want %s", e.EventID, got, err, want)
		}
		c, _ := store.ContactBySource(ctx, "acmecrm", "42")
		return c
	}
	c := apply(ev("e1", acmecrm.EventContactCreated, 1, "John"), postgres.AppliedChanged)
	if c.FirstName != "John" || c.Version != 1 {
		t.Fatalf("created: %+v", c)
	}
	apply(ev("e1", acmecrm.EventContactCreated, 1, "John"), postgres.AppliedDuplicate)
	c = apply(ev("e2", acmecrm.EventContactUpdated, 2, "John"), postgres.AppliedChanged)
	if c.Version != 1 {
		t.Errorf("an update that changes nothing bumped the version to %d", c.Version)
	}
	c = apply(ev("e3", acmecrm.EventContactDeleted, 5, ""), postgres.AppliedChanged)
	if c.Status != "deleted" || c.DeletedAt == nil || c.FirstName != "" || c.Version != 2 {
		t.Errorf("tombstone: %+v", c)
	}
	apply(ev("e4", acmecrm.EventContactUpdated, 4, "Older"), postgres.AppliedStale) // cannot undo the delete
	c = apply(ev("e5", acmecrm.EventContactUpdated, 6, "Back"), postgres.AppliedChanged)
	if c.Status != "active" || c.DeletedAt != nil || c.FirstName != "Back" {
		t.Errorf("restore: %+v", c)
	}
	// A contact edited through the API is overwritten by a newer CRM event.
	bad := ev("e6", acmecrm.EventContactUpdated, 7, "")
	if _, err := store.ApplyContactEvent(ctx, bad); err == nil {
		t.Error("an invalid contact was applied")
	}
	var marker int
	_ = store.Pool().QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE event_id = 'e6'`).Scan(&marker)
	if marker != 0 {
		t.Error("a failed event left its processed marker behind")
	}
}

// A delete of a contact that is deleted already changes nothing but the
// time it was deleted: no version bump (the auto-trigger's round trip of
// an API delete relies on it).
func TestDeleteOfADeletedContactKeepsItsVersion(t *testing.T) {
	t.Parallel()
	store := postgres.NewStore(infratest.Pool(t), postgres.StoreOptions{})
	ctx := context.Background()
	base := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	ev := func(id, typ string, at time.Duration) acmecrm.Event {
		e := acmecrm.Event{EventID: id, EventType: typ, OccurredAt: base.Add(at), Source: acmecrm.SourceAcme, ContactID: "c-9"}
		if typ != acmecrm.EventContactDeleted {
			e.Data = acmecrm.AcmeContact{ContactID: "c-9", FirstName: "Ada", LastName: "L", Email: "ada@example.com"}
		}
		return e
	}
	for _, e := range []acmecrm.Event{ev("e1", acmecrm.EventContactCreated, 0), ev("e2", acmecrm.EventContactDeleted, time.Second)} {
		if _, err := store.ApplyContactEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	before, err := store.ContactBySource(ctx, acmecrm.SourceAcme, "c-9")
	if err != nil || before.Version != 2 {
		t.Fatalf("after create+delete: version %d, err %v", before.Version, err)
	}
	if o, err := store.ApplyContactEvent(ctx, ev("e3", acmecrm.EventContactDeleted, 2*time.Second)); err != nil || o != postgres.AppliedChanged {
		t.Fatalf("second delete: %q %v", o, err)
	}
	after, err := store.ContactBySource(ctx, acmecrm.SourceAcme, "c-9")
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != 2 || !after.UpdatedAt.Equal(before.UpdatedAt) || after.DeletedAt == nil || !after.DeletedAt.Equal(base.Add(2*time.Second)) {
		t.Fatalf("second delete: version %d (want 2), updatedAt moved %v, deletedAt %v", after.Version, !after.UpdatedAt.Equal(before.UpdatedAt), after.DeletedAt)
	}
	// A newer update still restores it (and that is a change).
	if _, err := store.ApplyContactEvent(ctx, ev("e4", acmecrm.EventContactUpdated, 3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if c, _ := store.ContactBySource(ctx, acmecrm.SourceAcme, "c-9"); c.DeletedAt != nil || c.Version != 3 {
		t.Fatalf("restore: deletedAt %v version %d", c.DeletedAt, c.Version)
	}
}
