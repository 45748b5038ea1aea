#!/usr/bin/env bash
# The kernel lane: runs one command inside a qemu VM booting Debian's stock
# kernel (linux-image-amd64), for what this machine's kernel lacks (ESP/XFRM,
# kernel WireGuard, Geneve). See docs/kernel-lane.md.
#
#   hack/kernel-lane/run.sh CMD [ARG...]
#
# The guest sees the host's whole root read-only over 9p (so the repo, its
# build output, node and every tool are the host's own), with tmpfs on /tmp
# and /run; it runs CMD from this repo's directory (same absolute path) and
# this script exits with CMD's exit status. The guest's console streams to
# stderr. Exit 124: the VM ran past WEFT_KERNEL_LANE_TIMEOUT seconds (default
# 900) and was killed; 125: the lane itself failed (no kernel, no qemu, boot
# or module failure), with the reason on stderr.
#
# The guest writes nothing to the host: the job goes in through a file this
# script writes, the status comes back as a marker line on the console.
# The initramfs is cached in WEFT_KERNEL_LANE_CACHE (default
# /tmp/weft-kernel-lane), keyed by kernel version and the lane's own scripts.
set -euo pipefail
shopt -s extglob

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
timeout_s="${WEFT_KERNEL_LANE_TIMEOUT:-900}"
cache="${WEFT_KERNEL_LANE_CACHE:-/tmp/weft-kernel-lane}"

die() { echo "[kernel-lane] $*" >&2; exit 125; }
(($#)) || die "usage: hack/kernel-lane/run.sh CMD [ARG...]"
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || die "WEFT_KERNEL_LANE_TIMEOUT must be a positive number of seconds, not '$timeout_s'"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (hack/install.sh installs qemu-system-x86)"
# Kernel command-line values cannot carry whitespace.
[[ "$repo$cache" =~ [[:space:]] ]] && die "the repo path '$repo' and cache '$cache' must not contain whitespace"

# The newest Debian amd64 kernel whose modules are installed; WEFT_KERNEL_LANE_KERNEL picks another.
kver="${WEFT_KERNEL_LANE_KERNEL:-}"
if [ -z "$kver" ]; then
  for k in $(ls /boot/vmlinuz-*-amd64 2>/dev/null | sed 's|^/boot/vmlinuz-||' | sort -V -r); do
    if [ -r "/lib/modules/$k/modules.dep" ]; then kver="$k"; break; fi
  done
fi
[ -n "$kver" ] || die "no /boot/vmlinuz-*-amd64 with modules in /lib/modules (hack/install.sh installs linux-image-amd64)"
kernel="/boot/vmlinuz-$kver"
[ -r "$kernel" ] || die "$kernel not found or not readable"

mkdir -p -m 0755 "$cache"
key="$(cat "$here/init" "$here/build-initramfs.sh" /bin/busybox | sha256sum | cut -c1-12)"
initrd="$cache/initramfs-$kver-$key.cpio"
if [ ! -s "$initrd" ]; then
  bash "$here/build-initramfs.sh" "$kver" "$initrd" || die "building the initramfs failed"
  # Older archives (another kernel or older scripts) are never used again.
  find "$cache" -maxdepth 1 -name 'initramfs-*.cpio' ! -name "$(basename "$initrd")" -delete
fi

run="$(mktemp -d "$cache/run.XXXXXX")"
qpid=''
cleanup() {
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
    # timeout(1) passes the signal on to qemu.
    kill -TERM "$qpid" 2>/dev/null || true
    wait "$qpid" 2>/dev/null || true
  fi
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

printf '%s\0' "$@" >"$run/job"
token="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
mkfifo "$run/console"

started=$SECONDS
# No NIC: the guest's only network is what its tests build inside it.
timeout -k 10 "$timeout_s" qemu-system-x86_64 \
  -accel tcg -cpu max -m 2048 -smp 2 -nographic -no-reboot -nic none \
  -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 quiet panic=1 weft.repo=$repo weft.job=$run/job weft.token=$token" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  </dev/null >"$run/console" 2>&1 &
qpid=$!

status='' failure=''
while IFS= read -r line; do
  line="${line%$'\r'}"
  # SeaBIOS and the kernel reset the terminal: keep those escapes off the caller's.
  line="${line//$'\e'\[*([0-9;?])[a-zA-Z]/}"
  line="${line//$'\e'c/}"
  printf '%s\n' "$line" >&2
  # Anywhere in the line: kernel messages may share it.
  if [[ "$line" =~ WEFT_LANE_EXIT\ $token\ ([0-9]+) ]]; then status="${BASH_REMATCH[1]}"
  elif [[ "$line" =~ WEFT_LANE_FAIL\ $token\ (.*)$ ]]; then failure="${BASH_REMATCH[1]}"
  fi
done <"$run/console"

set +e
wait "$qpid"
qrc=$?
set -e
qpid=''
elapsed=$((SECONDS - started))

if [ -n "$status" ]; then
  echo "[kernel-lane] guest ($kver) exited $status after ${elapsed}s" >&2
  exit "$status"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  echo "[kernel-lane] timed out after ${timeout_s}s (WEFT_KERNEL_LANE_TIMEOUT); qemu was killed" >&2
  exit 124
fi
[ -n "$failure" ] && die "the lane could not run the job: $failure"
die "qemu exited ($qrc) after ${elapsed}s without a status from the guest"
