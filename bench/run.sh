#!/usr/bin/env bash
# make bench: load scenarios against the local run (`acmecrm dev`: durable
# PostgreSQL with fsync and synchronous_commit on, Redis, kfake) on this
# machine, with wrk as the load generator. Prints one line per scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin/acmecrm
DURATION=${BENCH_DURATION:-10s}
CONNS=${BENCH_CONNECTIONS:-50}
SEED=${BENCH_SEED_CONTACTS:-1000}

if ! command -v wrk >/dev/null; then
  echo "bench: installing wrk from the OS packages" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

work=$(mktemp -d /tmp/acmecrm-bench-XXXXXX)
chmod 711 "$work"
# For the ceilings: the storage work alone (a Go benchmark of the
# receiver's batch insert) and a bare net/http server.
go test -c -o "$work/postgres.test" ./internal/postgres
go build -o "$work/bareserver" ./bench/bareserver
# batch_counts prints the receiver's webhooks committed, commits and
# single-webhook commits so far (acmecrm_ingest_batch_rows on /metrics).
batch_counts() {
  curl -fs "$base/metrics" | awk '/^acmecrm_ingest_batch_rows_sum/{r=$2} /^acmecrm_ingest_batch_rows_count/{n=$2}
    /^acmecrm_ingest_batch_rows_bucket\{le="1"\}/{s=$2} END{printf "%d %d %d\n", r, n, s}'
}
# batch_line BEFORE AFTER [model]: the receiver's batches between two
# batch_counts: webhooks per commit and the share of single-webhook commits;
# with "model", also what the storage cost model (below) gives PostgreSQL
# per webhook for those batches (model_us).
batch_line() {
  local rows count single b_rows b_count b_single
  read -r rows count single <<<"$2"
  read -r b_rows b_count b_single <<<"$1"
  awk -v rows=$((rows - b_rows)) -v n=$((count - b_count)) -v single=$((single - b_single)) \
    -v model="${3:+$(model_us "$1" "$2")}" 'BEGIN { if (n == 0) exit
    printf "%-28s %.1f webhooks per commit on average, %d%% of commits hold one", "  batches", rows / n, 100 * single / n
    if (model != "") printf "; the cost model gives PostgreSQL %d µs per webhook", model
    printf "\n" }'
}
# model_us BEFORE AFTER: PostgreSQL's CPU per webhook for the receiver's
# batches between two batch_counts, by the storage cost model.
model_us() {
  local rows count b_rows b_count
  read -r rows count _ <<<"$2"
  read -r b_rows b_count _ <<<"$1"
  awk -v rows=$((rows - b_rows)) -v n=$((count - b_count)) -v commit="$commit_us" -v row="$row_us" \
    'BEGIN { if (rows > 0) printf "%d", row + commit * n / rows + 0.5 }'
}
# cpu_us GROUP RATE: the CPU time per request of each group of processes
# during the last bench/cpu.py run, in µs (cores ÷ rate).
cpu_us() { awk -v g="$1" -v r="$2" '$1==g{printf "%.0f", $2 * 1e6 / r}' "$work/cpu"; }
# wrk_webhooks URL FILE DURATION: wrk replays FILE's signed webhooks to URL
# (bench/webhooks.lua) under bench/cpu.py. The script holds every thread
# until the last one has read its share of FILE, and the CPU is counted
# from then on (FILE.start), so the rate and the CPU cover the same time.
wrk_webhooks() {
  bench/cpu.py "$work/cpu" --from "$2.start" -- \
    wrk -t2 -c"$CONNS" -d"$3" --latency -s bench/webhooks.lua "$1" -- "$2" 2
}
# free_port prints a TCP port free on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port 2>/dev/null || echo 3999)
base="http://127.0.0.1:$port"

