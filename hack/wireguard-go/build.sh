#!/usr/bin/env bash
# Builds wireguard-go, the userspace WireGuard the agent runs where the kernel has none, from the Go
# module proxy, and links it as /usr/local/bin/wireguard-go (ahead of /usr/bin on PATH). Debian 12's
# package (v0.0.20220316) predates wireguard-go's TUN offloads (2023: TCP/UDP segmentation and
# coalescing on the TUN device, batched UDP I/O, 7 MiB socket buffers); with them a pod's TCP stream
# through it is five times faster here (docs/encryption.md, "Where the time goes"). Pinned to one
# version, built with the machine's Go into a directory named by it; safe to run again (nothing to
# do warm). Measured cold on 2 cores: ~30 s. Prints the binary's path.
set -euo pipefail
VERSION=v0.0.0-20260522210424-ecfc5a8d5446
ROOT=${WEFT_WIREGUARD_GO_DIR:-/var/cache/weft/wireguard-go}
OUT=$ROOT/$VERSION
LINK=${WEFT_WIREGUARD_GO_LINK:-/usr/local/bin/wireguard-go}
log() { echo "[wireguard-go] $*" >&2; }

if [[ ! -x $OUT/wireguard-go ]]; then
  command -v go >/dev/null || { log "no Go toolchain on PATH"; exit 1; }
  mkdir -p "$ROOT"
  exec 9>"$ROOT/build.lock"
  flock 9
  if [[ ! -x $OUT/wireguard-go ]]; then
    t0=$(date +%s)
    tmp=$(mktemp -d "$ROOT/tmp.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    # Its own module and build caches beside the binary: removing $ROOT makes the next build cold.
    GOFLAGS="-modcacherw" CGO_ENABLED=0 GOTOOLCHAIN=local GOMODCACHE=$ROOT/go/mod GOCACHE=$ROOT/go/cache GOBIN=$tmp \
      go install -trimpath -ldflags "-s -w" "golang.zx2c4.com/wireguard@$VERSION"
    mkdir -p "$OUT"
    mv -f "$tmp/wireguard" "$OUT/wireguard-go"
    rm -rf "$tmp"
    trap - EXIT
    log "built $("$OUT/wireguard-go" --version | head -1) in $(( $(date +%s) - t0 )) s"
  fi
fi
if [[ $(readlink "$LINK" 2>/dev/null) != "$OUT/wireguard-go" ]]; then
  mkdir -p "$(dirname "$LINK")"
  ln -sfn "$OUT/wireguard-go" "$LINK"
fi
echo "$OUT/wireguard-go"
