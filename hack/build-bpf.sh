#!/usr/bin/env bash
# Compiles the datapath: every bpf/*.c into bpf/build/<name>.o (BTF included).
# Idempotent, runs from any directory, stops at the first warning or error
# (-Werror) and never leaves a half-written object behind.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
CLANG="${CLANG:-clang}"
command -v "$CLANG" >/dev/null || { echo "[build-bpf] $CLANG not found (apt-get install clang)" >&2; exit 1; }
[ -f /usr/include/bpf/bpf_helpers.h ] || { echo "[build-bpf] /usr/include/bpf/bpf_helpers.h not found (apt-get install libbpf-dev)" >&2; exit 1; }

mkdir -p "$root/bpf/build"
shopt -s nullglob
sources=("$root"/bpf/*.c)
[ ${#sources[@]} -gt 0 ] || { echo "[build-bpf] no bpf/*.c in $root" >&2; exit 1; }
for src in "${sources[@]}"; do
  name="$(basename "$src" .c)"
  out="$root/bpf/build/$name.o"
  tmp="$out.tmp.$$"
  if ! "$CLANG" -O2 -g -target bpf -mcpu=v3 -Wall -Werror \
    -I "$root/bpf/lib" -I /usr/include/x86_64-linux-gnu \
    -c "$src" -o "$tmp"; then
    rm -f "$tmp"
    echo "[build-bpf] FAILED: bpf/$name.c" >&2
    exit 1
  fi
  mv -f "$tmp" "$out"
  echo "[build-bpf] bpf/build/$name.o ($(stat -c %s "$out") bytes)"
done
