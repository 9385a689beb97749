#!/usr/bin/env bash
# One `hitl approve` on a large audit, as a whole process, against another binary on an
# audit of the same shape (docs/performance.md, "The workflow engine").
#
# Usage: scripts/bench-approve.sh BIN_A AUDIT_A BIN_B AUDIT_B [RUNS]
# Each AUDIT is a folder made by that binary's own `synth_audit` with pending requests
# (`pending.txt`). Each is copied once to a seed, where one approve warms what a clone
# keeps between decisions (`.git/hitl-config-checked`); before every timed run, hyperfine
# restores a fresh copy of the seed, so each run approves the same pending request on
# the same history (the last one of pending.txt, proposed behind the other pending ones).
# Needs: hyperfine.
set -euo pipefail
a_bin=${1:?usage: BIN_A AUDIT_A BIN_B AUDIT_B [RUNS]}; a_dir=${2:?}
b_bin=${3:?}; b_dir=${4:?}; runs=${5:-30}
work=${TMPDIR:-/tmp}/hitl-bench-approve
rm -rf "$work"; mkdir -p "$work"
seed() { # BIN AUDIT NAME
    cp -a "$2" "$work/$3-seed"
    (cd "$work/$3-seed" && "$1" approve "$(head -1 pending.txt)" --key key > /dev/null)
}
seed "$a_bin" "$a_dir" a
seed "$b_bin" "$b_dir" b
# hyperfine -N runs its --prepare commands without a shell too: one script each.
for x in a b; do
    printf '#!/bin/sh\nrm -rf %s/%s-run && cp -a %s/%s-seed %s/%s-run\n' \
        "$work" $x "$work" $x "$work" $x > "$work/reset-$x"
    chmod +x "$work/reset-$x"
done
id_a=$(tail -1 "$a_dir/pending.txt"); id_b=$(tail -1 "$b_dir/pending.txt")
hyperfine -N --warmup 2 --runs "$runs" \
    --prepare "$work/reset-a" \
    -n "A approve" "$a_bin -C $work/a-run approve $id_a --key $work/a-run/key" \
    --prepare "$work/reset-b" \
    -n "B approve" "$b_bin -C $work/b-run approve $id_b --key $work/b-run/key"
