#!/usr/bin/env bash
# The Kafka crash soak: 100 000 offer-ai events over 4 partitions of a broker in its own
# process, the consumer killed (SIGKILL) at DTC_KAFKA_SOAK_CRASHES random points (20 by
# default, seeded by DTC_KAFKA_SOAK_SEED) and restarted each time, then run to the end: the
# store, the window rows and the dead letters must equal a batch run's.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dtc-target}"
cargo test -p dtc-cli --test kafka kafka_crash_soak -- --ignored --nocapture "$@"
