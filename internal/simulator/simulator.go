// Package simulator plays AcmeCRM (SPEC §7): it builds canonical webhook
// payloads, signs them with the webhook package exactly as the receiver
// verifies them, stores each delivery in PostgreSQL, delivers it, and
// retries failures from a worker with backoff. Load generates realistic
// contact lifecycles against a receiver (acmecrm simulate).
package simulator

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/acmecrm/acmecrm"
	"github.com/acmecrm/acmecrm/internal/postgres"
	"github.com/acmecrm/acmecrm/internal/telemetry"
)

// Options configure a Simulator.
type Options struct {
	// Key is the secret deliveries are signed with (the receiver's current
	// ACME_WEBHOOK_SECRET when the simulator plays against this service).
	Key []byte
	// Targets limits where deliveries may go; DefaultTarget is used when a
	// request names none, and by the auto-trigger.
	Targets       *Targets
	DefaultTarget string
	// AutoTrigger sends a webhook after each API change of an AcmeCRM contact.
	AutoTrigger bool
	Retry       RetryPolicy
	// Timeout bounds each attempt (connect, send, response).
	Timeout time.Duration
	// Resolver resolves target hosts; nil is the system's.
	Resolver *net.Resolver
	// Concurrency is how many attempts one worker makes at once.
	Concurrency int
	// PollInterval is the longest the worker sleeps between checks for due
	// deliveries (other instances may add some).
	PollInterval time.Duration
	UserAgent    string
	Logger       *slog.Logger
	// Metrics counts attempts by result (nil: nothing).
	Metrics *telemetry.Metrics
	Now     func() time.Time
	// Jitter returns a number in [0, 1); nil is math/rand.
	Jitter func() float64
}

// Simulator sends and retries simulated AcmeCRM webhooks.
type Simulator struct {
	store  *postgres.Store
	opts   Options
	client *http.Client
	wake   chan struct{}
}

// New returns a Simulator storing deliveries in store.
func New(store *postgres.Store, opts Options) *Simulator {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "AcmeCRM-Simulator"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	return &Simulator{store: store, opts: opts, client: newClient(opts.Targets, opts.Resolver), wake: make(chan struct{}, 1)}
}

// newClient is an HTTP client that dials only allowed addresses, uses no
// proxy (the check must see the real peer) and follows no redirects.
func newClient(t *Targets, r *net.Resolver) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Resolver: r, Control: t.control}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 5 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Request is one simulated event to send (POST /api/simulator/webhooks).
type Request struct {
	EventType string
	Data      json.RawMessage
	TargetURL string
	// Chaos knobs: extra copies of the same event, a delay before the
	// first attempt, a wrong signature, a skewed signature timestamp.
	Duplicates           int
	Delay                time.Duration
	BadSignature         bool
	TimestampSkewSeconds int
}

// Result is what Send did: the event and its deliveries (the first, then
// one per duplicate), as stored after the first attempt of each that was
// not delayed.
type Result struct {
	Event      Payload
	Deliveries []postgres.Delivery
}

