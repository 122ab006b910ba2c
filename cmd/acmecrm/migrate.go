package main

import (
	"context"
	"fmt"
	"io"

	"github.com/acmecrm/acmecrm/internal/postgres"
)

const migrateUsage = `Usage: acmecrm migrate up|status

  up       apply every pending migration (safe to run concurrently)
  status   list migrations and whether each is applied

Uses DATABASE_URL or the POSTGRES_* variables.
`

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", migrateUsage, stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "up" && fs.Arg(0) != "status") {
		fs.Usage()
		return usageError{"migrate: want exactly one of up, status"}
	}
	dbURL, err := loadDatabaseConfig(getenv)
	if err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, dbURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if fs.Arg(0) == "up" {
		n, err := postgres.Migrate(ctx, pool)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "applied %d migration(s)\n", n)
		return nil
	}
	list, err := postgres.Migrations(ctx, pool)
	if err != nil {
		return err
	}
	for _, m := range list {
		state := "pending"
		if m.Applied {
			state = "applied"
		}
		fmt.Fprintf(stdout, "%05d  %-8s %s\n", m.Version, state, m.Name)
	}
	return nil
}
