#!/usr/bin/env bash
# The project's test command (the README's, and the last step of .ci/run): starts the local
# DynamoDB and S3 servers (scripts/local-services.sh, docs/local-services.md), runs the whole
# test suite with them, and stops them again however the tests end. Extra arguments go to
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dtc-target}"

# Stopped on every exit (success, failure, Ctrl-C) so no server outlives the run.
trap 'scripts/local-services.sh stop || true' EXIT
# Sets AWS_ENDPOINT_URL_DYNAMODB/_S3, AWS_REGION, test credentials and DTC_TEST_DYNAMODB=1,
# DTC_TEST_S3=1, which turn on the integration tests that need the servers.
# (Assigned first: a failing `start` inside `eval "$(…)"` would not stop the script.)
services_env=$(scripts/local-services.sh start)
eval "$services_env"

cargo test --workspace --all-targets "$@"
