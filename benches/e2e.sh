#!/usr/bin/env bash
# End-to-end benchmark: the offer-ai job (JSON events → blocks → Parquet training rows) with
# dtc and with the DuckDB SQL baseline, side by side in the same run, one core each
# (taskset -c 0). Reports events/s, peak RSS, the dtc/DuckDB ratio, and checks that both
# produced the same rows.
#
#   benches/e2e.sh [EVENTS...]        default: 1000000 10000000
#
# RUNS (default 3) runs of each tool alternate (dtc, DuckDB, dtc, ...), and the medians are
# reported: these machines' speed drifts by a quarter within minutes, and alternating exposes
# both tools to the same drift.
#
# DTC_BEFORE=/path/to/an/older/dtc adds that binary to the alternation and reports the
# before/after ratio from the same run (e.g. a release build of the previous round's commit).
#
# Needs python3 (a venv with duckdb + pyarrow is made under $BENCH_DIR) and the bench kit in
# ../shared/bench (or $DTC_BENCH_KIT). Data and results live in $BENCH_DIR
# (default ~/.cache/dtc-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
kit=${DTC_BENCH_KIT:-$root/../shared/bench}
bench_dir=${BENCH_DIR:-$HOME/.cache/dtc-bench}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dtc-target}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 10000000)
runs=${RUNS:-3}
mkdir -p "$bench_dir"

if [ ! -x "$bench_dir/venv/bin/python" ]; then
  echo "setting up the DuckDB baseline venv in $bench_dir/venv" >&2
  python3 -m venv "$bench_dir/venv"
  "$bench_dir/venv/bin/pip" install -q duckdb pyarrow
fi
py="$bench_dir/venv/bin/python"

cargo build --release -p dtc-cli >&2
dtc="$CARGO_TARGET_DIR/release/dtc"
specs="$root/dtc-specs/offer-ai/blurr"

