#!/usr/bin/env bash
# Runs after the kernel, firmware and squashfs root are built: puts
# babymon.toml on the boot partition, writes the SD card image with
# genimage, and its block map for bmaptool.
#
#   post-image.sh BINARIES_DIR [KEY=VALUE...]
#
# KEY=VALUE pairs (from BR2_ROOTFS_POST_SCRIPT_ARGS) change [camera] keys
# of the shipped babymon.toml for this board, such as a lower resolution.
set -euo pipefail

binaries=${1:?usage: post-image.sh BINARIES_DIR [KEY=VALUE...]}
shift
: "${TARGET_DIR:?post-image.sh runs from Buildroot, which sets TARGET_DIR}"
: "${BUILD_DIR:?post-image.sh runs from Buildroot, which sets BUILD_DIR}"
board_dir=$(cd "$(dirname "$0")" && pwd)

echo "babymon: babymon.toml for the boot partition"
toml=$binaries/babymon.toml
cp "$TARGET_DIR/usr/share/babymon/babymon.toml" "$toml"
for pair in "$@"; do
	key=${pair%%=*}
	value=${pair#*=}
	if [[ $pair != *=* ]] || ! grep -q "^$key = " "$toml"; then
		echo "babymon: post-image argument $pair names no key of babymon.toml" >&2
		exit 1
	fi
	# Only the first match: keys are unique within [camera], the one
	# section these board settings touch.
	sed -i "0,/^$key = .*/s//$key = $value/" "$toml"
done

echo "babymon: the SD card layout"
files=()
for f in "$binaries"/*.dtb "$binaries"/rpi-firmware/*; do
	files+=("${f#"$binaries"/}")
done
kernel=$(sed -n 's/^kernel=//p' "$binaries/rpi-firmware/config.txt")
files+=("$kernel" babymon.toml)
boot_files=$(printf '\\t\\t\\t"%s",\\n' "${files[@]}")
sed "s|#BOOT_FILES#|$boot_files|" "$board_dir/genimage.cfg.in" >"$binaries/genimage.cfg"

# genimage copies its root path; the root is already packed, so give it
# an empty one.
empty=$(mktemp -d)
trap 'rm -rf "$empty"' EXIT
rm -rf "$BUILD_DIR/genimage.tmp"
genimage \
	--rootpath "$empty" \
	--tmppath "$BUILD_DIR/genimage.tmp" \
	--inputpath "$binaries" \
	--outputpath "$binaries" \
	--config "$binaries/genimage.cfg"

echo "babymon: block map of babymon.img"
bmaptool create -o "$binaries/babymon.img.bmap" "$binaries/babymon.img"