# The limits stay on (every request is still counted in Redis), but high
# enough that one benchmark user is never refused.
start_service() { # [dev flags...]
  HTTP_ADDR=127.0.0.1:$port LOG_LEVEL=${BENCH_LOG_LEVEL:-info} LOG_FORMAT=json \
    RATE_LIMIT_API=1000000/1s RATE_LIMIT_LOGIN=1000/1s RATE_LIMIT_WEBHOOK=1000000/1s \
    "$BIN" dev --data "$work/data" "$@" >>"$work/service.log" 2>&1 &
  svc=$!
  for _ in $(seq 1 600); do
    curl -fs "$base/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$svc" 2>/dev/null || { cat "$work/service.log"; exit 1; }
    sleep 0.1
  done
  echo "bench: the service did not become ready" >&2; exit 1
}
stop_service() { kill -INT "$svc" 2>/dev/null; wait "$svc" 2>/dev/null || true; }
bare=
cleanup() { stop_service; [ -z "$bare" ] || kill "$bare" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
start_service

TOKEN=$(curl -fs -X POST "$base/api/auth/login" -H 'Content-Type: application/json' \
  -d '{"username":"admin@acmecrm.com","password":"admin123"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
export TOKEN

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r); PostgreSQL $(psql --version | awk '{print $3}'), fsync on, synchronous_commit on"
echo "load: wrk, $CONNS connections, 2 threads, $DURATION per scenario; service, PostgreSQL, Redis and wrk share the machine"

# Seed contacts so that reads touch a realistic table.
wrk -t2 -c"$CONNS" -d60s -s bench/post.lua "$base/api/contacts" >/dev/null 2>&1 &
seeder=$!
for _ in $(seq 1 600); do
  n=$(curl -fs "$base/api/contacts?limit=1" -H "Authorization: Bearer $TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pagination"]["totalItems"])')
  [ "$n" -ge "$SEED" ] && break
  sleep 0.1
done
kill "$seeder" 2>/dev/null; wait "$seeder" 2>/dev/null || true
# Fresh planner statistics, as autovacuum would have them in steady state.
pgurl=$(awk '$1=="postgres"{print $2; exit}' "$work/service.log")
psql -q "$pgurl" -c "ANALYZE contacts" >/dev/null
ID=$(curl -fs "$base/api/contacts?limit=1" -H "Authorization: Bearer $TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
COUNT=$(curl -fs "$base/api/contacts?limit=1" -H "Authorization: Bearer $TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pagination"]["totalItems"])')
echo "dataset: $COUNT contacts"

