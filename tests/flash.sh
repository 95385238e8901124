#!/usr/bin/env bash
# Tests scripts/flash on loop devices (a stand-in for an SD card reader,
# which this machine has none of): it refuses a non-removable device without
# --force, a mounted one, and the running system's disk; writes nothing
# unless told "yes"; writes with dd, or bmaptool with a block map, and the
# card then holds the image. Needs root and loop devices; says so and skips
# otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

if ((EUID != 0)) || ! losetup -f >/dev/null 2>&1; then
	echo "flash test: skipped: it needs root and free loop devices"
	exit 0
fi

work=$(mktemp -d)
loops=()
cleanup() {
	mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

failures=0
check() { # description, then a command that must succeed
	local what=$1
	shift
	if "$@"; then
		echo "ok: $what"
	else
		echo "FAILED: $what" >&2
		failures=$((failures + 1))
	fi
}
fails() { ! "$@"; }
new_loop() { # file name, size in MiB; prints the device
	truncate -s "${2}M" "$work/$1"
	losetup -f --show "$work/$1"
}

# An image as the build makes them: data, a hole (a sparse file's
# unwritten range, left out of a block map), more data.
head -c 1048576 /dev/urandom >"$work/babymon-test.img"
head -c 1048576 /dev/urandom |
	dd of="$work/babymon-test.img" bs=1M seek=3 conv=notrunc status=none
xz -T0 -k "$work/babymon-test.img"
size=$(stat -c %s "$work/babymon-test.img")

card=$(new_loop card 8)
loops+=("$card")
# Old data on the "card" where the image has its hole.
head -c 8388608 /dev/urandom | dd of="$card" bs=1M status=none conv=fsync
dd if="$card" bs=1M status=none >"$work/before"

flash() { # answer, then arguments; prints the output, returns the status
	local answer=$1
	shift
	echo "$answer" | scripts/flash "$@" >"$work/out" 2>&1
}
output_has() { grep -q -- "$1" "$work/out" || { cat "$work/out" >&2; false; }; }
unchanged() { dd if="$card" bs=1M status=none | cmp -s - "$work/before"; }
holds_image() { cmp -s -n "$size" "$work/babymon-test.img" "$card"; }

check "refuses a non-removable device without --force" \
	fails flash yes "$work/babymon-test.img.xz" "$card"
check "says why" output_has "not removable"
check "wrote nothing" unchanged

check "writes nothing unless told yes" \
	fails flash no --force "$work/babymon-test.img.xz" "$card"
check "says so" output_has "nothing written"
check "the card is as it was" unchanged

check "writes with dd and verifies" flash yes --force "$work/babymon-test.img.xz" "$card"
check "says it verified every byte" output_has "verified $size bytes"
check "the card holds the image" holds_image

if command -v bmaptool >/dev/null; then
	head -c 8388608 /dev/urandom | dd of="$card" bs=1M status=none conv=fsync
	bmaptool create -o "$work/babymon-test.img.bmap" "$work/babymon-test.img"
	check "writes with bmaptool and verifies" flash yes --force "$work/babymon-test.img.xz" "$card"
	check "says it verified the mapped ranges" output_has "verified 2 block ranges"
	check "the card holds the image's data before the hole" \
		cmp -s -n 1048576 "$work/babymon-test.img" "$card"
	check "and after it" \
		cmp -s -n 1048576 -i 3145728 "$work/babymon-test.img" "$card"
	check "the hole was skipped (old data left there)" \
		fails cmp -s -n 1048576 -i 1048576 "$work/babymon-test.img" "$card"
	rm "$work/babymon-test.img.bmap"
else
	echo "skipped: bmaptool is not installed, so its path is not tested"
fi

if command -v mkfs.ext4 >/dev/null; then
	mkfs.ext4 -q "$card"
	mkdir "$work/mnt"
	if mount "$card" "$work/mnt" 2>/dev/null; then
		check "refuses a mounted device" \
			fails flash yes --force "$work/babymon-test.img.xz" "$card"
		check "says it is mounted" output_has "mounted"
		umount "$work/mnt"
	else
		echo "skipped: cannot mount ext4 here, so the mounted case is not tested"
	fi
fi

# The running system's disk: refused before any question, even with
# --force (and the answer is "no" in case that check ever broke).
root_source=$(findmnt -no SOURCE /)
root_disk=
if [[ $root_source == /dev/* ]]; then
	parent=$(lsblk -no PKNAME "$root_source" | head -n 1)
	root_disk=/dev/${parent:-$(basename "$root_source")}
fi
if [[ -b $root_disk ]]; then
	check "refuses the running system's disk" \
		fails flash no --force "$work/babymon-test.img.xz" "$root_disk"
	check "says why" output_has "holds the running system"
else
	echo "skipped: / is on $root_source, not a disk, so that case is not tested"
fi

if ((failures)); then
	echo "flash test: $failures checks failed" >&2
	exit 1
fi
echo "flash test: ok"
