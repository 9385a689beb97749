#!/usr/bin/env bash
# `hitl queue` and `hitl status ID` as whole processes on a large audit
# (docs/performance.md, "queue and status").
#
# Usage: scripts/bench-queue.sh BIN AUDIT [RUNS]
# AUDIT is a folder made by `synth_audit` (lib/examples/synth_audit.rs) with pending
# requests (`pending.txt`); it is only read (besides this clone's own `.git/hitl-open`
# and `.git/hitl-config-checked`, which the first runs write). Timed:
#   - `queue --all` and `queue --key key` (lea's view) with the open list warm,
#   - `status` of the newest and of the oldest pending request,
#   - `queue --all` cold: the open list removed before every run (a fresh clone's first
#     queue looks at every request once).
# Needs: hyperfine.
set -euo pipefail
bin=${1:?usage: BIN AUDIT [RUNS]}; dir=${2:?}; runs=${3:-30}
cd "$dir"
newest=$(tail -1 pending.txt); oldest=$(head -1 pending.txt)
requests=$(git ls-tree -r --name-only HEAD audit/requests | wc -l)
echo "audit: $(git rev-list --count HEAD) commits, $requests requests, $(wc -l < pending.txt) pending"
"$bin" queue --all > /dev/null
hyperfine -N --warmup 3 --runs "$runs" \
    "$bin queue --all" "$bin queue --key key" \
    "$bin status $newest" "$bin status $oldest"
printf '#!/bin/sh\nrm -f %s/.git/hitl-open\n' "$dir" > /tmp/hitl-bench-queue-reset
chmod +x /tmp/hitl-bench-queue-reset
hyperfine -N --runs 3 --prepare /tmp/hitl-bench-queue-reset "$bin queue --all"
