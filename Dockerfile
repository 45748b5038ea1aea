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

# wireguard-go with TUN offloads (Debian's predates them): the version hack/wireguard-go/build.sh pins.
FROM golang:1.26-bookworm AS wireguard-go
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags "-s -w" golang.zx2c4.com/wireguard@v0.0.0-20260522210424-ecfc5a8d5446

FROM node:20-bookworm-slim
# iproute2: links, routes, netns, tc; libbpf1: loaded through koffi; wireguard-tools: wg (kernel
# WireGuard); procps: sysctl; etcd-server: the chart's etcd.
# No openssl: certificates are issued in process (packages/kvstore/src/pki.ts).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 libbpf1 wireguard-tools procps etcd-server ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=wireguard-go /out/wireguard /usr/local/bin/wireguard-go
WORKDIR /opt/weft
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/packages ./packages
# The agent's bpfDir in the chart's agent.json.
COPY --from=build /src/bpf/build ./bpf/build
RUN ln -s /opt/weft/packages/cli/bin/weft.js /usr/local/bin/weft \
 && ln -s /opt/weft/packages/cni/bin/weft-cni.js /usr/local/bin/weft-cni
ENTRYPOINT ["weft"]
