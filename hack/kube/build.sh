#!/usr/bin/env bash
# Builds helm, the Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl) and etcd 3.6 from the Go module proxy only, into a directory named by
# their versions; safe to run twice (what exists is kept). Prints the bin directory.
# Measured on a 2-core machine, cold (empty module and build caches): helm 159 s, Kubernetes 405 s,
# etcd 31 s; warm: nothing to do. Not yet called by hack/install.sh (issue 14).
set -euo pipefail
KUBE_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
HELM_VERSION=v4.3.2
ETCD_VERSION=v3.6.16
OUT=${WEFT_KUBE_DIR:-/var/cache/weft/kube}/${KUBE_VERSION}-helm-${HELM_VERSION}
mkdir -p "$OUT/bin"
export GOFLAGS=-mod=mod CGO_ENABLED=0

log() { echo "[kube-build] $*" >&2; }

if [[ ! -x $OUT/bin/helm ]]; then
  log "helm $HELM_VERSION"
  t0=$(date +%s)
  v=helm.sh/helm/v4/internal/version
  GOBIN=$OUT/bin go install -trimpath -ldflags "-s -w -X $v.version=$HELM_VERSION -X $v.metadata= -X $v.gitTreeState=clean" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  log "helm built in $(( $(date +%s) - t0 )) s"
fi

if [[ ! -x $OUT/bin/kube-apiserver ]]; then
  log "kubernetes $KUBE_VERSION"
  t0=$(date +%s)
  work=$OUT/src
  mkdir -p "$work"
  src=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  # A wrapper module: k8s.io/kubernetes's own go.mod replaces its staging modules with local paths,
  # which `go install pkg@version` refuses; here each is replaced with its published module.
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
  } > "$work/go.mod"
  printf 'package main\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n)\n\nfunc main() {}\n' > "$work/tools.go"
  (cd "$work" && go mod tidy)
  ld="-s -w"
  for k in client-go/pkg/version component-base/version; do
    ld="$ld -X k8s.io/$k.gitVersion=$KUBE_VERSION -X k8s.io/$k.gitMajor=1 -X k8s.io/$k.gitMinor=37 -X k8s.io/$k.gitTreeState=clean -X k8s.io/$k.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$work" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "all=$ld" -o "$OUT/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  log "kubernetes built in $(( $(date +%s) - t0 )) s"
fi

if [[ ! -x $OUT/bin/etcd ]]; then
  log "etcd $ETCD_VERSION"
  t0=$(date +%s)
  # go.etcd.io/etcd/server/v3's go.mod replaces its sibling modules with local paths as well.
  work=$OUT/src-etcd
  mkdir -p "$work"
  printf 'module weft.local/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$work/go.mod"
  printf 'package main\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n\nfunc main() {}\n' > "$work/tools.go"
  (cd "$work" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$OUT/bin/etcd" go.etcd.io/etcd/server/v3)
  log "etcd built in $(( $(date +%s) - t0 )) s"
fi
echo "$OUT/bin"
