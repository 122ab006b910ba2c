package simulator

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

// LoadOptions describe a load run (acmecrm simulate).
type LoadOptions struct {
	// URL is the receiver; Key the secret to sign with.
	URL string
	Key []byte
	// Rate is events per second (0: as fast as Concurrency allows).
	Rate float64
	// Concurrency is how many requests are in flight at most.
	Concurrency int
	// Duration and Events stop the run, whichever comes first (0: unset;
	// at least one must be set).
	Duration time.Duration
	Events   int
	// MaxUpdates is the most updates in one contact's lifecycle (created,
	// 0..MaxUpdates updates, then sometimes deleted).
	MaxUpdates int
	// DeleteRatio is the share of lifecycles that end deleted;
	// DuplicateRatio the share of events sent twice; ReorderRatio the share
	// of events sent after the event that follows them.
	DeleteRatio    float64
	DuplicateRatio float64
	ReorderRatio   float64
	// Seed makes the generated data repeatable (0: random).
	Seed uint64
	// Progress, when set, is called about once per ProgressEvery with the
	// counts so far.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Progress is a running count.
type Progress struct {
	Elapsed                                  time.Duration
	Sent, Accepted, Duplicate, Rejected, Err int64
}

// Summary is the result of a load run.
type Summary struct {
	URL         string           `json:"url"`
	Elapsed     float64          `json:"elapsedSeconds"`
	Sent        int64            `json:"sent"`
	Accepted    int64            `json:"accepted"`
	Duplicate   int64            `json:"duplicate"`
	Ignored     int64            `json:"ignored"`
	Rejected    map[string]int64 `json:"rejected"` // by HTTP status
	Errors      int64            `json:"errors"`   // no HTTP response
	LastError   string           `json:"lastError,omitempty"`
	Contacts    int              `json:"contacts"`
	RatePerSec  float64          `json:"ratePerSecond"`
	LatencyMs   Latency          `json:"latencyMs"`
	TargetRate  float64          `json:"targetRate"`
	Concurrency int              `json:"concurrency"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Final is a contact's expected state after a run: the last event of its
// lifecycle (by event time), if every event of it was acknowledged.
type Final struct {
	Deleted bool
	Data    acmecrm.AcmeContact
}

// Load is one load run.
type Load struct {
	opts   LoadOptions
	target *url.URL
	proto  *keepAlive // unconnected; each worker connects a copy
	runID  string

	sent, accepted, duplicate, ignored, errs atomic.Int64
	rejectedTotal                            atomic.Int64

	mu        sync.Mutex
	rejected  map[int]int64
	lastErr   string
	latencies []time.Duration
	finals    map[string]Final
	complete  map[string]bool // every event of the contact acknowledged
	contacts  int
}

// maxLoadRate bounds --rate: beyond it the pacing's slot count (seconds ×
// rate, an int) would overflow, and no receiver takes that much anyway.
const maxLoadRate = 10_000_000

// NewLoad prepares a run.
func NewLoad(opts LoadOptions) (*Load, error) {
	switch {
	case opts.URL == "":
		return nil, fmt.Errorf("no receiver URL")
	case opts.Duration < 0 || opts.Events < 0:
		return nil, fmt.Errorf("duration and events must not be negative")
	case opts.Duration == 0 && opts.Events == 0:
		return nil, fmt.Errorf("give a duration or a number of events")
	case !(opts.Rate >= 0 && opts.Rate <= maxLoadRate): // NaN fails both
		return nil, fmt.Errorf("rate must be from 0 to %d events per second", maxLoadRate)
	}
	for _, r := range []float64{opts.DeleteRatio, opts.DuplicateRatio, opts.ReorderRatio} {
		if !(r >= 0 && r <= 1) {
			return nil, fmt.Errorf("ratios must be between 0 and 1")
		}
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.MaxUpdates < 0 {
		opts.MaxUpdates = 0
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = time.Second
	}
	if opts.Seed == 0 {
		opts.Seed = rand.Uint64()
	}
	target, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("receiver URL: %w", err)
	}
	proto, err := newKeepAlive(target)
	if err != nil {
		return nil, err
	}
	return &Load{opts: opts, target: target, proto: proto, runID: strconv.FormatUint(opts.Seed%1_000_000_007, 36) + "-" + strconv.FormatInt(time.Now().UnixMilli()%1e7, 36),
		rejected: map[int]int64{}, finals: map[string]Final{}, complete: map[string]bool{}}, nil
}

// Run sends until the duration or event count is reached (or ctx ends) and
// returns the summary.
func (l *Load) Run(ctx context.Context) Summary {
	start := time.Now()
	// The duration ends the sending, not the requests in flight: those are
	// answered and counted (only ctx, an interrupt, cuts them off).
	sendCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if l.opts.Duration > 0 {
		var c context.CancelFunc
		sendCtx, c = context.WithTimeout(sendCtx, l.opts.Duration)
		defer c()
	}
	// Send slots: one per event, paced when a rate is set.
	slots := make(chan struct{}, l.opts.Concurrency)
	go l.pace(sendCtx, slots)

	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		if l.opts.Progress == nil {
			return
		}
		t := time.NewTicker(l.opts.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				l.opts.Progress(l.progress(time.Since(start)))
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range l.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.worker(ctx, sendCtx, w, slots)
		}()
	}
	wg.Wait()
	close(stopProgress)
	<-progressDone
	return l.summary(time.Since(start))
}

// pace hands out send slots: all at once without a rate, else on a 5 ms
// tick as many as the rate has earned, so the schedule holds on average
// without a timer per event. It stops after Events slots.
func (l *Load) pace(ctx context.Context, slots chan<- struct{}) {
	defer close(slots)
	given := 0
	give := func() bool {
		if l.opts.Events > 0 && given >= l.opts.Events {
			return false
		}
		select {
		case slots <- struct{}{}:
			given++
			return true
		case <-ctx.Done():
			return false
		}
	}
	if l.opts.Rate == 0 {
		for give() {
		}
		return
	}
	start := time.Now()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due := int(time.Since(start).Seconds() * l.opts.Rate)
		for given < due {
			if !give() {
				return
			}
		}
	}
}

// event is one webhook of a lifecycle, with its event time fixed when the
// lifecycle is planned so that reordering sends does not reorder time.
type event struct {
	contactID string
	body      []byte
	last      bool
	final     Final
}

// worker plays lifecycles one after another, one event per slot, so a
// contact's events leave in order unless deliberately reordered.
func (l *Load) worker(ctx, sendCtx context.Context, w int, slots <-chan struct{}) {
	rng := rand.New(rand.NewPCG(l.opts.Seed, uint64(w)))
	conn := new(keepAlive)
	*conn = *l.proto
	defer conn.close()
	var queue []event
	n := 0
	for range slots {
		if sendCtx.Err() != nil {
			return
		}
		if len(queue) == 0 {
			queue = l.plan(rng, fmt.Sprintf("load-%s-%d-%d", l.runID, w, n))
			n++
		}
		if len(queue) > 1 && rng.Float64() < l.opts.ReorderRatio {
			queue[0], queue[1] = queue[1], queue[0]
		}
		ev := queue[0]
		queue = queue[1:]
		ok := l.send(ctx, conn, ev.body)
		if ok && rng.Float64() < l.opts.DuplicateRatio {
			l.send(ctx, conn, ev.body)
		}
		l.mu.Lock()
		if !ok {
			l.complete[ev.contactID] = false
		}
		if ev.last {
			l.finals[ev.contactID] = ev.final
		}
		l.mu.Unlock()
	}
}

// Sample data for lifecycles.
var (
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis", "Radia", "John"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Ritchie", "Perlman", "Backus"}
	companies  = []string{"Acme Inc", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises", ""}
	titles     = []string{"Engineer", "CTO", "Buyer", "Analyst", "Founder", "Director of Sales", ""}
	cities     = []string{"1 Main St, Springfield, IL 62701, USA", "221B Baker St, London, , UK", "5 Rue de Rivoli, Paris, , France", ""}
	statuses   = []string{"Active", "Active", "Active", "Lead", "Inactive"}
	tagSets    = [][]string{nil, {"vip"}, {"newsletter"}, {"vip", "partner"}}
)

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// plan builds one contact's lifecycle: created, some updates, maybe
// deleted; event times one millisecond apart, starting now.
func (l *Load) plan(rng *rand.Rand, contactID string) []event {
	l.mu.Lock()
	l.contacts++
	l.complete[contactID] = true
	l.mu.Unlock()
	first, last := pick(rng, firstNames), pick(rng, lastNames)
	created := time.Now().UTC()
	a := acmecrm.AcmeContact{
		ContactID: contactID, FirstName: first, LastName: last,
		Email:   fmt.Sprintf("%s.%s.%s@example.com", first, last, contactID),
		Company: pick(rng, companies), Title: pick(rng, titles), Address: pick(rng, cities),
		Status: pick(rng, statuses), Tags: pick(rng, tagSets), CreatedAt: webhook.FormatTimestamp(created),
	}
	var out []event
	add := func(typ string, data acmecrm.AcmeContact, deleted bool) {
		at := created.Add(time.Duration(len(out)) * time.Millisecond)
		if !deleted {
			data.UpdatedAt = webhook.FormatTimestamp(at)
		}
		p := Payload{EventType: typ, EventID: NewEventID(), Timestamp: webhook.FormatTimestamp(at), Data: data}
		out = append(out, event{contactID: contactID, body: p.Body(), final: Final{Deleted: deleted, Data: data}})
	}
	add(acmecrm.EventContactCreated, a, false)
	for range rng.IntN(l.opts.MaxUpdates + 1) {
		switch rng.IntN(4) {
		case 0:
			a.Title = pick(rng, titles)
		case 1:
			a.Phone = fmt.Sprintf("555-%04d", rng.IntN(10000))
		case 2:
			a.Company = pick(rng, companies)
		default:
			a.Status, a.Tags = pick(rng, statuses), pick(rng, tagSets)
		}
		a.ChangedFields = nil
		add(acmecrm.EventContactUpdated, a, false)
	}
	if rng.Float64() < l.opts.DeleteRatio {
		add(acmecrm.EventContactDeleted, acmecrm.AcmeContact{ContactID: contactID}, true)
	}
	out[len(out)-1].last = true
	return out
}

// send posts one signed webhook and counts the outcome; ok means 2xx.
func (l *Load) send(ctx context.Context, conn *keepAlive, body []byte) (ok bool) {
	// The URL was parsed once by NewLoad; the connection watches ctx.
	req := &http.Request{Method: http.MethodPost, URL: l.target, Host: l.target.Host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: make(http.Header, 8)}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "acmecrm-simulate")
	webhook.AcmeHeaders(req.Header, time.Now(), body, l.opts.Key)
	l.sent.Add(1)
	started := time.Now()
	status, b, err := conn.do(ctx, req, body)
	if err != nil {
		if ctx.Err() != nil {
			l.sent.Add(-1) // cut off by the end of the run: not a result
			return false
		}
		l.fail(err)
		return false
	}
	elapsed := time.Since(started)
	l.mu.Lock()
	l.latencies = append(l.latencies, elapsed)
	if status/100 != 2 {
		l.rejected[status]++
		l.lastErr = fmt.Sprintf("HTTP %d: %.200s", status, b)
	}
	l.mu.Unlock()
	if status/100 != 2 {
		l.rejectedTotal.Add(1)
		return false
	}
	var out struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(b, &out)
	switch out.Status {
	case "duplicate":
		l.duplicate.Add(1)
	case "ignored":
		l.ignored.Add(1)
	default:
		l.accepted.Add(1)
	}
	return true
}

func (l *Load) fail(err error) {
	l.errs.Add(1)
	l.mu.Lock()
	l.lastErr = err.Error()
	l.mu.Unlock()
}

func (l *Load) progress(elapsed time.Duration) Progress {
	return Progress{Elapsed: elapsed, Sent: l.sent.Load(), Accepted: l.accepted.Load(), Duplicate: l.duplicate.Load(),
		Rejected: l.rejectedTotal.Load(), Err: l.errs.Load()}
}

func (l *Load) summary(elapsed time.Duration) Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Summary{URL: l.opts.URL, Elapsed: elapsed.Seconds(), Sent: l.sent.Load(), Accepted: l.accepted.Load(),
		Duplicate: l.duplicate.Load(), Ignored: l.ignored.Load(), Rejected: map[string]int64{}, Errors: l.errs.Load(),
		LastError: l.lastErr, Contacts: l.contacts, TargetRate: l.opts.Rate, Concurrency: l.opts.Concurrency}
	for code, n := range l.rejected {
		s.Rejected[strconv.Itoa(code)] = n
	}
	if elapsed > 0 {
		s.RatePerSec = float64(s.Sent) / elapsed.Seconds()
	}
	lat := slices.Clone(l.latencies)
	slices.Sort(lat)
	at := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	s.LatencyMs = Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: at(1)}
	return s
}

// Finals are the expected final states of the contacts whose every event
// was acknowledged and whose lifecycle was played to its end.
func (l *Load) Finals() map[string]Final {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]Final{}
	for id, f := range l.finals {
		if l.complete[id] {
			out[id] = f
		}
	}
	return out
}
