# The Weft image (ghcr.io/weft-mesh/weft): the agent, the CNI plugin, the clustermesh-apiserver
# and etcd, as the Helm chart (charts/weft) runs them. Built from this repository:
#   docker build -t ghcr.io/weft-mesh/weft:0.1.0 .
# The BPF build includes /usr/include/x86_64-linux-gnu: amd64 only, as hack/build-bpf.sh is.

FROM node:20-bookworm-slim AS build
# clang, llvm, libbpf-dev: compiling bpf/ (hack/build-bpf.sh)
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# No install scripts: the two in the tree are denied in package.json (koffi ships its binary).
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npx tsc -b \
 && hack/build-bpf.sh \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim
# iproute2: links, routes, netns, tc; libbpf1: loaded through koffi; wireguard-go, wireguard-tools:
# WireGuard where the kernel has none, and wg; procps: sysctl; etcd-server: the chart's etcd.
# No openssl: certificates are issued in process (packages/kvstore/src/pki.ts).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 libbpf1 wireguard-go wireguard-tools procps etcd-server ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/weft
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/packages ./packages
# The agent's bpfDir in the chart's agent.json.
COPY --from=build /src/bpf/build ./bpf/build
RUN ln -s /opt/weft/packages/cli/bin/weft.js /usr/local/bin/weft \
 && ln -s /opt/weft/packages/cni/bin/weft-cni.js /usr/local/bin/weft-cni
ENTRYPOINT ["weft"]
