#!/usr/bin/env bash
# Audit benchmarks (docs/performance.md): builds a synthetic audit of N events through
# the real append code (lib/examples/synth_audit.rs), then times
#   - `hitl verify` against `git log --show-signature` on the same history,
#   - peak memory of `hitl verify`,
#   - one decision (`hitl approve`) appended as a whole process, 20 times, then 20 more
#     with index.skipHash=true.
#
# Usage: scripts/bench-audit.sh N [DIR]     (DIR defaults to /dev/shm/hitl-bench-N;
# an existing DIR is reused as it is, with 40 new pending requests)
# Needs: git, ssh-keygen, hyperfine, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:?usage: scripts/bench-audit.sh N [DIR]}
dir=${2:-/dev/shm/hitl-bench-$n}
cargo build --release --quiet
cargo build --release --quiet -p hitl-lib --example synth_audit
bin=$PWD/target/release/hitl
pending=40
if [ ! -d "$dir/.git" ]; then
    ./target/release/examples/synth_audit "$dir" "$n" "$pending"
else
    # An existing audit: add fresh pending requests only.
    ./target/release/examples/synth_audit "$dir" 0 "$pending"
fi
cd "$dir"
commits=$(git rev-list --count HEAD)
echo "audit: $n events, $commits commits, in $dir"

echo; echo "== hitl verify"
# -i: an audit made by an older generator may hold problems (the timing is the same work).
hyperfine -i --warmup 1 --runs 3 -N "$bin verify"
echo; echo "== peak memory of hitl verify"
{ /usr/bin/time -v "$bin" verify 2>&1 >/dev/null || true; } | grep -E 'Maximum resident|Elapsed'

# git log --show-signature runs ssh-keygen for every commit; on a large history it is
# timed on the newest `sample` commits and scaled to all of them (it is linear).
sample=$(( commits < 2000 ? commits : 2000 ))
echo; echo "== git log --show-signature, newest $sample of $commits commits"
hyperfine --runs 1 -N \
    "git -c gpg.ssh.allowedSignersFile=allowed_signers log --show-signature -n $sample --format=%H"

# 20 decisions with the index as git writes it by default, then 20 with
# `index.skipHash=true` (no SHA-1 over the index on read or write).
approve_all() {
    local total=0 ms start end id
    for id in "$@"; do
        start=$EPOCHREALTIME
        "$bin" approve "$id" --key key > /dev/null
        end=$EPOCHREALTIME
        ms=$(echo "($end - $start) * 1000" | bc -l)
        printf '%s %.1f ms\n' "$id" "$ms"
        total=$(echo "$total + $ms" | bc -l)
    done
    printf 'mean %.1f ms\n' "$(echo "$total / $#" | bc -l)"
}
mapfile -t ids < pending.txt
half=$(( ${#ids[@]} / 2 ))
echo; echo "== one decision as a whole process (hitl approve), $half runs"
approve_all "${ids[@]:0:half}"
echo; echo "== the same with index.skipHash=true, $half runs"
git config index.skipHash true
approve_all "${ids[@]:half}"
git config --unset index.skipHash
