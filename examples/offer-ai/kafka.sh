#!/usr/bin/env bash
# The offer-ai example through Kafka: starts a local broker (librdkafka's mock cluster, in a
# process of its own), produces examples/offer-ai/events.jsonl to a topic of 4 partitions keyed
# by identity, consumes it into a fresh store with --stop-at-end, and prints the training rows
# of a window run over that store.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dtc-target}"
cargo build --release -q -p dtc-cli
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d)
broker_pid=
cleanup() {
    [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin/dtc-test-broker" --partitions 4 offer-events >"$work/broker.out" &
broker_pid=$!
for _ in $(seq 100); do
    grep -q '^bootstrap ' "$work/broker.out" 2>/dev/null && break
    sleep 0.1
done
bootstrap=$(sed -n 's/^bootstrap //p' "$work/broker.out")
[[ -n $bootstrap ]] || { echo "the broker did not start" >&2; exit 1; }
echo "broker at $bootstrap" >&2

specs=dtc-specs/offer-ai
"$bin/dtc" produce --streaming "$specs/offer-ai-streaming.yml" \
    --source examples/offer-ai/events.jsonl --to "kafka://$bootstrap/offer-events"
"$bin/dtc" transform --streaming "$specs/offer-ai-streaming.yml" \
    --source "kafka://$bootstrap/offer-events" --group offer-ai --stop-at-end \
    --store "$work/store"
"$bin/dtc" transform --streaming "$specs/offer-ai-streaming.yml" \
    --window "$specs/offer-ai-window.yml" --store "$work/store" --format jsonl
