package devstack

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// childEnv makes the test binary act as a parent process that starts a stack
// and then waits to be killed (see TestChildrenDieWithParent).
const childEnv = "DEVSTACK_TEST_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		st, err := Start(context.Background(), Options{Dir: dir, Postgres: true, Redis: true, Kafka: true})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("pids %d %d %d %d %s\n", st.Postgres.PID(), st.Redis.PID(), st.Postgres.Port(), st.Redis.port, st.Kafka.Brokers()[0])
		select {}
	}
	os.Exit(m.Run())
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3, after the parenthesised command name, is the state.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A parent killed with SIGKILL cannot clean up; the children must still go.
func TestChildrenDieWithParent(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	var pgPID, redisPID, pgPort, redisPort int
	var broker string
	if _, err := fmt.Sscanf(line, "pids %d %d %d %d %s", &pgPID, &redisPID, &pgPort, &redisPort, &broker); err != nil {
		t.Fatalf("child said %q: %v", line, err)
	}
	pgAddr, redisAddr := "127.0.0.1:"+strconv.Itoa(pgPort), "127.0.0.1:"+strconv.Itoa(redisPort)
	for _, a := range []string{pgAddr, redisAddr, broker} {
		if !listening(a) {
			t.Fatalf("%s not listening before the kill", a)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	eventually(t, 30*time.Second, "postgres, redis and the broker to stop", func() bool {
		return !alive(pgPID) && !alive(redisPID) && !listening(pgAddr) && !listening(redisAddr) && !listening(broker)
	})
}

// The local run keeps data across restarts: contacts in PostgreSQL and
// unconsumed records in the broker.
func TestDurableStackKeepsDataAcrossRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := tempDir(t)
	opts := Options{Dir: dir, Durable: true, Postgres: true, Kafka: true, KafkaPartitions: 1}

	st, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, st.Postgres.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.Kafka.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "kept"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "kept", Value: []byte("unconsumed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := st.Stop(); err != nil {
		t.Fatal(err)
	}

	st, err = Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	conn, err = pgx.Connect(ctx, st.Postgres.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("postgres row after restart: %q, %v", v, err)
	}
	cl, err = kgo.NewClient(kgo.SeedBrokers(st.Kafka.Brokers()...), kgo.ConsumeTopics("kept"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	fetches := cl.PollFetches(fctx)
	if err := fetches.Err(); err != nil {
		t.Fatalf("consume after restart: %v", err)
	}
	recs := fetches.Records()
	if len(recs) != 1 || string(recs[0].Value) != "unconsumed" {
		t.Fatalf("records after restart: %v", recs)
	}
}

// tempDir is a t.TempDir the postgres user can reach.
func tempDir(t *testing.T) string {
	dir, err := TempDir("devstack-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestUnreachableDataDirIsAClearError(t *testing.T) {
	t.Parallel()
	// Another user (nobody), whoever runs the test.
	cred := &syscall.Credential{Uid: 65534, Gid: 65534}
	locked := t.TempDir() // 0700, owned by us
	if err := os.MkdirAll(locked+"/data/postgres", 0o700); err != nil {
		t.Fatal(err)
	}
	err := checkReachable(locked+"/data/postgres", cred)
	if err == nil || !strings.Contains(err.Error(), "chmod o+x") {
		t.Fatalf("err = %v", err)
	}
	if err := checkReachable(tempDir(t)+"/postgres", cred); err != nil {
		t.Fatalf("reachable dir refused: %v", err)
	}
}

func TestMissingBinaryIsAClearError(t *testing.T) {
	t.Parallel()
	_, err := findBinary("no-such-server-binary", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no-such-server-binary") || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("err = %v", err)
	}
}

func TestBinaryVersionOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, v := range []string{"9", "16", "13"} {
		p := dir + "/" + v + "/bin"
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+"/fakepg", []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, err := findBinary("fakepg", dir+"/*/bin")
	if err != nil || got != dir+"/16/bin/fakepg" {
		t.Fatalf("findBinary = %q, %v; want the highest version", got, err)
	}
}
