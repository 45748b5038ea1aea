#!/usr/bin/env bash
# Runs inside the kernel lane's guest, chrooted into the host root (read-only
# over 9p), started by hack/kernel-lane/init:
#
#   guest.sh REPO JOBFILE
#
# Loads the modules the lane exists for, makes the network and /run usable,
# then runs the job (argv, NUL-separated in JOBFILE) from REPO and exits with
# its status, which init reports to the host.
#
# Modules are loaded explicitly rather than left to autoloading: a module that
# cannot load is then a clear lane failure here, not a puzzling EOPNOTSUPP in
# the middle of a test.
set -euo pipefail
repo="${1:?usage: guest.sh REPO JOBFILE}"
jobfile="${2:?usage: guest.sh REPO JOBFILE}"

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The root is read-only: anything that writes under $HOME or $TMPDIR gets the guest's tmpfs.
export HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8
# Lane tests refuse to run anywhere else (they need this kernel and a throwaway machine).
export WEFT_KERNEL_LANE=1

# The lab's waits (etcd, agents, pods, encryption; packages/lab) are sized for a
# host; under TCG a healthy agent needs most of its usual 60 s just to start.
export WEFT_LAB_TIMEOUT_SCALE=5

# veth, dummy: test topologies. esp4, xfrm_user and the AEAD parts: IPsec with
# rfc4106(gcm(aes)). wireguard, geneve: kernel tunnels (their UDP tunnel and
# crypto library dependencies come through modprobe from modules.dep).
# The lab (e2e/kernel/lab.lane.js): bridge (its underlay), vxlan (the agent's
# tunnel device), sch_ingress and cls_bpf (tc clsact with the BPF datapath's
# direct-action programs), tun (wireguard-go, should a lab ask for it).
REQUIRED=(veth dummy esp4 xfrm_user gcm ghash_generic seqiv echainiv authenc wireguard geneve bridge vxlan sch_ingress cls_bpf tun)
# Faster implementations; TCG's "-cpu max" usually offers AES-NI and PCLMUL, but
# the generic code is correct without them.
OPTIONAL=(aesni_intel ghash_clmulni_intel)

start_us=${EPOCHREALTIME/./}
modprobe -a "${REQUIRED[@]}" || { echo "[kernel-lane] guest: cannot load the required modules ${REQUIRED[*]}" >&2; exit 125; }
for m in "${OPTIONAL[@]}"; do
  modprobe "$m" 2>/dev/null || echo "[kernel-lane] guest: optional module $m not loaded (the generic implementation is used)" >&2
done

ip link set lo up
# The agent pins its maps under /sys/fs/bpf/weft: a BPF filesystem, as a host
# mounts it at boot (the agent would mount one itself, but the lane should
# look like a host, not rely on that).
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || { echo "[kernel-lane] guest: cannot mount bpffs on /sys/fs/bpf" >&2; exit 125; }
# `ip netns add` keeps its mounts under /var/run/netns; on Debian /var/run is a
# symlink to /run (now tmpfs). Where it is not, put /run over it.
if [ "$(readlink -f /var/run)" != /run ]; then mount --bind /run /var/run; fi
mkdir -p /run/netns

mapfile -d '' -t argv <"$jobfile"
[ ${#argv[@]} -gt 0 ] || { echo "[kernel-lane] guest: empty job" >&2; exit 125; }
cd "$repo"
echo "[kernel-lane] guest: $(uname -r), modules ready in $(( (${EPOCHREALTIME/./} - start_us) / 1000 )) ms; running: ${argv[*]}" >&2
set +e
"${argv[@]}"
status=$?
exit "$status"
