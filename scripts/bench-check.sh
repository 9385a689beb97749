#!/usr/bin/env bash
# `hitl check` of one approval file as a whole process, offline and with a large audit
# at hand (reusing this clone's fold at HEAD, and with `--fresh` folding again),
# against one `ssh-keygen -Y verify` of the same file's statement signature, in the
# same hyperfine run (docs/performance.md, "check").
#
# Usage: scripts/bench-check.sh BIN AUDIT [RUNS]
# AUDIT is a folder made by `synth_audit` with pending requests (`pending.txt`); the
# script approves the last pending one on a copy (so the approval file is fresh, at the
# real clock), then times the four. Each runs through a one-line `exec` script, so all
# four pay the same shell start. Needs: hyperfine, jq.
set -euo pipefail
bin=${1:?usage: BIN AUDIT [RUNS]}; src=${2:?}; runs=${3:-50}
work=${TMPDIR:-/tmp}/hitl-bench-check
rm -rf "$work"; mkdir -p "$work"
cp -a "$src" "$work/audit"
cd "$work/audit"
id=$(tail -1 pending.txt)
"$bin" approve "$id" --key key > /dev/null 2>&1
"$bin" approval "$id" --out "$work/approval.json"
jq -j .statement "$work/approval.json" > "$work/statement"
n=$(jq '.signatures | length' "$work/approval.json")
jq -r ".signatures[$((n - 1))].signature" "$work/approval.json" > "$work/statement.sig"
scope="--action payments.refund --target payments/charge/ch_981 --amount 180 --currency EUR"
cat > "$work/offline" <<SH
#!/bin/sh
cd $work && exec $bin check approval.json $scope --offline --allowed-signers audit/allowed_signers
SH
cat > "$work/at-hand" <<SH
#!/bin/sh
cd $work/audit && exec $bin check $work/approval.json $scope
SH
cat > "$work/at-hand-fresh" <<SH
#!/bin/sh
cd $work/audit && exec $bin check $work/approval.json $scope --fresh
SH
cat > "$work/ssh-keygen" <<SH
#!/bin/sh
exec ssh-keygen -Y verify -n hitl-approval -f $work/audit/allowed_signers -I lea@example.com -s $work/statement.sig < $work/statement
SH
chmod +x "$work/offline" "$work/at-hand" "$work/at-hand-fresh" "$work/ssh-keygen"
for s in offline at-hand at-hand-fresh ssh-keygen; do "$work/$s" > /dev/null; done
echo "audit: $(git rev-list --count HEAD) commits, $(git ls-tree -r --name-only HEAD audit/events | grep -c '\.json$') events"
hyperfine -N --warmup 5 --runs "$runs" "$work/offline" "$work/at-hand" "$work/at-hand-fresh" "$work/ssh-keygen"