# The median of numbers given one per line.
median() {
  sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Runs a command pinned to core 0; prints "seconds max_rss_kb". The events file is read once
# first: the kernel may have dropped it from the page cache since the last run (these machines
# reclaim cold cache pages), and neither tool should pay for the disk read the other was spared.
measure() {
  local log
  cat "$events" > /dev/null
  # Writes the last run left in the page cache are flushed now, not while this one runs.
  sync
  log=$(mktemp)
  taskset -c 0 /usr/bin/time -f '%e %M' -o "$log" "$@" > /dev/null
  cat "$log"
  rm -f "$log"
}

echo "medians of $runs alternating runs per tool, each on core 0"
printf '%-10s %-8s %10s %12s %10s %8s\n' events tool seconds events/s peak_MB rows
for n in "${sizes[@]}"; do
  events="$bench_dir/ev_${n}_u$(( n * 3 / 800 )).jsonl"
  if [ ! -s "$events" ]; then
    # The kit's README sizes: 3 750 users for 1 M events, 37 500 for 10 M.
    users=$(( n * 3 / 800 ))
    python3 "$kit/gen_events.py" --users "$users" --days 28 --seed 42 --max-events "$n" --out "$events" >&2
  fi
  out="$bench_dir/run-$n"
  dtc_runs=()
  duck_runs=()
  before_runs=()
  for ((run = 1; run <= runs; run++)); do
    rm -rf "$out"
    mkdir -p "$out"
    dtc_runs+=("$(measure "$dtc" transform \
        --streaming "$specs/offer-ai-streaming-bts.yml" --window "$specs/offer-ai-window-bts.yml" \
        --source "$events" --store "$out/store" --output "$out/dtc" --quiet)")
    duck_runs+=("$(measure "$py" "$kit/duckdb_offer_ai.py" --input "$events" \
        --out "$out/duck.parquet" --threads 1)")
    if [ -n "${DTC_BEFORE:-}" ]; then
      rm -rf "$out/before-store" "$out/before"
      before_runs+=("$(measure "$DTC_BEFORE" transform \
          --streaming "$specs/offer-ai-streaming-bts.yml" --window "$specs/offer-ai-window-bts.yml" \
          --source "$events" --store "$out/before-store" --output "$out/before" --quiet)")
    fi
    echo "  run $run of $runs at $n events: dtc ${dtc_runs[-1]}, duckdb ${duck_runs[-1]}${DTC_BEFORE:+, before ${before_runs[-1]}} (seconds, KB)" >&2
  done
  dtc_s=$(printf '%s\n' "${dtc_runs[@]}" | cut -d' ' -f1 | median)
  dtc_kb=$(printf '%s\n' "${dtc_runs[@]}" | cut -d' ' -f2 | median)
  duck_s=$(printf '%s\n' "${duck_runs[@]}" | cut -d' ' -f1 | median)
  duck_kb=$(printf '%s\n' "${duck_runs[@]}" | cut -d' ' -f2 | median)
  rows=$("$py" - "$out/dtc" "$out/duck.parquet" <<'PY'
import sys, glob, math
import pyarrow.parquet as pq
dtc = pq.ParquetDataset(glob.glob(sys.argv[1] + '/*.parquet')).read().to_pylist()
duck = pq.read_table(sys.argv[2]).to_pylist()
cols = ['last_session.games_played', 'last_session.win_ratio',
        'last_week.purchase_amount', 'next_week.purchase_amount']
def key(r, uid):
    return (r[uid], r['anchor_time' if uid == 'identity' else 'anchor_start'].replace(tzinfo=None))
a = {key(r, 'identity'): [r[c] for c in cols] for r in dtc}
b = {key(r, 'uid'): [r[c] for c in cols] for r in duck}
bad = [k for k in b if k not in a or any(
    not (x == y or (isinstance(x, float) and isinstance(y, float) and math.isclose(x, y, rel_tol=0, abs_tol=0)))
    for x, y in zip(a[k], b[k]))]
extra = [k for k in a if k not in b]
print(len(a), len(b), len(bad), len(extra))
PY
)
  read -r dtc_rows duck_rows mismatched extra <<< "$rows"
  awk -v n="$n" -v s="$dtc_s" -v kb="$dtc_kb" -v r="$dtc_rows" \
      'BEGIN { printf "%-10s %-8s %10.2f %12.0f %10.0f %8d\n", n, "dtc", s, n / s, kb / 1024, r }'
  awk -v n="$n" -v s="$duck_s" -v kb="$duck_kb" -v r="$duck_rows" \
      'BEGIN { printf "%-10s %-8s %10.2f %12.0f %10.0f %8d\n", n, "duckdb", s, n / s, kb / 1024, r }'
  awk -v a="$dtc_s" -v b="$duck_s" -v ka="$dtc_kb" -v kb="$duck_kb" \
      'BEGIN { printf "ratio dtc/duckdb: %.2fx events/s, %.2fx peak RSS\n", b / a, ka / kb }'
  if [ -n "${DTC_BEFORE:-}" ]; then
    before_s=$(printf '%s\n' "${before_runs[@]}" | cut -d' ' -f1 | median)
    before_kb=$(printf '%s\n' "${before_runs[@]}" | cut -d' ' -f2 | median)
    awk -v n="$n" -v s="$before_s" -v kb="$before_kb" \
        'BEGIN { printf "%-10s %-8s %10.2f %12.0f %10.0f\n", n, "before", s, n / s, kb / 1024 }'
    awk -v a="$dtc_s" -v b="$before_s" -v d="$duck_s" \
        'BEGIN { printf "ratio before/duckdb: %.2fx; dtc/before: %.2fx events/s\n", d / b, b / a }'
  fi
  if [ "$mismatched" != 0 ] || [ "$extra" != 0 ]; then
    echo "ROWS DIFFER: $mismatched DuckDB rows missing or different in dtc, $extra extra rows in dtc" >&2
    exit 1
  fi
  echo "rows identical ($dtc_rows)"
done