// Send builds the event, stores its deliveries and makes the first attempt
// of each at once unless delayed; retries are the worker's.
func (s *Simulator) Send(ctx context.Context, req Request) (Result, error) {
	target := req.TargetURL
	if target == "" {
		target = s.opts.DefaultTarget
	}
	target, err := s.opts.Targets.Check(target)
	if err != nil {
		return Result{}, err
	}
	if err := s.opts.Targets.CheckResolved(ctx, s.opts.Resolver, target); err != nil {
		return Result{}, err
	}
	p, err := Build(req.EventType, req.Data, NewEventID(), s.opts.Now())
	if err != nil {
		return Result{}, err
	}
	body := p.Body()
	// Undelayed deliveries are stored claimed by this request, so that a
	// worker does not take them first; if the process dies before the
	// attempt ends, the lease runs out and a worker makes it.
	var lease time.Duration
	if req.Delay == 0 {
		lease = s.lease()
	}
	nd := make([]postgres.NewDelivery, 1+req.Duplicates)
	for i := range nd {
		nd[i] = postgres.NewDelivery{EventID: p.EventID, EventType: p.EventType, TargetURL: target, Body: body,
			Source: "api", MaxAttempts: s.opts.Retry.MaxRetries + 1, Delay: req.Delay, Lease: lease,
			BadSignature: req.BadSignature, TimestampSkewSeconds: req.TimestampSkewSeconds}
	}
	ds, err := s.store.CreateDeliveries(ctx, nd)
	if err != nil {
		return Result{}, err
	}
	if req.Delay > 0 {
		s.Wake()
		return Result{Event: p, Deliveries: ds}, nil
	}
	// The first attempts belong to this request, not to its client: they
	// finish (within the attempt timeout) even if the client goes away.
	actx := context.WithoutCancel(ctx)
	// The answer is each delivery as its first attempt left it, even when
	// the worker retries it before this request returns.
	s.attemptAll(actx, ds)
	s.Wake() // retries, if any, are due later
	for i, d := range ds {
		if d.Status != postgres.DeliveryDelivering {
			continue
		}
		// The attempt was not recorded (its lease ran out): read what is.
		if got, err := s.store.SimulatorDelivery(actx, d.ID); err == nil {
			got.AttemptLog = nil
			ds[i] = got
		}
	}
	return Result{Event: p, Deliveries: ds}, nil
}

// ContactChanged is the auto-trigger: after an API change of an AcmeCRM
// contact it queues the matching webhook to the default target (the
// worker delivers it). It does nothing when the auto-trigger is off or the
// contact is not AcmeCRM's.
func (s *Simulator) ContactChanged(ctx context.Context, eventType string, c acmecrm.Contact) error {
	if s == nil || !s.opts.AutoTrigger || c.Source != acmecrm.SourceAcme {
		return nil
	}
	p := FromContact(eventType, c, NewEventID(), s.opts.Now())
	_, err := s.store.CreateDeliveries(ctx, []postgres.NewDelivery{{EventID: p.EventID, EventType: p.EventType,
		TargetURL: s.opts.DefaultTarget, Body: p.Body(), Source: "auto-trigger", MaxAttempts: s.opts.Retry.MaxRetries + 1}})
	if err == nil {
		s.Wake()
	}
	return err
}

// Wake tells this process's worker that deliveries may be due.
func (s *Simulator) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// lease is how long a claimed attempt is owned before another worker may
// take the delivery again: longer than any attempt can last.
func (s *Simulator) lease() time.Duration { return s.opts.Timeout + 30*time.Second }

// attemptResults names an attempt's outcome (the delivery's new status)
// for the metrics.
var attemptResults = map[string]string{
	postgres.DeliveryDelivered: "delivered", postgres.DeliveryPending: "retry", postgres.DeliveryFailed: "failed",
}

// attemptAll makes the claimed attempts, at most Concurrency at once.
func (s *Simulator) attemptAll(ctx context.Context, ds []postgres.Delivery) {
	sem := make(chan struct{}, s.opts.Concurrency)
	var wg sync.WaitGroup
	for i, d := range ds {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res := s.attempt(ctx, d)
			s.opts.Metrics.SimulatorAttempt(attemptResults[res.Status])
			finished, err := s.store.FinishAttempt(ctx, res)
			if err != nil {
				s.opts.Logger.Warn("simulator: record attempt", "delivery_id", d.ID, "event_id", d.EventID, "err", err)
				return
			}
			ds[i] = finished
		}()
	}
	wg.Wait()
}

// Run is the retry worker: it makes every due attempt (delayed firsts,
// retries, and attempts a dead worker left behind) until ctx is cancelled.
func (s *Simulator) Run(ctx context.Context) error {
	const batch = 64
	for {
		ds, err := s.store.ClaimDeliveries(ctx, nil, batch, s.lease())
		if err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("simulator: claim deliveries", "err", err)
		}
		// Attempts in flight finish (within their timeout) on shutdown.
		s.attemptAll(context.WithoutCancel(ctx), ds)
		if len(ds) == batch {
			continue
		}
		wait := s.opts.PollInterval
		if due, ok, err := s.store.NextDeliveryDue(ctx); err == nil && ok {
			wait = min(wait, max(time.Until(due), 0)+5*time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}
