package devstack

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgBinDirs are where Debian and most distributions keep PostgreSQL's
// server binaries, which are not on PATH by default.
var pgBinDirs = []string{"/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/usr/pgsql-*/bin"}

// PostgresOptions configures a PostgreSQL server.
type PostgresOptions struct {
	// Dir holds the cluster. An existing cluster is reused (its data kept);
	// an empty directory is initialised. Required.
	Dir string
	// Port to listen on; 0 picks a free one. A preferred port that is taken
	// falls back to a free one.
	Port int
	// Durable keeps fsync and synchronous commit on. Tests turn them off:
	// their data is thrown away and speed matters more.
	Durable bool
	// Settings are extra `-c name=value` server settings.
	Settings map[string]string
	// Log receives the server's output; nil discards it.
	Log io.Writer
}

// Postgres is a running PostgreSQL server owned by this process. It listens
// on 127.0.0.1 (for tools) and on a Unix socket, which URL uses: local
// clients pay no TCP stack for each round trip.
type Postgres struct {
	proc      *process
	port      int
	dir       string
	socketDir string
	removeDir bool // socketDir is ours to delete
}

// StartPostgres initialises (if needed) and starts a PostgreSQL server on
// 127.0.0.1, waiting until it accepts connections. When running as root the
// server runs as the `postgres` system user.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("postgres: Dir is required")
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	server, err := findBinary("postgres", pgBinDirs...)
	if err != nil {
		return nil, err
	}
	initdb, err := findBinary("initdb", filepath.Dir(server))
	if err != nil {
		return nil, err
	}
	cred, err := serviceUser("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := checkReachable(dir, cred); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := chownTree(dir, cred); err != nil {
		return nil, fmt.Errorf("postgres: give data dir to the postgres user: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); os.IsNotExist(err) {
		p, err := startProcess("initdb", initdb, []string{
			"-D", dir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
		}, cred, syscall.SIGKILL, opts.Log)
		if err != nil {
			return nil, err
		}
		select {
		case <-p.Exited():
		case <-ctx.Done():
			_ = p.stop(time.Second)
			return nil, ctx.Err()
		}
		if p.waitErr != nil {
			return nil, fmt.Errorf("initdb %s: %w (see the server log)", dir, p.waitErr)
		}
	}

	port, err := pickPort(opts.Port)
	if err != nil {
		return nil, err
	}
	socketDir, removeDir, err := socketDirFor(dir, ".s.PGSQL."+strconv.Itoa(port), cred)
	if err != nil {
		return nil, err
	}
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": socketDir,
		"unix_socket_permissions": "0777",
		"max_connections":         "200",
		// Sized like a production server for a write-heavy service (see
		// docs/OPERATIONS.md): a larger cache, checkpoints far enough apart
		// that few pages are written twice (full-page images), and those
		// images compressed. None of these weakens durability.
		"shared_buffers":     "1GB",
		"wal_buffers":        "64MB",
		"max_wal_size":       "8GB",
		"min_wal_size":       "1GB",
		"checkpoint_timeout": "15min",
		"wal_compression":    "lz4",
		"log_min_messages":   "warning",
		"log_line_prefix":    "postgres %m [%p] ",
	}
	if !opts.Durable {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	args := []string{"-D", dir}
	for k, v := range settings {
		args = append(args, "-c", k+"="+v)
	}
	// SIGINT is PostgreSQL's "fast shutdown": clients are disconnected and a
	// checkpoint is written, so a dev cluster restarts without recovery.
	proc, err := startProcess("postgres", server, args, cred, syscall.SIGINT, opts.Log)
	if err != nil {
		return nil, err
	}
	pg := &Postgres{proc: proc, port: port, dir: dir, socketDir: socketDir, removeDir: removeDir}
	err = waitFor(proc, 60*time.Second, func() error {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, pg.URL("postgres"))
		if err != nil {
			return err
		}
		return conn.Close(cctx)
	})
	if err != nil {
		_ = pg.Stop()
		return nil, err
	}
	return pg, nil
}

// URL is the connection URL of database db as the superuser, over the
// Unix socket.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, p.socketDir, p.port)
}

// TCPURL is URL over TCP on 127.0.0.1 (for tools that want a host:port).
func (p *Postgres) TCPURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

// Port is the TCP port the server listens on.
func (p *Postgres) Port() int { return p.port }

// PID is the postmaster's process id.
func (p *Postgres) PID() int { return p.proc.PID() }

// Stop shuts the server down (fast shutdown), killing it if it takes longer
// than 30 seconds.
func (p *Postgres) Stop() error {
	err := p.proc.stop(30 * time.Second)
	if p.removeDir {
		os.RemoveAll(p.socketDir)
	}
	return err
}

// EnsureDatabase creates database name if it does not exist.
func (p *Postgres) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}
