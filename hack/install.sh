#!/usr/bin/env bash
# Installs everything Weft needs on a fresh Debian 12 machine (run as root):
# system packages from Debian (never a binary from elsewhere), then the npm
# workspace exactly as locked. Safe to run again; skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."

# etcd-server: the kvstore (a real etcd for the demo, tests and lab)
# clang, llvm, libbpf-dev, bpftool: compiling and inspecting the BPF datapath
# openssl: the clustermesh CA and certificates
# iproute2, iptables, iperf3, iputils-ping: namespaces, veths, VXLAN; the policy benchmark against iptables
# wireguard-tools: wg, configuring and inspecting kernel WireGuard (wireguard-go is built from Go below)
# tcpdump: the encryption tests prove on the wire that no pod payload travels in the clear
# qemu-system-x86: the kernel lane (hack/kernel-lane) boots a VM for what this kernel lacks: ESP, kernel WireGuard, Geneve
# linux-image-amd64: the lane's guest kernel, Debian's stock one, whose modules include ESP, WireGuard and Geneve
# busybox-static: the lane's initramfs (init, insmod, mount, chroot) without copying a libc into it
# kmod: modprobe inside the lane's guest resolves module dependencies from the kernel package's modules.dep
# xz-utils: unpacking the lane's initramfs modules when a kernel package ships them as .ko.xz
# runc: the OCI runtime under the Kubernetes lab's containerd (built from Go, hack/kube/build.sh)
# umoci, debootstrap, libc6-dev: the lab's images without a registry (hack/images/build.sh): OCI
#   layouts written as files, the Debian base of the Weft image, a static pause binary
# containernetworking-plugins: the bridge plugin, the `pods` benchmark's baseline beside Weft's CNI
# chromium: the browser the service map's test (e2e/ui.e2e.test.js) drives headless through the
#   playwright-core npm package, which downloads no browser of its own
PACKAGES=(etcd-server clang llvm libbpf-dev libbpf1 bpftool iproute2 iptables iperf3 iputils-ping procps util-linux openssl wireguard-tools tcpdump qemu-system-x86 linux-image-amd64 busybox-static kmod xz-utils runc umoci debootstrap libc6-dev containernetworking-plugins chromium)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[install] apt-get install --no-install-recommends ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v etcd >/dev/null || { echo "[install] etcd not on PATH after installing etcd-server" >&2; exit 1; }

# wireguard-go, node-to-node encryption where the kernel has no WireGuard: built from the Go module
# proxy (Debian's predates its TUN offloads, a fifth of the speed: hack/wireguard-go/build.sh).
hack/wireguard-go/build.sh >/dev/null

echo "[install] npm ci" >&2
npm ci --no-audit --no-fund --loglevel=error

# helm, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, containerd and
# etcd 3.6, built from the Go module proxy with the machine's Go (>= 1.26), cached by version
# (minutes cold on 2 cores, nothing to do warm): the chart and Kubernetes tests run the real things.
# --kube-in-background (the test command): the build goes on beside the tests that do not need it,
# at the lowest priority (its own session, autogroup and nice 19, so the tests' processes, whatever
# their session, come first), holding build.lock; the *.kube.test.js files run last and wait on it.
if [[ ${1:-} == --kube-in-background ]]; then
  kube_root=${WEFT_KUBE_DIR:-/var/cache/weft/kube}
  mkdir -p "$kube_root"
  exec 9>"$kube_root/build.lock"
  flock 9
  echo "[install] Kubernetes components: building in the background (log: $kube_root/build.log)" >&2
  # The build inherits fd 9, so the lock is held until it exits.
  WEFT_KUBE_BUILD_LOCKED=1 setsid bash -c 'echo 19 > /proc/self/autogroup 2>/dev/null; exec nice -n 19 hack/kube/build.sh' >"$kube_root/build.log" 2>&1 </dev/null &
  exec 9>&-
else
  hack/kube/build.sh >/dev/null
fi
