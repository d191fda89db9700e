#!/usr/bin/env bash
# Delta OS updates for a release that changes only the appliance binary:
# the appliance built at REV^ and at REV (default 8e840b7, "image/jpeg"
# added to the content types: a real one-commit change), each put in a
# slot image with the same agent, verity tool, kernel and release name;
# prints what a box fetches going from one to the other (chunks the old
# slot lacks, plus the index) against the whole bundle. Target: <= 25 %.
# Run on demand: two static builds of the appliance (minutes).
#   benches/delta/run.sh [REV]
set -euo pipefail
cd "$(dirname "$0")/../.."
rev="${1:-8e840b7}"
work="${TMPDIR:-/tmp}/nearcast-bench-delta"
bench_target="$PWD/target/bench-delta"
rm -rf "$work"
mkdir -p "$work"
trap 'git worktree remove --force "$work/old" 2>/dev/null; git worktree remove --force "$work/new" 2>/dev/null; true' EXIT
scripts/image --static-only >/dev/null
for side in old new; do
  at="$rev"; [ "$side" = old ] && at="$rev^"
  git worktree add --detach "$work/$side" "$at" >/dev/null 2>&1
  (cd "$work/$side" && CARGO_TARGET_DIR="$bench_target" \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build -q --profile image --target x86_64-unknown-linux-gnu -p nearcast-appliance --bin nearcast-appliance)
  cp "$bench_target/x86_64-unknown-linux-gnu/image/nearcast-appliance" "$work/appliance-$side"
  cargo run -q --release -p nearcast-image -- bundle \
    --out "$work/slot-$side" --version 1 --appliance "$work/appliance-$side" \
    --agent "$PWD/target/x86_64-unknown-linux-gnu/image/control-agent" \
    --verity "$PWD/target/x86_64-unknown-linux-gnu/image/nearcast-verity" \
    --signing-key "$work/signing.key" >/dev/null
done
echo "appliance $rev^ -> $rev: $(stat -c %s "$work/appliance-old") -> $(stat -c %s "$work/appliance-new") bytes, $(cmp -l "$work/appliance-old" "$work/appliance-new" 2>/dev/null | wc -l) bytes differ in place"
echo "bundle (whole): $(stat -c %s "$work/slot-new/nearcast-1.bundle") bytes"
cargo run -q --release -p nearcast-image -- delta \
  --from "$work/slot-old/rootfs-1.img" --to "$work/slot-new/rootfs-1.img"
