package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/acmecrm/acmecrm/internal/postgres"
)

const dlqUsage = `Usage:
  acmecrm dlq list   [--event-type T] [--not-replayed] [--limit N (1–1000)] [--before ID]
  acmecrm dlq replay (--id N | --all | --event-type T [--not-replayed] | --not-replayed)

Lists or replays dead letters (events that failed every retry) of the
configured deployment (DATABASE_URL or POSTGRES_*). A replayed event goes back
to its topic through the outbox and takes the same idempotent path as any
event; a running relay publishes it. Replaying an id that names no dead
letter fails (exit 1). list shows the newest first; when there may be more,
its last line gives the --before that lists the next, older ones.

Flags:
`

func cmdDLQ(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, dlqUsage)
		return nil
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprint(stderr, dlqUsage)
		return usageError{"dlq: want list or replay"}
	}
	action := args[0]
	fs := newFlagSet("dlq "+action, dlqUsage, stderr)
	id := fs.Int64("id", 0, "one dead letter, by id (replay)")
	eventType := fs.String("event-type", "", "only this event type")
	notReplayed := fs.Bool("not-replayed", false, "only dead letters never replayed")
	all := fs.Bool("all", false, "every dead letter (replay)")
	limit := fs.Int("limit", 100, "most rows to list")
	before := fs.Int64("before", 0, "list only dead letters with a smaller id (the next page)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("dlq %s: unexpected argument %q", action, fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case action == "list" && (set["id"] || set["all"]):
		return usageError{"dlq list: --id and --all select what to replay; list takes --event-type, --not-replayed and --limit"}
	case action == "list" && (*limit < 1 || *limit > 1000):
		return usageError{"dlq list: --limit must be a whole number from 1 to 1000"}
	case action == "list" && set["before"] && *before < 1:
		return usageError{"dlq list: --before must be a dead letter id (1 or more)"}
	case action == "replay" && (set["limit"] || set["before"]):
		return usageError{"dlq replay: --limit and --before are for list; replay takes every dead letter it selects"}
	case action == "replay" && set["id"] && *id < 1:
		return usageError{"dlq replay: --id must be a dead letter id (1 or more)"}
	case action == "replay" && set["id"] && (*eventType != "" || *notReplayed || *all):
		return usageError{"dlq replay: --id replays one dead letter and takes no other selection"}
	case action == "replay" && *all && (*eventType != "" || *notReplayed):
		return usageError{"dlq replay: --all replays every dead letter and takes no other selection"}
	case action == "replay" && !set["id"] && *eventType == "" && !*notReplayed && !*all:
		fs.Usage()
		return usageError{"dlq replay: say which: --id, --event-type, --not-replayed or --all"}
	}
	dbURL, err := loadDatabaseConfig(getenv)
	if err != nil {
		return err
	}
	pool, err := openDatabase(ctx, dbURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := postgres.NewStore(pool, postgres.StoreOptions{})
	f := postgres.DeadLetterFilter{ID: *id, EventType: *eventType, NotReplayed: *notReplayed, Limit: *limit, Before: *before}
	if action == "replay" {
		n, err := store.ReplayDeadLetters(ctx, f)
		if err != nil {
			return err
		}
		if set["id"] && n == 0 {
			return fmt.Errorf("dlq replay: no dead letter with id %d", *id)
		}
		fmt.Fprintf(stdout, "queued %d dead letter(s) for replay\n", n)
		return nil
	}
	dls, err := store.DeadLetters(ctx, f)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEVENT\tTYPE\tCONTACT\tATTEMPTS\tREPLAYS\tCREATED\tERROR")
	for _, d := range dls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%.80s\n", d.ID, d.EventID, d.EventType, d.ContactID, d.Attempts, d.ReplayCount,
			d.CreatedAt.UTC().Format("2006-01-02 15:04:05Z"), d.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(dls) == *limit {
		fmt.Fprintf(stdout, "older ones may follow: add --before %d\n", dls[len(dls)-1].ID)
	}
	return nil
}
