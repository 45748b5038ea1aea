#!/usr/bin/env bash
# Builds helm, the Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl), the node (kubelet, containerd 2 with ctr and its runc shim) and etcd 3.6
# from the Go module proxy only, into a directory named by
# their versions (packages/lab/src/kube/tools.ts names the same one). Safe to run twice: each
# component is built into a scratch directory and moved into place only when whole, so an
# interrupted build is redone, and a complete one is kept. Prints the bin directory.
# Measured on a 2-core machine, cold (empty module and build caches): helm 165 s, Kubernetes 424 s,
# etcd 33 s, 10 min 22 s in all, 6.6 GB with the caches; warm: 0.02 s (README).
set -euo pipefail
KUBE_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
HELM_VERSION=v4.3.2
ETCD_VERSION=v3.6.16
CONTAINERD_VERSION=v2.4.2
GO_MIN=1.26
ROOT=${WEFT_KUBE_DIR:-/var/cache/weft/kube}
OUT=$ROOT/${KUBE_VERSION}-helm-${HELM_VERSION}
BIN=$OUT/bin
mkdir -p "$BIN"
# One build at a time, and a lock the tests wait on (kubeToolsReady in packages/lab/src/kube/tools.ts):
# hack/install.sh --kube-in-background takes it for the build it starts (WEFT_KUBE_BUILD_LOCKED=1).
if [[ ${WEFT_KUBE_BUILD_LOCKED:-} != 1 ]]; then
  exec 9>"$ROOT/build.lock"
  flock 9
fi
# The Go module and build caches live beside the binaries, so removing $ROOT removes all of it and
# the next run is a cold build (-modcacherw: module files stay removable).
export GOFLAGS="-mod=mod -modcacherw" CGO_ENABLED=0 GOTOOLCHAIN=local GOMODCACHE=$ROOT/go/mod GOCACHE=$ROOT/go/cache

log() { echo "[kube-build] $*" >&2; }

have() { for b in "$@"; do [[ -x $BIN/$b ]] || return 1; done; }

# Kubernetes v1.37 needs Go 1.26; Debian's golang-go (1.19) would fail deep inside the build.
gov=$(go env GOVERSION 2>/dev/null || true)
ALL=(helm kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet etcd containerd ctr containerd-shim-runc-v2)
if ! have "${ALL[@]}"; then
  [[ $gov =~ ^go([0-9]+)\.([0-9]+) ]] || { log "no Go toolchain on PATH (need go >= $GO_MIN)"; exit 1; }
  if (( BASH_REMATCH[1] * 1000 + BASH_REMATCH[2] < ${GO_MIN%%.*} * 1000 + ${GO_MIN#*.} )); then
    log "$(command -v go) is $gov; Kubernetes $KUBE_VERSION needs go >= $GO_MIN"; exit 1
  fi
fi

# Builds into a scratch bin directory, then moves every binary into $BIN.
scratch() { rm -rf "$OUT/tmp-$1"; mkdir -p "$OUT/tmp-$1/bin"; echo "$OUT/tmp-$1"; }
commit() { mv -f "$1"/bin/* "$BIN/"; rm -rf "$1"; }

if ! have helm; then
  log "helm $HELM_VERSION"
  t0=$(date +%s)
  tmp=$(scratch helm)
  v=helm.sh/helm/v4/internal/version
  GOBIN=$tmp/bin go install -trimpath -ldflags "-s -w -X $v.version=$HELM_VERSION -X $v.metadata= -X $v.gitTreeState=clean" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  commit "$tmp"
  log "helm built in $(( $(date +%s) - t0 )) s"
fi

# A wrapper module: k8s.io/kubernetes's own go.mod replaces its staging modules with local paths,
# which `go install pkg@version` refuses; here each is replaced with its published module, so
# every k8s.io module is at the one release.
kube_module() {
  local tmp=$1 src
  src=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -f $src/go.mod ]] || { log "go mod download k8s.io/kubernetes@$KUBE_VERSION gave no module directory"; exit 1; }
  {
    echo "module weft.local/kube"
    echo
    grep '^go ' "$src/go.mod"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    grep -o '^\s*k8s.io/[a-z0-9-]* => ./staging' "$src/go.mod" | awk -v v="$STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > "$tmp/go.mod"
  printf 'package main\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\t_ "k8s.io/kubernetes/cmd/kubelet/app"\n)\n\nfunc main() {}\n' > "$tmp/tools.go"
  (cd "$tmp" && go mod tidy)
}

# Builds the named k8s.io/kubernetes commands with the version ldflags and tags of Kubernetes' own
# build (hack/lib/version.sh, hack/lib/golang.sh).
kube_build() {
  local what=$1 tmp ld="-s -w" k t0
  shift
  log "kubernetes $KUBE_VERSION: $*"
  t0=$(date +%s)
  tmp=$(scratch "$what")
  kube_module "$tmp"
  for k in client-go/pkg/version component-base/version; do
    ld="$ld -X k8s.io/$k.gitVersion=$KUBE_VERSION -X k8s.io/$k.gitMajor=1 -X k8s.io/$k.gitMinor=37 -X k8s.io/$k.gitTreeState=clean -X k8s.io/$k.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$tmp" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "all=$ld" -o "$tmp/bin/" "${@/#/k8s.io/kubernetes/cmd/}")
  commit "$tmp"
  log "$* built in $(( $(date +%s) - t0 )) s"
}

have kube-apiserver kube-controller-manager kube-scheduler kubectl || kube_build control-plane kube-apiserver kube-controller-manager kube-scheduler kubectl
have kubelet || kube_build kubelet kubelet

if ! have containerd ctr containerd-shim-runc-v2; then
  log "containerd $CONTAINERD_VERSION"
  t0=$(date +%s)
  tmp=$(scratch containerd)
  # The version ldflags of containerd's Makefile; CGO off leaves out the btrfs snapshotter only.
  ld="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
  GOBIN=$tmp/bin go install -trimpath -ldflags "$ld" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
  commit "$tmp"
  log "containerd built in $(( $(date +%s) - t0 )) s"
fi

if ! have etcd; then
  log "etcd $ETCD_VERSION"
  t0=$(date +%s)
  tmp=$(scratch etcd)
  # go.etcd.io/etcd/server/v3's go.mod replaces its sibling modules with local paths as well.
  printf 'module weft.local/etcd\n\ngo %s.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$GO_MIN" "$ETCD_VERSION" > "$tmp/go.mod"
  printf 'package main\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n\nfunc main() {}\n' > "$tmp/tools.go"
  (cd "$tmp" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$tmp/bin/etcd" go.etcd.io/etcd/server/v3)
  commit "$tmp"
  log "etcd built in $(( $(date +%s) - t0 )) s"
fi
echo "$BIN"
