#!/usr/bin/env bash
# Builds the lab's two OCI images without a registry or Docker engine, as OCI archives that
# `ctr images import` takes, and prints their paths (pause first, then weft):
#   pause: hack/images/pause.c compiled static, the only file of its image;
#   weft:  the content the repository's Dockerfile describes: Debian bookworm (debootstrap, minbase)
#          with the runtime packages its final stage installs, Node 20 at /usr/local/bin/node as
#          the node:20 images have it, wireguard-go at /usr/local/bin (hack/wireguard-go/build.sh), and /opt/weft (package.json, production node_modules,
#          packages, bpf/build) with `weft` and `weft-cni` on PATH.
# Packed with umoci (Debian's package): it writes and edits OCI layouts as plain files.
# Needs the project built (npm run build, hack/build-bpf.sh). The Debian layer is cached under
# WEFT_IMAGE_DIR by its package list; the weft layer by the content it packs.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${WEFT_IMAGE_DIR:-/var/cache/weft/images}
MIRROR=${WEFT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# The Dockerfile's final stage: keep the two lists the same.
PACKAGES=iproute2,libbpf1,wireguard-tools,procps,etcd-server,ca-certificates
WEFT_TAG=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$REPO/charts/weft/Chart.yaml")
PAUSE_TAG=1.0
mkdir -p "$CACHE"
log() { echo "[images] $*" >&2; }
for t in umoci debootstrap gcc tar; do command -v "$t" >/dev/null || { log "$t is not installed (hack/install.sh installs it)"; exit 1; }; done
[[ -n $WEFT_TAG ]] || { log "no appVersion in charts/weft/Chart.yaml"; exit 1; }
[[ -f $REPO/packages/cli/dist/main.js && -d $REPO/bpf/build ]] || { log "build the project first (npm run build)"; exit 1; }

# An OCI archive of the layout $1 (a tar of its directory, as ctr imports it), written whole or not at all.
archive() { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2.tmp" . && mv -f "$2.tmp" "$2"; }

# pause
pause=$CACHE/pause-$PAUSE_TAG-$(sha256sum "$REPO/hack/images/pause.c" | cut -c1-12).tar
if [[ ! -f $pause ]]; then
  tmp=$(mktemp -d "$CACHE/tmp-pause.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  gcc -static -Os -s -Wall -Wextra -Werror -o "$tmp/pause" "$REPO/hack/images/pause.c"
  umoci init --layout "$tmp/oci"
  umoci new --image "$tmp/oci:$PAUSE_TAG"
  umoci insert --image "$tmp/oci:$PAUSE_TAG" "$tmp/pause" /pause
  umoci config --image "$tmp/oci:$PAUSE_TAG" --os linux --architecture amd64 --config.entrypoint /pause --config.user 65535:65535
  umoci gc --layout "$tmp/oci"
  archive "$tmp/oci" "$pause"
  rm -rf "$tmp"
  trap - EXIT
  log "pause image built: $pause"
fi

# The Debian layer: debootstrap's minbase with the runtime packages and the security updates of the day.
base=$CACHE/debian-$SUITE-$(echo "$MIRROR $PACKAGES" | sha256sum | cut -c1-12).tar
if [[ ! -f $base ]]; then
  t0=$(date +%s)
  tmp=$(mktemp -d "$CACHE/tmp-debian.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "debootstrap $SUITE ($PACKAGES) from $MIRROR"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp/rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$tmp/debootstrap.log" >&2; log "debootstrap failed (log above)"; exit 1; }
  security=${MIRROR%/debian}/debian-security
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$security" "$SUITE" > "$tmp/rootfs/etc/apt/sources.list"
  chroot "$tmp/rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq --no-install-recommends' >"$tmp/upgrade.log" 2>&1 \
    || { tail -20 "$tmp/upgrade.log" >&2; log "apt-get upgrade in the image failed (log above)"; exit 1; }
  # As the slim images are: no package lists, caches or logs.
  rm -rf "$tmp/rootfs"/var/lib/apt/lists/* "$tmp/rootfs"/var/cache/apt/*.bin "$tmp/rootfs"/var/cache/apt/archives/*.deb "$tmp/rootfs"/var/log/* "$tmp/rootfs"/debootstrap
  tar --numeric-owner --xattrs -C "$tmp/rootfs" -cf "$base.tmp" .
  mv -f "$base.tmp" "$base"
  rm -rf "$tmp"
  trap - EXIT
  log "Debian layer built in $(( $(date +%s) - t0 )) s: $base"
fi

# The weft layer: what the Dockerfile's COPY lines take, with production dependencies only.
stage=$(mktemp -d "$CACHE/tmp-weft.XXXXXX")
trap 'rm -rf "$stage"' EXIT
app=$stage/rootfs/opt/weft
mkdir -p "$app" "$stage/rootfs/usr/local/bin"
cp -a "$REPO/package.json" "$REPO/package-lock.json" "$REPO/node_modules" "$REPO/packages" "$app/"
mkdir -p "$app/bpf" && cp -a "$REPO/bpf/build" "$app/bpf/"
(cd "$app" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --offline >/dev/null 2>"$stage/prune.log") \
  || { cat "$stage/prune.log" >&2; log "npm prune failed"; exit 1; }
rm -f "$app/package-lock.json"
find "$app/packages" -name '*.tsbuildinfo' -delete
cp -a "$(command -v node)" "$stage/rootfs/usr/local/bin/node"
cp -L "$("$REPO/hack/wireguard-go/build.sh")" "$stage/rootfs/usr/local/bin/wireguard-go"
ln -s /opt/weft/packages/cli/bin/weft.js "$stage/rootfs/usr/local/bin/weft"
ln -s /opt/weft/packages/cni/bin/weft-cni.js "$stage/rootfs/usr/local/bin/weft-cni"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$stage/rootfs" -cf "$stage/weft-layer.tar" .
sum=$( (sha256sum "$base" | cut -c1-64; sha256sum "$stage/weft-layer.tar" | cut -c1-64) | sha256sum | cut -c1-12)
weft=$CACHE/weft-$WEFT_TAG-$sum.tar
if [[ ! -f $weft ]]; then
  t0=$(date +%s)
  umoci init --layout "$stage/oci"
  umoci new --image "$stage/oci:$WEFT_TAG"
  umoci raw add-layer --image "$stage/oci:$WEFT_TAG" "$base"
  umoci raw add-layer --image "$stage/oci:$WEFT_TAG" "$stage/weft-layer.tar"
  umoci config --image "$stage/oci:$WEFT_TAG" --os linux --architecture amd64 --config.workingdir /opt/weft \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.entrypoint weft
  umoci gc --layout "$stage/oci"
  archive "$stage/oci" "$weft"
  log "weft image built in $(( $(date +%s) - t0 )) s: $weft"
fi
rm -rf "$stage"
trap - EXIT
echo "$pause"
echo "$weft"
