package devstack

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// RedisOptions configures a Redis server.
type RedisOptions struct {
	// Dir holds Redis's append-only file when Durable; required.
	Dir string
	// Port to listen on; 0 picks a free one.
	Port int
	// Durable turns on the append-only file (fsync every second), so that
	// live tokens survive a restart of the local run.
	Durable bool
	// Log receives the server's output; nil discards it.
	Log io.Writer
}

// Redis is a running Redis server owned by this process, on 127.0.0.1 and
// on a Unix socket (which URL uses).
type Redis struct {
	proc      *process
	port      int
	socket    string
	removeDir string
}

// StartRedis starts redis-server on 127.0.0.1 and waits until it answers PING.
func StartRedis(opts RedisOptions) (*Redis, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("redis: Dir is required")
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	bin, err := findBinary("redis-server")
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	port, err := pickPort(opts.Port)
	if err != nil {
		return nil, err
	}
	socketDir, remove, err := socketDirFor(dir, "redis.sock", nil)
	if err != nil {
		return nil, err
	}
	socket := filepath.Join(socketDir, "redis.sock")
	appendOnly := "no"
	if opts.Durable {
		appendOnly = "yes"
	}
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--daemonize", "no",
		"--save", "",
		"--appendonly", appendOnly,
		"--logfile", "",
		"--loglevel", "warning",
		"--unixsocket", socket,
		"--unixsocketperm", "700",
	}
	proc, err := startProcess("redis-server", bin, args, nil, syscall.SIGTERM, opts.Log)
	if err != nil {
		return nil, err
	}
	r := &Redis{proc: proc, port: port, socket: socket}
	if remove {
		r.removeDir = socketDir
	}
	err = waitFor(proc, 30*time.Second, func() error { return ping(r.Addr()) })
	if err != nil {
		_ = r.Stop()
		return nil, err
	}
	return r, nil
}

// ping speaks just enough RESP to tell that the server is up, so devstack
// does not need a Redis client.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := io.ReadFull(c, buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "+PONG\r\n" {
		return fmt.Errorf("redis answered %q", buf[:n])
	}
	return nil
}

// Addr is host:port of the server.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// URL is the unix:// URL of database 0.
func (r *Redis) URL() string { return "unix://" + r.socket + "?db=0" }

// TCPURL is the redis:// URL of database 0 on 127.0.0.1.
func (r *Redis) TCPURL() string { return "redis://" + r.Addr() + "/0" }

// PID is the server's process id.
func (r *Redis) PID() int { return r.proc.PID() }

// Stop shuts the server down, killing it after 10 seconds.
func (r *Redis) Stop() error {
	err := r.proc.stop(10 * time.Second)
	if r.removeDir != "" {
		os.RemoveAll(r.removeDir)
	}
	return err
}
