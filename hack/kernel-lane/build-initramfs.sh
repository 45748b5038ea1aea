#!/usr/bin/env bash
# Builds the kernel lane's initramfs for one installed kernel: busybox-static,
# hack/kernel-lane/init as /init, and the few modules init needs before the
# host root is mounted (virtio PCI and 9p). Everything else the guest loads
# later from the host root's /lib/modules, so this archive stays small and
# only changes with the kernel or the init script.
#
#   build-initramfs.sh KERNEL_VERSION OUT.cpio
#
# Writes OUT.cpio atomically (a half-built archive never has the final name).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kver="${1:?usage: build-initramfs.sh KERNEL_VERSION OUT.cpio}"
out="${2:?usage: build-initramfs.sh KERNEL_VERSION OUT.cpio}"
moddir="/lib/modules/$kver"
dep="$moddir/modules.dep"
# Order matters only through dependencies, which load() resolves.
WANTED=(virtio_pci 9pnet_virtio 9p)

die() { echo "[kernel-lane] $*" >&2; exit 1; }
[ -r "$dep" ] || die "cannot build the initramfs: $dep not found (is linux-image-$kver fully installed?)"
[ -x /bin/busybox ] || die "cannot build the initramfs: /bin/busybox not found (apt-get install busybox-static)"
# A dynamically linked busybox would need the host's libc inside the initramfs.
if ldd /bin/busybox >/dev/null 2>&1; then
  die "cannot build the initramfs: /bin/busybox is dynamically linked (apt-get install busybox-static)"
fi

# modules.dep maps "path.ko[.xz]: dep dep ..." with every transitive
# dependency; module names in it use '-' or '_' interchangeably.
declare -A path_of deps_of
while IFS= read -r line; do
  p="${line%%:*}"
  # Parameter expansion, not basename: modules.dep has thousands of lines.
  name="${p##*/}"; name="${name%%.ko*}"; name="${name//-/_}"
  path_of[$name]="$p"
  rest="${line#*:}"
  deps_of[$name]="$rest"
done <"$dep"

declare -A seen
order=()
load() { # depth-first: every dependency before the module that needs it
  local name="${1//-/_}" d dname
  [ -n "${seen[$name]:-}" ] && return 0
  [ -n "${path_of[$name]:-}" ] || die "cannot build the initramfs: module $name is not in $dep (built into this kernel? then drop it from WANTED)"
  seen[$name]=1
  for d in ${deps_of[$name]}; do
    dname="${d##*/}"; dname="${dname%%.ko*}"
    load "$dname"
  done
  order+=("$name")
}
for m in "${WANTED[@]}"; do load "$m"; done

stage="$(mktemp -d "${out}.stage.XXXXXX")"
trap 'rm -rf "$stage" "$out.tmp.$$"' EXIT
mkdir -p "$stage"/{bin,sbin,proc,sys,dev,newroot,lib/modules}
cp /bin/busybox "$stage/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
done
cp "$here/init" "$stage/init"
chmod 0755 "$stage/init"
# The kernel's module helper (request_module, e.g. for "crypto-rfc4106(gcm(aes))")
# runs /sbin/modprobe in the initramfs, not in the chroot init switches to:
# hand it to the host root's modprobe, which knows the full module tree.
cat >"$stage/sbin/modprobe" <<'EOF'
#!/bin/sh
exec /bin/chroot /newroot /sbin/modprobe "$@"
EOF
chmod 0755 "$stage/sbin/modprobe"

: >"$stage/lib/modules/load.list"
for name in "${order[@]}"; do
  src="$moddir/${path_of[$name]}"
  case "$src" in
    *.ko) cp "$src" "$stage/lib/modules/$name.ko" ;;
    *.ko.xz) xz -dc "$src" >"$stage/lib/modules/$name.ko" ;;
    *.ko.zst) zstd -qdc "$src" >"$stage/lib/modules/$name.ko" ;;
    *.ko.gz) gzip -dc "$src" >"$stage/lib/modules/$name.ko" ;;
    *) die "cannot build the initramfs: unknown module format $src" ;;
  esac
  echo "$name.ko" >>"$stage/lib/modules/load.list"
done

# An uncompressed archive: a few MB, and TCG would spend longer unpacking gzip.
# busybox's own cpio, so the lane needs no package beyond busybox-static; owned by root.
# (It reports a block count on stderr: kept aside, shown only on failure.)
if ! (cd "$stage" && find . | LC_ALL=C sort | /bin/busybox cpio -o -H newc -R 0:0 2>"$stage.cpio.log") >"$out.tmp.$$"; then
  cat "$stage.cpio.log" >&2; rm -f "$stage.cpio.log"
  die "cannot build the initramfs: cpio failed"
fi
rm -f "$stage.cpio.log"
mv -f "$out.tmp.$$" "$out"
echo "[kernel-lane] built $out for $kver (modules: ${order[*]})" >&2