scenario() {
  local name=$1 script=$2 url=$3
  local out
  out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$script" "$url")
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p50=$(awk '$1=="50%"{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  errs=$(awk '/Non-2xx/{print $5}' <<<"$out")
  printf '%-28s %10s req/s   p50 %-9s p99 %-9s non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${errs:-0}"
}

# settle writes out, before a webhook scenario, what the earlier ones left
# in the page cache: PostgreSQL 15 extends its files by writing pages, and
# the kernel writes dirty pages back ~30 s later, in one burst that delays
# every commit's fsync meanwhile (DECISIONS.md #60). A CHECKPOINT flushes
# the database's files, sync the other files named.
settle() { psql -q "$pgurl" -c "CHECKPOINT" >/dev/null; [ $# -eq 0 ] || sync "$@"; }

# Baselines on the same PostgreSQL, in the same run: what the database alone
# does for the same shape of work (pgbench over the same Unix socket).
pghost=$(sed -n 's/.*host=\([^&]*\).*/\1/p' <<<"$pgurl"); pgport=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$pgurl")
psql -q "$pgurl" -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench" >/dev/null 2>&1
pgargs=(-h "$pghost" -p "$pgport" -U postgres)
pgb() { pgbench "${pgargs[@]}" "$@" 2>/dev/null; }
pgb -i -q -s 10 bench >/dev/null 2>&1
psql -q "postgres://postgres@/bench?host=$pghost&port=$pgport" -c "CREATE TABLE rows1k (id bigserial PRIMARY KEY, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())" >/dev/null
echo "INSERT INTO rows1k (payload) VALUES (repeat('x', 1000));" >"$work/insert.sql"
# wal_flushes prints how many times PostgreSQL has flushed its WAL to disk
# (fdatasync) since the server started, in all processes.
wal_flushes() { psql -qtA "$pgurl" -c "SELECT wal_sync FROM pg_stat_wal"; }
baseline() {
  local name=$1; shift
  local out tps txs flushes
  flushes=$(wal_flushes)
  out=$(bench/cpu.py "$work/cpu" -- pgbench "${pgargs[@]}" -n -T "${DURATION%s}" "$@" bench 2>/dev/null)
  flushes=$(($(wal_flushes) - flushes))
  tps=$(awk '/^tps/{print int($3)}' <<<"$out")
  txs=$(sed -n 's/.*actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  printf '%-28s %10s tx/s    (pgbench %s)\n' "$name" "$tps" "$*"
  # What a transaction costs the machine; for a writing baseline, also how
  # many commits shared a WAL flush (PostgreSQL's own group commit).
  printf '%-28s PostgreSQL %s µs, pgbench %s µs per transaction; %s cores idle' "  CPU" \
    "$(cpu_us postgres "$tps")" "$(cpu_us loadgen "$tps")" "$(awk '$1=="idle"{print $2}' "$work/cpu")"
  # (A read-only baseline's flushes are other processes' work, not its own.)
  case " $* " in *" -S "*) flushes=0 ;; esac
  [ "$flushes" -lt 100 ] || awk -v t="$txs" -v f="$flushes" 'BEGIN{printf "; %.1f commits per WAL flush", t / f}'
  printf '\n'
}
baseline "baseline: PK select" -S -c "$CONNS" -j 2 -M prepared
baseline "baseline: 1 KB insert, 8" -f "$work/insert.sql" -c 8 -j 2 -M prepared
baseline "baseline: 1 KB insert, 32" -f "$work/insert.sql" -c 32 -j 2 -M prepared
# The baselines leave ~0.5 GB of fresh rows behind: drop them and write
# their dirty pages out now, so that their vacuum and checkpoint work does
# not run on the same two cores during what follows.
psql -q "$pgurl" -c "DROP DATABASE bench" -c "CHECKPOINT" >/dev/null
# The disk's flush rate alone: one 8 kB write and fdatasync at a time, the
# bound of one commit per flush (pg_test_fsync, same filesystem as the data).
fsync_rate=$("$(compgen -G '/usr/lib/postgresql/*/bin/pg_test_fsync' | sort -V | tail -1)" -s 1 -f "$work/fsync.test" |
  awk '$1 == "fdatasync" && $3 == "ops/sec" {print int($2); exit}')
rm -f "$work/fsync.test"
printf '%-28s %10s flushes/s (pg_test_fsync: one 8 kB write + fdatasync at a time, nothing else)\n' "baseline: disk flush" "$fsync_rate"
# Ceiling: the receiver's storage work alone. RecordEvents from two
# writers in batches of 1, 5, 20 (the receiver's shape under the webhook
# load below) and 50 realistic webhooks, same PostgreSQL, no HTTP; each in
# its own database, dropped afterwards.
redisurl=$(awk '$1=="redis"{u=$2} END{print u}' "$work/service.log")
bench_out=$(TEST_POSTGRES_URL="$(sed 's|/acmecrm?|/postgres?|' <<<"$pgurl")" TEST_REDIS_URL="$redisurl" \
  "$work/postgres.test" -test.run '^$' -test.bench '^BenchmarkRecordEvents$' -test.benchtime "${BENCH_STORAGE_WEBHOOKS:-60000}x") ||
  { echo "$bench_out" >&2; echo "bench: FAILED: BenchmarkRecordEvents" >&2; exit 1; }
# storage SIZE FIELD: rows/s (FIELD rows/s) or µs of PostgreSQL CPU per
# webhook (FIELD pg-µs/row) in batches of SIZE.
storage() {
  awk -v name="BenchmarkRecordEvents/batch=$1-" -v f="$2" 'index($1, name) == 1 {
    for (i = 2; i <= NF; i++) if ($i == f) printf "%d", $(i-1) + 0.5 }' <<<"$bench_out"
}
store_rate=$(storage 20 rows/s); store_us=$(storage 20 pg-µs/row)
for size in 1 5 20 50; do
  [ -n "$(storage "$size" rows/s)" ] || { echo "$bench_out" >&2; echo "bench: FAILED: no figures for batches of $size" >&2; exit 1; }
done
printf '%-28s %10s rows/s    PostgreSQL %s µs CPU per webhook (RecordEvents, 2 writers × 20, no HTTP)\n' "ceiling: storage alone" "$store_rate" "$store_us"
for size in 1 5 50; do
  printf '%-28s %10s rows/s    PostgreSQL %s µs CPU per webhook\n' "  in batches of $size" "$(storage "$size" rows/s)" "$(storage "$size" pg-µs/row)"
done
# Per webhook = per row + per commit ÷ batch size; solved from the batches
# of 1 and 50.
read -r commit_us row_us < <(awk -v one="$(storage 1 pg-µs/row)" -v fifty="$(storage 50 pg-µs/row)" \
  'BEGIN { f = (one - fifty) / (1 - 1 / 50); printf "%d %d\n", f + 0.5, one - f + 0.5 }')
printf '%-28s PostgreSQL %s µs CPU per commit + %s µs per webhook (from the batches of 1 and 50)\n' "  cost model" "$commit_us" "$row_us"
psql -q "$pgurl" -c "CHECKPOINT" >/dev/null

scenario "GET /api/contacts/{id}" bench/get.lua "$base/api/contacts/$ID"
scenario "GET /api/contacts?limit=10" bench/get.lua "$base/api/contacts?limit=10"
scenario "POST /api/contacts" bench/post.lua "$base/api/contacts"

# Let the relay publish the API scenarios' change events first, so that the
# webhook and pipeline figures measure webhooks only.
for _ in $(seq 1 600); do
  [ "$(psql -qtA "$pgurl" -c "SELECT count(*) FROM outbox")" = 0 ] && break
  sleep 0.5
done

# Webhooks: `acmecrm simulate` plays AcmeCRM (contact lifecycles, signed
# per request, unique event ids), as fast as 50 connections allow, 20 s.
WH_DURATION=${BENCH_WEBHOOK_DURATION:-20s}
simulate() { "$BIN" simulate --url "$base/api/webhooks" --secret dev-only-webhook-secret --json --quiet "$@" || true; }
summary() { python3 -c 'import json,sys; s=json.load(sys.stdin); l=s["latencyMs"]
print("%.0f %.2fms %.2fms %.2fms %d %d" % (s["ratePerSecond"], l["p50"], l["p90"], l["p99"], sum(s["rejected"].values()) + s["errors"], s["sent"]))'; }
settle
before=$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events")
read -r rps p50 p90 p99 errs sent < <(simulate --rate 0 --concurrency "$CONNS" --duration "$WH_DURATION" | summary)
after=$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events")
printf '%-28s %10s req/s   p50 %-9s p99 %-9s non-2xx %s   (%s sent, %s events committed)\n' "POST /api/webhooks" "$rps" "$p50" "$p99" "$errs" "$sent" "$((after - before))"

# End to end: the same events through the outbox relay, the broker and the
# consumer into contacts (all running during the load above).
for _ in $(seq 1 600); do
  left=$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events WHERE status NOT IN ('processed', 'dead', 'ignored')")
  [ "$left" = 0 ] && break
  sleep 0.5
done
psql -qtA -F ' ' "$pgurl" -c "SELECT count(*), round(count(*) / extract(epoch FROM max(processed_at) - min(received_at))),
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at) * 1000)),
  round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at) * 1000))
  FROM webhook_events WHERE processed_at IS NOT NULL" |
  awk '{printf "%-28s %10s events/s applied end to end (%s events)   lag p50 %s ms   p99 %s ms (received → contact committed)\n", "pipeline", $2, $1, $3, $4}'

