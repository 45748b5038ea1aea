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
# wireguard-go, wireguard-tools: node-to-node encryption where the kernel has no WireGuard (wg to inspect)
# tcpdump: the encryption tests prove on the wire that no pod payload travels in the clear
# qemu-system-x86: the kernel lane (hack/kernel-lane) boots a VM for what this kernel lacks: ESP, kernel WireGuard, Geneve
# linux-image-amd64: the lane's guest kernel, Debian's stock one, whose modules include ESP, WireGuard and Geneve
# busybox-static: the lane's initramfs (init, insmod, mount, chroot) without copying a libc into it
# kmod: modprobe inside the lane's guest resolves module dependencies from the kernel package's modules.dep
# xz-utils: unpacking the lane's initramfs modules when a kernel package ships them as .ko.xz
# golang-go + golang-github-{masterminds-sprig,ghodss-yaml,xeipuuv-gojsonschema,gobwas-glob,burntsushi-toml}-dev: hack/helm-render, Helm's template engine built offline to test charts/weft (no helm binary exists here)
PACKAGES=(etcd-server clang llvm libbpf-dev libbpf1 bpftool iproute2 iptables iperf3 iputils-ping procps util-linux openssl wireguard-go wireguard-tools tcpdump qemu-system-x86 linux-image-amd64 busybox-static kmod xz-utils golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev golang-github-xeipuuv-gojsonschema-dev golang-github-gobwas-glob-dev golang-github-burntsushi-toml-dev)

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

echo "[install] npm ci" >&2
npm ci --no-audit --no-fund --loglevel=error
