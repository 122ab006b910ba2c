package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acmecrm/acmecrm/internal/simulator"
	"github.com/acmecrm/acmecrm/internal/webhook"
)

const simulateUsage = `Usage: acmecrm simulate [flags]

Plays AcmeCRM against a webhook receiver: realistic contact lifecycles
(created, a few updates, sometimes deleted), signed with ACME_WEBHOOK_SECRET
(or --secret), at a given rate and concurrency, for a duration or a number of
events. Prints a progress line per second on stderr and a summary on stdout.
Exits 1 when any webhook was refused or failed.

With --emit FILE it sends nothing: it writes --events webhooks, signed now,
to FILE ("-" for stdout), one request per line — the headers as
"Name: value" fields, then the body, separated by tabs — for other load
tools to replay (make bench replays them with wrk). They are refused once
older than the receiver's ACME_WEBHOOK_MAX_AGE (five minutes by default).

Examples:
  acmecrm simulate --rate 50 --duration 10s            # the local run (make run)
  acmecrm simulate --rate 0 --concurrency 50 --duration 20s --json
  acmecrm simulate --emit webhooks.tsv --events 100000

Flags:
`

func cmdSimulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	port := getenv("PORT")
	if port == "" {
		port = "3000"
	}
	fs := newFlagSet("simulate", simulateUsage, stderr)
	target := fs.String("url", "http://localhost:"+port+"/api/webhooks", "receiver URL (one without a path gets /api/webhooks)")
	secret := fs.String("secret", "", "signing secret (default: ACME_WEBHOOK_SECRET, or the development secret)")
	rate := fs.Float64("rate", 100, "events per second; 0 = as fast as the concurrency allows")
	conc := fs.Int("concurrency", 10, "requests in flight at most")
	duration := fs.Duration("duration", 10*time.Second, "how long to send (0 = until --events)")
	events := fs.Int("events", 0, "stop after this many events (0 = until --duration)")
	updates := fs.Int("max-updates", 3, "most updates per contact lifecycle")
	deletes := fs.Float64("delete-ratio", 0.2, "share of lifecycles that end with a delete")
	dups := fs.Float64("duplicate-ratio", 0, "share of events sent twice (the receiver answers duplicate)")
	reorder := fs.Float64("reorder-ratio", 0, "share of events sent after their successor")
	seed := fs.Uint64("seed", 0, "random seed for repeatable data (0 = random)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines")
	emit := fs.String("emit", "", "write --events signed webhooks to this file (- for stdout) instead of sending")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("simulate: unexpected argument %q", fs.Arg(0))}
	}
	// The service's address alone means its receiver.
	if u, err := url.Parse(*target); err == nil && (u.Path == "" || u.Path == "/") && u.RawQuery == "" {
		u.Path = "/api/webhooks"
		*target = u.String()
	}
	if *secret == "" {
		*secret = getenv("ACME_WEBHOOK_SECRET")
	}
	if *secret == "" {
		*secret = defaultWebhookSecret
	}
	key, err := webhook.ParseSecret("current", *secret)
	if err != nil {
		return usageError{"simulate: " + err.Error()}
	}
	if *emit != "" {
		return emitWebhooks(*emit, stdout, simulator.EmitOptions{Key: key.Key, Events: *events,
			MaxUpdates: *updates, DeleteRatio: *deletes, Seed: *seed})
	}
	opts := simulator.LoadOptions{
		URL: *target, Key: key.Key, Rate: *rate, Concurrency: *conc, Duration: *duration, Events: *events,
		MaxUpdates: *updates, DeleteRatio: *deletes, DuplicateRatio: *dups, ReorderRatio: *reorder, Seed: *seed,
	}
	if !*quiet {
		opts.Progress = func(p simulator.Progress) {
			fmt.Fprintf(stderr, "%6.1fs  sent %d  accepted %d  duplicate %d  rejected %d  errors %d  %.0f/s\n",
				p.Elapsed.Seconds(), p.Sent, p.Accepted, p.Duplicate, p.Rejected, p.Err, float64(p.Sent)/p.Elapsed.Seconds())
		}
	}
	if *conc < 1 || *conc > 10000 {
		return usageError{"simulate: --concurrency must be from 1 to 10000"}
	}
	load, err := simulator.NewLoad(opts)
	if err != nil {
		return usageError{"simulate: " + err.Error()}
	}
	s := load.Run(ctx)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return err
		}
	} else {
		printSummary(stdout, s)
	}
	var rejected int64
	for _, n := range s.Rejected {
		rejected += n
	}
	if rejected+s.Errors > 0 {
		return fmt.Errorf("simulate: %d webhooks refused, %d failed without a response (last: %s)", rejected, s.Errors, s.LastError)
	}
	return nil
}

// emitWebhooks writes signed webhooks to path ("-": stdout).
func emitWebhooks(path string, stdout io.Writer, opts simulator.EmitOptions) error {
	if err := opts.Check(); err != nil {
		return usageError{"simulate: " + err.Error()}
	}
	w, f := stdout, (*os.File)(nil)
	if path != "-" {
		var err error
		if f, err = os.Create(path); err != nil {
			return fmt.Errorf("simulate: %w", err)
		}
		w = f
	}
	err := simulator.Emit(w, opts)
	if f != nil {
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("simulate: write webhooks: %w", err)
	}
	return nil
}

func printSummary(w io.Writer, s simulator.Summary) {
	fmt.Fprintf(w, "target      %s\n", s.URL)
	fmt.Fprintf(w, "sent        %d webhooks for %d contacts in %.1fs (%.0f/s)\n", s.Sent, s.Contacts, s.Elapsed, s.RatePerSec)
	fmt.Fprintf(w, "accepted    %d\nduplicate   %d\nignored     %d\n", s.Accepted, s.Duplicate, s.Ignored)
	codes := make([]string, 0, len(s.Rejected))
	for c := range s.Rejected {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, c+": "+strconv.FormatInt(s.Rejected[c], 10))
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	fmt.Fprintf(w, "rejected    %s\nerrors      %d\n", strings.Join(parts, ", "), s.Errors)
	fmt.Fprintf(w, "latency ms  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", s.LatencyMs.P50, s.LatencyMs.P90, s.LatencyMs.P99, s.LatencyMs.Max)
}
