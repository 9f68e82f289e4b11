#!/usr/bin/env bash
# The project's test command (the README's): runs the whole test suite.
# Integration tests that need local servers start them through scripts/local-services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dtc-target}"
exec cargo test --workspace --all-targets "$@"
