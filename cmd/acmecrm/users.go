package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"

	"github.com/acmecrm/acmecrm/internal/auth"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

const usersUsage = `Usage:
  acmecrm users create --username NAME [--role user|admin] (--password PW | --password-stdin)
  acmecrm users list
  acmecrm users set-role NAME user|admin
  acmecrm users set-password NAME (--password PW | --password-stdin)
  acmecrm users delete NAME

Manages the REST API's users in the configured deployment. create and list
need only DATABASE_URL (or the POSTGRES_* variables); set-role,
set-password and delete also revoke every token the user holds, so they
read the service's whole configuration (REDIS_URL, JWT_* …).
`

func cmdUsers(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usersUsage)
		return usageError{"users: no action given"}
	}
	action, rest := args[0], args[1:]
	fs := newFlagSet("users "+action, usersUsage, stderr)
	var username, role, password string
	var passwordStdin bool
	switch action {
	case "create":
		fs.StringVar(&username, "username", "", "user name (an email address, for example)")
		fs.StringVar(&role, "role", auth.RoleUser, "user or admin")
	case "set-password":
		// The name may come before the flags (as set-role's does): Go's
		// flags stop at the first argument, so it is read last.
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			rest = append(rest[1:len(rest):len(rest)], rest[0])
		}
	case "list", "set-role", "delete":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usersUsage)
		return nil
	default:
		fmt.Fprint(stderr, usersUsage)
		return usageError{fmt.Sprintf("users: unknown action %q", action)}
	}
	if action == "create" || action == "set-password" {
		fs.StringVar(&password, "password", "", "password (visible in the process list; prefer --password-stdin)")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	want := map[string]int{"create": 0, "list": 0, "set-role": 2, "set-password": 1, "delete": 1}[action]
	if fs.NArg() != want {
		fmt.Fprint(stderr, usersUsage)
		if action == "create" {
			// `users create NAME --role admin` would otherwise leave
			// --role unread: Go's flags stop at the first argument.
			return usageError{fmt.Sprintf("users create: unexpected argument %q; the name goes in --username, and every flag before any argument", fs.Arg(0))}
		}
		return usageError{fmt.Sprintf("users %s: want %d argument(s), got %d", action, want, fs.NArg())}
	}
	if action == "create" {
		if username == "" {
			return usageError{"users create: --username is required"}
		}
		if err := auth.CheckUsername(username); err != nil {
			return usageError{"users create: " + err.Error()}
		}
	}
	var hash string
	if action == "create" || action == "set-password" {
		if passwordStdin {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && err != io.EOF {
				return err
			}
			password = strings.TrimRight(line, "\r\n")
		}
		if password == "" {
			return usageError{fmt.Sprintf("users %s: give --password or --password-stdin", action)}
		}
		var err error
		if hash, err = auth.HashPassword(password); err != nil {
			return usageError{fmt.Sprintf("users %s: %v", action, err)}
		}
	}
	if action == "set-role" {
		role = fs.Arg(1)
	}
	if (action == "create" || action == "set-role") && !auth.ValidRole(role) {
		return usageError{fmt.Sprintf("users %s: role must be user or admin, not %q", action, role)}
	}

	// create and list touch the database alone: like migrate and dlq they
	// need DATABASE_URL (or POSTGRES_*) and none of the service's secrets.
	// set-role and delete also revoke tokens, in Redis, as the service does.
	var cfg config
	var dbURL string
	var err error
	if action == "set-role" || action == "set-password" || action == "delete" {
		cfg, err = loadConfig(getenv)
		dbURL = cfg.DatabaseURL
	} else {
		dbURL, err = loadDatabaseConfig(getenv)
	}
	if err != nil {
		return err
	}
	pool, err := openDatabase(ctx, dbURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := postgres.NewStore(pool, postgres.StoreOptions{})

	switch action {
	case "create":
		u, err := store.CreateUser(ctx, username, hash, role)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created %s (%s) %s\n", u.Username, u.Role, u.ID)
	case "list":
		users, err := store.Users(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tROLE\tID\tCREATED")
		for _, u := range users {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Username, u.Role, u.ID, u.CreatedAt.UTC().Format("2006-01-02 15:04:05Z"))
		}
		return tw.Flush()
	case "set-role", "set-password", "delete":
		var u postgres.User
		switch action {
		case "set-role":
			u, err = store.SetUserRole(ctx, fs.Arg(0), role)
		case "set-password":
			u, err = store.SetUserPassword(ctx, fs.Arg(0), hash)
		default:
			u, err = store.DeleteUser(ctx, fs.Arg(0))
		}
		if err != nil {
			return err
		}
		if err := revokeAll(ctx, cfg, u.ID); err != nil {
			return fmt.Errorf("%s done, but revoking the user's tokens failed (they expire within %s): %w", action, cfg.JWTExpiration, err)
		}
		switch action {
		case "delete":
			fmt.Fprintf(stdout, "deleted %s; its tokens are revoked\n", u.Username)
		case "set-password":
			fmt.Fprintf(stdout, "changed the password of %s; its tokens are revoked (log in again)\n", u.Username)
		default:
			fmt.Fprintf(stdout, "%s is now %s; its tokens are revoked (log in again)\n", u.Username, u.Role)
		}
	}
	return nil
}

// revokeAll ends every token of a user: a role change must not leave tokens
// carrying the old role.
func revokeAll(ctx context.Context, cfg config, userID string) error {
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	return newAuth(cfg, rdb).RevokeAll(ctx, userID)
}