# Lag at a fixed rate (default 2,500/s, half the end-to-end target).
RATE=${BENCH_PIPELINE_RATE:-2500}
mark=$(psql -qtA "$pgurl" -c "SELECT coalesce(max(id), 0) FROM webhook_events")
read -r lrps lp50 lp90 lp99 lerrs lsent < <(simulate --rate "$RATE" --concurrency "$CONNS" --duration 20s | summary)
for _ in $(seq 1 600); do
  left=$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events WHERE id > $mark AND status NOT IN ('processed', 'dead', 'ignored')")
  [ "$left" = 0 ] && break
  sleep 0.5
done
psql -qtA -F ' ' "$pgurl" -c "SELECT count(*),
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at) * 1000)),
  round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at) * 1000))
  FROM webhook_events WHERE id > $mark" |
  awk -v rate="$RATE" -v load="sent $lrps/s, webhook p99 $lp99, non-2xx $lerrs" '{printf "%-28s lag p50 %s ms   p99 %s ms at %s/s (%s events; %s)\n", "pipeline at fixed rate", $2, $3, rate, $1, load}'

# The receiver alone (issue 4's scenario): the same load with only the api
# role running, so no CPU goes to publishing and applying; what it accepts
# stays in the outbox.
stop_service
start_service --roles api
pgurl=$(awk '$1=="postgres"{u=$2} END{print u}' "$work/service.log")
settle
before=$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events")
read -r rps p50 p90 p99 errs sent < <(simulate --rate 0 --concurrency "$CONNS" --duration "$WH_DURATION" | summary)
after=$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events")
printf '%-28s %10s req/s   p50 %-9s p99 %-9s non-2xx %s   (%s sent, %s events committed)\n' "POST /api/webhooks (alone)" "$rps" "$p50" "$p99" "$errs" "$sent" "$((after - before))"

