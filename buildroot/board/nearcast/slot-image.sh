#!/bin/sh
# slot-image.sh SQUASHFS OUT: the slot image as nearcast-verity's tree.rs
# makes it — the squashfs zero-padded to 4 KiB blocks, its dm-verity hash
# tree right after (no superblock), the salt SHA-256 of
# "nearcast-verity-salt\n" and the padded data — and prints its verity
# parameters, BLOCKS:SALT:ROOT. $VERITYSETUP names veritysetup.
set -eu
in="$1"
out="$2"
cp "$in" "$out"
blocks=$(( ($(stat -c %s "$out") + 4095) / 4096 ))
truncate -s $((blocks * 4096)) "$out"
salt=$({ printf 'nearcast-verity-salt\n'; cat "$out"; } | sha256sum | cut -d' ' -f1)
root=$("${VERITYSETUP:-veritysetup}" format --no-superblock --hash=sha256 --salt="$salt" \
  --data-blocks="$blocks" --hash-offset=$((blocks * 4096)) "$out" "$out" |
  sed -n 's/^Root hash:[[:space:]]*//p')
[ -n "$root" ] || { echo "slot-image.sh: veritysetup printed no root hash" >&2; exit 1; }
echo "$blocks:$salt:$root"
