#!/usr/bin/env bash
# The Kafka bench: 1 M offer-ai events produced to a local broker (librdkafka's mock cluster in
# a process of its own, 16 partitions: see below), then consumed into a fresh embedded store with
# --stop-at-end by one dtc pinned to one core, beside the same events read from a file by the
# same binary in the same run (the baseline). Prints events/s of both, their ratio, and the
# consumer's event-to-store freshness p99 (read → durable commit).
#
#   benches/kafka.sh [EVENTS]        (default 1000000; needs python3 and taskset)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dtc-target}"
events=${1:-1000000}
# librdkafka's mock cluster keeps at most 100 000 message sets or 5 MiB a partition and drops
# older ones, so 1 M events need more than 4 partitions to be all there when consumed.
partitions=${DTC_BENCH_PARTITIONS:-16}
gen=${DTC_GEN_EVENTS:-../shared/bench/gen_events.py}
[[ -f $gen ]] || gen=/work/shared/bench/gen_events.py
cargo build --release -q -p dtc-cli
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
broker_pid=
cleanup() {
    [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

users=$((events * 3750 / 1000000 + 1))
python3 "$gen" --users "$users" --days 28 --seed 42 --max-events "$events" --out "$work/events.jsonl"
specs=dtc-specs/offer-ai

# The broker gets the other core, so the consumer's core is its own.
taskset -c 1 "$bin/dtc-test-broker" --partitions "$partitions" bench >"$work/broker.out" &
broker_pid=$!
for _ in $(seq 100); do
    grep -q '^bootstrap ' "$work/broker.out" 2>/dev/null && break
    sleep 0.1
done
bootstrap=$(sed -n 's/^bootstrap //p' "$work/broker.out")
"$bin/dtc" produce --streaming "$specs/offer-ai-streaming.yml" \
    --source "$work/events.jsonl" --to "kafka://$bootstrap/bench"

run() {
    local label=$1
    shift
    local start end
    start=$(date +%s.%N)
    taskset -c 0 "$bin/dtc" transform --streaming "$specs/offer-ai-streaming.yml" "$@" \
        2>"$work/$label.log" >/dev/null
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.3f}')"
}
file_s=$(run file --source "$work/events.jsonl" --store "$work/file-store")
kafka_s=$(run kafka --source "kafka://$bootstrap/bench" --group bench --stop-at-end \
    --store "$work/kafka-store")
grep -E 'events read|late|rejected:|commits|event-to-store' "$work/kafka.log" >&2 || true
freshness=$(sed -n 's/.*event-to-store p99 \(.*\)$/\1/p' "$work/kafka.log")
python3 - "$events" "$file_s" "$kafka_s" "$freshness" <<'PY'
import sys
events, file_s, kafka_s, fresh = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
print(f"events:            {events}")
print(f"file, one core:    {file_s:.2f} s  {events / file_s:,.0f} events/s")
print(f"kafka, one core:   {kafka_s:.2f} s  {events / kafka_s:,.0f} events/s (wall clock incl. group join)")
print(f"kafka / file:      {file_s / kafka_s:.2f}x")
print(f"freshness p99:     {fresh} (commit interval 1 s)")
PY