# The same, with a cheaper generator: wrk replays webhooks that `acmecrm
# simulate --emit` signed just before (unique event ids, the same
# lifecycles), so that less of the two cores goes to generating load.
"$BIN" simulate --emit "$work/webhooks.tsv" --events "${BENCH_WEBHOOK_EVENTS:-500000}" --secret dev-only-webhook-secret
settle "$work/webhooks.tsv"
before=$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events")
batches_before=$(batch_counts)
flushes=$(wal_flushes)
out=$(wrk_webhooks "$base/api/webhooks" "$work/webhooks.tsv" "$WH_DURATION")
flushes=$(($(wal_flushes) - flushes))
after=$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events")
answered=$(awk '/requests in/{print $1}' <<<"$out")
refused=$(awk '/Non-2xx/{print $5}' <<<"$out" | grep . || echo 0)
# wrk counts the answers it read; the requests in flight when it stopped
# (at most one per connection) are committed too.
printf '%-28s %10s req/s   p50 %-9s p99 %-9s non-2xx %s   (%s answered, %s events committed)\n' "POST /api/webhooks (wrk)" \
  "$(awk '/Requests\/sec/{print $2}' <<<"$out")" "$(awk '$1=="50%"{print $2}' <<<"$out")" "$(awk '$1=="99%"{print $2}' <<<"$out")" \
  "$refused" "$answered" "$((after - before))"
if [ "$((after - before))" -lt "$((answered - refused))" ]; then
  echo "bench: FAILED: fewer webhooks committed than accepted" >&2
  exit 1
fi
# cpu_line RATE: the receiver's line of CPU per webhook for that run.
cpu_line() {
  printf '%-28s service %s µs, PostgreSQL %s µs, wrk %s µs per webhook; %s cores idle\n' "  CPU" \
    "$(cpu_us service "$1")" "$(cpu_us postgres "$1")" "$(cpu_us loadgen "$1")" "$(awk '$1=="idle"{print $2}' "$work/cpu")"
}
rate=$(awk '/Requests\/sec/{print $2}' <<<"$out")
cpu_line "$rate"
batches_after=$(batch_counts)
batch_line "$batches_before" "$batches_after" model
awk -v n="$((after - before))" -v f="$flushes" -v d="${WH_DURATION%s}" -v disk="$fsync_rate" 'BEGIN { if (f == 0) exit
  printf "%-28s %d WAL flushes/s, %.1f webhooks per flush (the disk alone: %d flushes/s)\n", "  flushes", f / d, n / f, disk }'
recv_rate=$rate
recv_pg_us=$(model_us "$batches_before" "$batches_after")

# Ceiling: the receiver with nothing new to store. wrk replays a small file
# of webhooks that an earlier pass stored, so that every request is a
# re-delivery (202 duplicate): everything the receiver does for a webhook
# (verify, parse, coalesce, one INSERT … ON CONFLICT per batch, answer after
# the commit) except writing rows and flushing them. It is also the rate at
# which the receiver absorbs a CRM re-sending its backlog.
"$BIN" simulate --emit "$work/redeliver.tsv" --events 20000 --secret dev-only-webhook-secret
before=$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events")
for _ in 1 2 3 4 5; do
  wrk -t2 -c"$CONNS" -d3s -s bench/webhooks.lua "$base/api/webhooks" -- "$work/redeliver.tsv" 2 >/dev/null
  [ "$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events")" -ge "$((before + 20000))" ] && break
