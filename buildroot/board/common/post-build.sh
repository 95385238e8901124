#!/usr/bin/env bash
# Runs after the root filesystem is assembled in TARGET_DIR, before it is
# packed into the read-only squashfs: makes the mount points that init
# needs (nothing can make them later) and checks that /sbin/init is
# babymon-init, not a link left by busybox.
set -euo pipefail

target=${1:?usage: post-build.sh TARGET_DIR}

echo "babymon: mount points on the read-only root"
for dir in boot data dev proc sys run tmp; do
	mkdir -p "$target/$dir"
done

if [[ -L $target/sbin/init || ! -x $target/sbin/init ]]; then
	echo "babymon: $target/sbin/init is not babymon-init; is busybox's init on?" >&2
	exit 1
fi
if [[ ! -f $target/usr/share/babymon/babymon.toml ]]; then
	echo "babymon: the root overlay is missing (no /usr/share/babymon/babymon.toml);" \
		"check BR2_ROOTFS_OVERLAY" >&2
	exit 1
fi
