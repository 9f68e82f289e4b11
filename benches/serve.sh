#!/usr/bin/env bash
# Feature API benchmark: `dtc serve` over loopback, driven by wrk.
#
#   benches/serve.sh [embedded|dynamodb]...     default: embedded dynamodb
#
# embedded: 10 k identities of generated offer-ai events (28 days, about 60 sessions each)
#   sessionized into an embedded store with `dtc transform`; `dtc serve` pinned to core 0
#   with one HTTP thread, wrk pinned to core 1, each request a random identity's features
#   now (GET /v1/features/offer_ai_window/{identity}). Reports req/s, p50/p99/p99.9.
# dynamodb: the same against DynamoDB Local (scripts/local-services.sh) with 1 k identities
#   of 7 days (DynamoDB Local loads slowly), driven the same way;
#   reports req/s, p50/p99 and DynamoDB requests per fetch (the goal is 1: one Query).
#
# Variables: DURATION (wrk seconds, default 15), CONNECTIONS (default 16), BENCH_DIR (data,
# default ~/.cache/dtc-bench), DTC_BENCH_KIT (the generator's directory, default
# ../shared/bench), PORT (default 18780). Needs wrk (apt-get install -y wrk) and taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
kit=${DTC_BENCH_KIT:-$root/../shared/bench}
bench_dir=${BENCH_DIR:-$HOME/.cache/dtc-bench}
duration=${DURATION:-15}
connections=${CONNECTIONS:-16}
port=${PORT:-18780}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dtc-target}"
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(embedded dynamodb)
mkdir -p "$bench_dir"

if ! command -v wrk > /dev/null; then
  echo "installing wrk (Debian package)" >&2
  apt-get install -y wrk > /dev/null 2>&1 || { apt-get update > /dev/null && apt-get install -y wrk > /dev/null; }
fi

cargo build --release -p dtc-cli >&2
# A copy: the target directory may be shared, and another tree's build may replace the binary.
dtc="$bench_dir/dtc-serve-bench"
cp "$CARGO_TARGET_DIR/release/dtc" "$dtc"
"$dtc" serve --help > /dev/null
specs="$root/dtc-specs/offer-ai"
streaming="$specs/offer-ai-streaming.yml"
window="$specs/offer-ai-window.yml"

# wrk: a random identity of a list (what `dtc blocks --list` printed) per request;
# percentiles in microseconds at the end.
lua=$(mktemp --suffix=.lua)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2> /dev/null || true
  rm -f "$lua"
}
trap cleanup EXIT
write_lua() {
  cat > "$lua" <<EOF
local ids = {}
for line in io.lines("$1") do ids[#ids + 1] = line end
math.randomseed(42)
request = function()
  return wrk.format("GET", "/v1/features/offer_ai_window/" .. ids[math.random(1, #ids)])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.1f %.1f %.1f %d %d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
EOF
}

# Sessionizes `events` into `store` (a URI) unless the file `marker` says it was done
# already; `-` as the marker: always.
load() {
  local events=$1 store=$2 marker=$3; shift 3
  if [ "$marker" = - ] || [ ! -e "$marker" ]; then
    "$dtc" transform --streaming "$streaming" --source "$events" --store "$store" "$@" --quiet >&2
    [ "$marker" = - ] || touch "$marker"
  fi
}

# Starts `dtc serve` on core 0 over `store`; waits until it answers.
serve() {
  local store=$1 log=$2
  taskset -c 0 "$dtc" serve --streaming "$streaming" --window "$window" --store "$store" \
    --listen "127.0.0.1:$port" --threads 1 2> "$log" &
  server_pid=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && return 0
    sleep 0.1
  done
  cat "$log" >&2
  return 1
}

stop() {
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
}

# Writes the identities of `store` to `file` (before serving: an embedded store has one
# user at a time).
identities() {
  "$dtc" blocks --streaming "$streaming" --store "$1" --list > "$2"
}

# Runs wrk on core 1 over the identities in `file`; prints "req/s p50 p99 p99.9" (ms).
drive() {
  local ids=$1 seconds=$2
  write_lua "$ids"
  # A short warm-up: the page cache and the operator pool fill.
  taskset -c 1 wrk -t1 -c"$connections" -d2s -s "$lua" "http://127.0.0.1:$port/" > /dev/null
  local out
  out=$(taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" -s "$lua" "http://127.0.0.1:$port/")
  echo "$out" | awk '/^RESULT/ {
    if ($7 + $8 > 0) { printf "errors: %d bad status, %d socket\n", $7, $8 > "/dev/stderr" }
    printf "%.0f %.3f %.3f %.3f\n", $2 / ($3 / 1e6), $4 / 1000, $5 / 1000, $6 / 1000 }'
}

metric() {
  curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

printf '%-9s %10s %9s %9s %10s %s\n' store req/s p50_ms p99_ms p99.9_ms notes
for variant in "${variants[@]}"; do
  case $variant in
    embedded)
      events="$bench_dir/serve_u10000_d28.jsonl"
      [ -e "$events" ] || python3 "$kit/gen_events.py" --users 10000 --days 28 --seed 42 --out "$events" 2> /dev/null
      store="$bench_dir/serve-store-u10000"
      load "$events" "$store" "$store.loaded"
      identities "$store" "$bench_dir/serve-identities-u10000.txt"
      serve "$store" "$bench_dir/serve-embedded.log"
      read -r rps p50 p99 p999 < <(drive "$bench_dir/serve-identities-u10000.txt" "$duration")
      stop
      printf '%-9s %10s %9s %9s %10s %s\n' embedded "$rps" "$p50" "$p99" "$p999" \
        "10k identities, $connections connections, server on 1 core"
      ;;
    dynamodb)
      eval "$(scripts/local-services.sh start)"
      events="$bench_dir/serve_u1000_d7.jsonl"
      [ -e "$events" ] || python3 "$kit/gen_events.py" --users 1000 --days 7 --seed 42 --out "$events" 2> /dev/null
      table="dtc-serve-bench-$$"
      load "$events" "dynamodb://$table" - --create-table
      log="$bench_dir/serve-dynamodb.log"
      identities "dynamodb://$table" "$bench_dir/serve-identities-dynamodb.txt"
      serve "dynamodb://$table" "$log"
      read -r rps p50 p99 p999 < <(drive "$bench_dir/serve-identities-dynamodb.txt" "$duration")
      reads=$(metric dtc_serve_store_reads_total)
      stop
      queries=$(sed -n 's/.* \([0-9]*\) Query.*/\1/p' "$log" | tail -1)
      scripts/local-services.sh stop > /dev/null 2>&1 || true
      printf '%-9s %10s %9s %9s %10s %s\n' dynamodb "$rps" "$p50" "$p99" "$p999" \
        "1k identities (DynamoDB Local), $(awk -v q="$queries" -v r="$reads" 'BEGIN { printf "%.3f", q / r }') Query per fetch ($queries / $reads)"
      ;;
    *)
      echo "unknown variant $variant (embedded, dynamodb)" >&2
      exit 2
      ;;
  esac
done
