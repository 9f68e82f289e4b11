#!/usr/bin/env bash
# The crash soak: kill -9 a run at POINTS points spread over a whole run (the embedded store,
# local output, file inputs), run it again each time and compare with a clean run (store
# records, rows and part files, dead letters); then a smaller soak on DynamoDB Local + the S3
# server. Prints "N/N identical" for each. Minutes long; CI runs a few points of each instead
# (crates/dtc-cli/tests/crash.rs and aws.rs).
#
#   scripts/crash-soak.sh [POINTS] [AWS_POINTS]      (defaults: 200 and 20)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dtc-target}"
points=${1:-200}
aws_points=${2:-20}

# Only the soak's own lines (and a failure's), not cargo's; the exit status is cargo's.
show() { awk '/identical|crash soak|panicked|differ|not killed|FAILED/'; }

DTC_SOAK_POINTS=$points cargo test -p dtc-cli --test crash -- --ignored crash_soak --nocapture 2>&1 | show

trap 'scripts/local-services.sh stop || true' EXIT
services_env=$(scripts/local-services.sh start)
eval "$services_env"
DTC_AWS_CRASH_POINTS=$aws_points cargo test -p dtc-cli --test aws \
    crashes_on_dynamodb_and_s3_leave_one_clean_runs_result -- --nocapture 2>&1 | show
