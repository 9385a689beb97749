#!/usr/bin/env bash
# Whole-process timing of the `hitl` binary on the example workspace at the repository
# root. Builds the release binary, then times it with hyperfine and reports the peak
# memory of `hitl show` with GNU time. Figures and the machine: docs/performance.md.
#
# Usage: scripts/bench-process.sh        (from anywhere; runs in the repository root)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v hyperfine >/dev/null 2>&1; then
    echo "error: hyperfine is not installed (Debian/Ubuntu: apt-get install hyperfine," \
        "or: cargo install hyperfine)" >&2
    exit 1
fi
if [[ ! -x /usr/bin/time ]]; then
    echo "error: /usr/bin/time (GNU time) is missing (Debian/Ubuntu: apt-get install time)" >&2
    exit 1
fi

cargo build --release --quiet
bin=./target/release/hitl

# `hitl --version` is the process start-up floor: the same binary, no file read.
hyperfine --warmup 5 -N \
    "$bin --version" \
    "$bin show refund-4711" \
    "$bin explain refund-4711 --format json" \
    "$bin lint"

echo
echo "Peak memory of: $bin show refund-4711"
/usr/bin/time -v "$bin" show refund-4711 2>&1 >/dev/null |
    grep -E 'Maximum resident set size|Elapsed \(wall clock\)'
