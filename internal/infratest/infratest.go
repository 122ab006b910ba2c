// Package infratest gives tests real infrastructure: one PostgreSQL and one
// Redis server per test run (shared by every package when the run is started
// through `acmecrm stack`, as `make test` does; else started by the package
// itself), a fresh database per test cloned from a migrated template, a Redis
// key prefix per test, and an in-process kfake broker per test.
//
// When the servers cannot be had, the test binary fails; it never skips.
package infratest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/acmecrm/acmecrm/internal/devstack"
	"github.com/acmecrm/acmecrm/internal/postgres"
)

// The servers of this test binary, set once by Main.
var (
	adminURL string // the server's admin database
	redisURL string
	template string // name of the migrated template database
)

// Main starts or attaches to the servers, prepares the template database,
// runs the tests and stops what it started. Use it from TestMain.
func Main(m *testing.M) {
	os.Exit(main(m))
}

func main(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adminURL, redisURL = os.Getenv("TEST_POSTGRES_URL"), os.Getenv("TEST_REDIS_URL")
	if adminURL == "" || redisURL == "" {
		dir, err := devstack.TempDir("acmecrm-test-")
		if err != nil {
			return fail(err)
		}
		defer os.RemoveAll(dir)
		st, err := devstack.Start(ctx, devstack.Options{Dir: dir, Postgres: true, Redis: true})
		if err != nil {
			return fail(fmt.Errorf("start test servers: %w", err))
		}
		defer st.Stop()
		adminURL, redisURL = st.Postgres.URL("postgres"), st.Redis.URL()
	}
	var err error
	if template, err = ensureTemplate(ctx, adminURL); err != nil {
		return fail(err)
	}
	return m.Run()
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "infratest: test infrastructure unavailable:", err)
	return 1
}

// ensureTemplate creates, once per server and schema, a database with every
// migration applied, under an advisory lock so that packages running in
// parallel build it once. Its name carries a hash of the migrations, so a
// changed schema gets a new template.
func ensureTemplate(ctx context.Context, admin string) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(postgres.MigrationFiles(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(postgres.MigrationFiles(), path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	if err != nil {
		return "", err
	}
	name := "tmpl_" + hex.EncodeToString(h.Sum(nil))[:16]

	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", fmt.Errorf("connect to test postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(7243001)"); err != nil {
		return "", err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(7243001)")
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+building); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	pool, err := postgres.Open(ctx, withDatabase(admin, building), 2)
	if err != nil {
		return "", err
	}
	_, err = postgres.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return "", err
	}
	return name, nil
}

// withDatabase returns the server URL admin with its database replaced.
func withDatabase(admin, db string) string {
	u, err := url.Parse(admin)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + db
	return u.String()
}

func randomName(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// DatabaseURL returns the URL of a fresh, fully migrated database of the
// test's own, dropped when the test ends.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	return cloneDatabase(t, template)
}

// EmptyDatabaseURL returns the URL of a fresh database without any
// migration applied, dropped when the test ends.
func EmptyDatabaseURL(t testing.TB) string {
	t.Helper()
	return cloneDatabase(t, "template0")
}

func cloneDatabase(t testing.TB, from string) string {
	t.Helper()
	if template == "" {
		t.Fatal("infratest: call infratest.Main from TestMain")
	}
	ctx := context.Background()
	name := randomName("t_")
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("connect to test postgres: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+from); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Errorf("drop test database: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return withDatabase(adminURL, name)
}

// Pool returns a pool on a fresh database (see DatabaseURL), closed when the
// test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return PoolOf(t, 10)
}

// PoolOf is Pool with at most conns connections (one, for a test that reads
// the session state of the store's statements).
func PoolOf(t testing.TB, conns int) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Open(context.Background(), DatabaseURL(t), conns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Redis returns the test Redis server's URL and a key prefix unique to the
// test; code under test must put every key under that prefix.
func Redis(t testing.TB) (url, prefix string) {
	t.Helper()
	if redisURL == "" {
		t.Fatal("infratest: call infratest.Main from TestMain")
	}
	return redisURL, randomName("t:") + ":"
}

// RedisClient is a client of the test Redis server, closed when the test
// ends, and a key prefix unique to the test.
func RedisClient(t testing.TB) (*redis.Client, string) {
	t.Helper()
	url, prefix := Redis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	return rdb, prefix
}

// Kafka starts an in-process kfake broker for the test, closed when it ends.
func Kafka(t testing.TB, opts ...kfake.Opt) *devstack.Kafka {
	t.Helper()
	k, err := devstack.StartKafka(devstack.KafkaOptions{Partitions: 6, Extra: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	return k
}
