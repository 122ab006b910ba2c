package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/joho/godotenv"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usageText = `acmecrm — the AcmeCRM integration service

Usage:
  acmecrm [--env-file FILE] <command> [flags]

Commands:
  serve     run the service (HTTP API and pipeline roles)
  dev       the local run: start PostgreSQL, Redis and an embedded Kafka
            broker, apply migrations, and serve on :3000
  migrate   apply (up) or list (status) database migrations
  users     create, list, set-role, set-password, delete the API's
            users
  dlq       list or replay dead letters
  simulate  play AcmeCRM: send signed webhooks of contact lifecycles to a
            receiver at a given rate (load generator and demo)
  stack     start local PostgreSQL and Redis, run a command against them
  version   print the version

Global flags:
  --env-file FILE   read variables from FILE if it exists (default ".env");
                    the process environment wins over the file

Run 'acmecrm <command> --help' for a command's flags. Configuration comes
from the environment; see .env.example and docs/CONFIGURATION.md.

Exit codes: 0 success, 1 failure, 2 usage or configuration error.
`

// usageError is a mistake in how the command was invoked (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitStatus carries a child's exit code through (acmecrm stack).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exitCode prints err (if any) and maps it to the process exit code.
func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	var ce configError
	var es exitStatus
	switch {
	case err == nil:
		return 0
	case errors.As(err, &es):
		return int(es)
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "acmecrm:", err)
		return 2
	case errors.As(err, &ce):
		fmt.Fprintln(stderr, "acmecrm:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "acmecrm:", err)
		return 1
	}
}

// run is the whole program; main only supplies the process's context,
// arguments, environment and output streams, so tests can call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("acmecrm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usageText) }
	envFile := fs.String("env-file", ".env", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageError{"no command given"}
	}
	getenv, err := withEnvFile(getenv, *envFile)
	if err != nil {
		return err
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, getenv, stdout, stderr)
	case "dev":
		return cmdDev(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, rest, getenv, stdout, stderr)
	case "stack":
		return cmdStack(ctx, rest, getenv, stdout, stderr)
	case "dlq":
		return cmdDLQ(ctx, rest, getenv, stdout, stderr)
	case "simulate":
		return cmdSimulate(ctx, rest, getenv, stdout, stderr)
	case "users":
		return cmdUsers(ctx, rest, getenv, os.Stdin, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "acmecrm", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		fmt.Fprint(stderr, usageText)
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// withEnvFile layers the variables of path (when it exists) under getenv:
// the real environment always wins.
func withEnvFile(getenv func(string) string, path string) (func(string) string, error) {
	if path == "" {
		return getenv, nil
	}
	file, err := godotenv.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return getenv, nil
	}
	if err != nil {
		return nil, usageError{fmt.Sprintf("read %s: %v", path, err)}
	}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return file[k]
	}, nil
}

// overlay returns getenv with vars filled in where getenv has nothing.
func overlay(getenv func(string) string, vars map[string]string) func(string) string {
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return vars[k]
	}
}

// newFlagSet makes a subcommand's flag set with its usage text.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, turning flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	return nil
}