done
settle "$work/redeliver.tsv"
before=$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events")
batches_before=$(batch_counts)
out=$(wrk_webhooks "$base/api/webhooks" "$work/redeliver.tsv" "$DURATION")
after=$(psql -qtA "$pgurl" -c "SELECT count(*) FROM webhook_events")
rm -f "$work/redeliver.tsv"
rate=$(awk '/Requests\/sec/{print $2}' <<<"$out")
printf '%-28s %10s req/s   p50 %-9s p99 %-9s non-2xx %s   (%s answered, %s new events)\n' "ceiling: re-deliveries" \
  "$rate" "$(awk '$1=="50%"{print $2}' <<<"$out")" "$(awk '$1=="99%"{print $2}' <<<"$out")" \
  "$(awk '/Non-2xx/{print $5}' <<<"$out" | grep . || echo 0)" "$(awk '/requests in/{print $1}' <<<"$out")" "$((after - before))"
cpu_line "$rate"
batch_line "$batches_before" "$(batch_counts)"

# Ceilings: HTTP alone, a bare net/http server answering the same wrk load;
# then the same server with its answers waiting for a shared commit as long
# as the receiver's waited. Its two committers sleep WAIT per batch and a
# request waits about two of them, so WAIT is half the receiver's mean
# latency under wrk (connections ÷ rate, the load being closed-loop).
# bare_run [WAIT] sets bare_rate, bare_us, bare_gen_us and bare_idle.
bare_run() {
  local bareport out
  bareport=$(free_port)
  "$work/bareserver" "127.0.0.1:$bareport" "$@" &
  bare=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$bareport/" && break; sleep 0.05; done
  out=$(wrk_webhooks "http://127.0.0.1:$bareport/api/webhooks" "$work/webhooks.tsv" "$DURATION")
  kill "$bare"; wait "$bare" 2>/dev/null || true
  bare=
  bare_rate=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  bare_us=$(cpu_us bareserver "$bare_rate"); bare_gen_us=$(cpu_us loadgen "$bare_rate")
  bare_idle=$(awk '$1=="idle"{print $2}' "$work/cpu")
}
bare_run
printf '%-28s %10s req/s     server %s µs, wrk %s µs CPU per request (net/http answering 202, nothing else)\n' "ceiling: bare net/http" "$bare_rate" "$bare_us" "$bare_gen_us"
cores=$(nproc)
awk -v c="$cores" -v pg="$store_us" -v http="$bare_us" -v gen="$bare_gen_us" 'BEGIN{
  printf "%-28s %10d webhooks/s = %d cores ÷ (%d + %d + %d) µs, if verifying, parsing, batching and scheduling cost nothing\n",
    "bound on this machine", c * 1e6 / (pg + http + gen), c, pg, http, gen}'
recv_ms=$(awk -v c="$CONNS" -v r="$recv_rate" 'BEGIN{printf "%.2f", c * 1000 / r}')
wait_us=$(awk -v ms="$recv_ms" 'BEGIN{printf "%d", ms * 500}')
bare_run "${wait_us}us"
rm -f "$work/webhooks.tsv"
printf '%-28s %10s req/s     server %s µs, wrk %s µs CPU per request, %s cores idle (answers after a shared %d µs sleep: %s ms on average, the receiver'"'"'s %s ms)\n' \
  "ceiling: bare, waiting" "$bare_rate" "$bare_us" "$bare_gen_us" "$bare_idle" "$wait_us" \
  "$(awk -v c="$CONNS" -v r="$bare_rate" 'BEGIN{printf "%.2f", c * 1000 / r}')" "$recv_ms"
awk -v c="$cores" -v pg="$recv_pg_us" -v http="$bare_us" -v gen="$bare_gen_us" 'BEGIN{
  printf "%-28s %10d webhooks/s = %d cores ÷ (%d + %d + %d) µs: storage at the receiver'"'"'s batch sizes and HTTP with its waiting, nothing verified or parsed, no core idle\n",
    "estimate with that waiting", c * 1e6 / (pg + http + gen), c, pg, http, gen}'
