#!/bin/sh
# Buildroot post-build: what image/src/rootfs.rs adds besides the overlay.
# $1 is the target directory.
set -eu
TARGET="$1"
BOARD="$(dirname "$0")"
mkdir -p "$TARGET/config" "$TARGET/data" "$TARGET/boot/efi" "$TARGET/etc/nearcast/update-keys"
echo "${NEARCAST_RELEASE:-0.1.0}" > "$TARGET/etc/nearcast/release"
# The update keys the box trusts: "{id} {hex public key}" lines.
if [ -n "${NEARCAST_UPDATE_KEYS:-}" ]; then
  cp "$NEARCAST_UPDATE_KEYS"/*.pub "$TARGET/etc/nearcast/update-keys/"
fi
ln -sf /run/resolv.conf "$TARGET/etc/resolv.conf"
# The kernel lives in the slot, so an update replaces it too.
cp "$BINARIES_DIR/bzImage" "$TARGET/boot/vmlinuz"
# The initramfs: busybox, nearcast-verity (static) and the same /init as
# image/ (no modules: the kernel has the drivers built in).
work="$(mktemp -d)"
mkdir -p "$work/bin" "$work/proc" "$work/sys" "$work/dev" "$work/newroot" "$work/lib/modules"
cp "$TARGET/bin/busybox" "$work/bin/busybox"
ln -s busybox "$work/bin/sh"
cp "$TARGET/usr/bin/nearcast-verity" "$work/bin/nearcast-verity"
install -m 0755 "$BOARD/initramfs-init" "$work/init"
: > "$work/lib/modules/load-order"
(cd "$work" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -n -9) > "$TARGET/boot/initrd.img"
rm -rf "$work"
