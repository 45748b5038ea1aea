#!/usr/bin/env bash
# Compiles the datapath: every bpf/*.c into bpf/build/<name>.o (BTF included).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$root/bpf/build"
for src in "$root"/bpf/*.c; do
  name="$(basename "$src" .c)"
  clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror \
    -I "$root/bpf/lib" -I /usr/include/x86_64-linux-gnu \
    -c "$src" -o "$root/bpf/build/$name.o"
  echo "[build-bpf] bpf/build/$name.o" >&2
done
