#!/bin/sh
# Buildroot post-image: slot A's image (the squashfs and its dm-verity
# tree), the ESP (GRUB, its config and environment), an empty config
# partition, then the disk by genimage.cfg — the layout of
# image/src/disk.rs.
set -eu
BOARD="$(dirname "$0")"
verity=$(VERITYSETUP="$HOST_DIR/sbin/veritysetup" "$BOARD/slot-image.sh" \
  "$BINARIES_DIR/rootfs.squashfs" "$BINARIES_DIR/rootfs.img")
cp "$BOARD/grub.cfg" "$BINARIES_DIR/grub.cfg"
"$HOST_DIR/bin/grub-editenv" "$BINARIES_DIR/grubenv" create
"$HOST_DIR/bin/grub-editenv" "$BINARIES_DIR/grubenv" set boot_slot=A trial_slot= trial_left=0 \
  "verity_a=$verity" verity_b=
rm -f "$BINARIES_DIR/config.ext4"
"$HOST_DIR/sbin/mkfs.ext4" -q -L nearcast-config "$BINARIES_DIR/config.ext4" 16M
support/scripts/genimage.sh -c "$BOARD/genimage.cfg"
