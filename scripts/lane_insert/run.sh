#!/usr/bin/env bash
# Does this host pay for llvmpipe's per-lane storage loads? Compiles emit_load_mem.ll (the loop llvmpipe builds for
# a storage-buffer load whose address differs per lane) for this CPU with LLVM's llc, shows how the integer insert
# at the loop counter was lowered, and times it against the same loop on f32 lanes. Without AVX-512, LLVM lowers the
# i32 insert through the stack (a vector store, a scalar store into it, a vector reload that store forwarding
# cannot serve); with AVX-512 it is a masked broadcast in registers. BENCHMARKS.md, "What a loaded word costs".
# Needs an x86_64 CPU with AVX2 (the driver is built with -mavx2), llc (Debian: llvm; the IR uses typed pointers, which LLVM 14-16 read) and a C compiler.
# Usage: bash scripts/lane_insert/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v llc > /dev/null || { echo "needs llc: apt-get install -y llvm" >&2; exit 1; }
cc=${CC:-cc}
llc -O2 -mcpu=native "$here/emit_load_mem.ll" -o "$work/lanes.s"
llc -O2 -mcpu=native -filetype=obj "$here/emit_load_mem.ll" -o "$work/lanes.o"
"$cc" -O2 -mavx2 -c "$here/driver.c" -o "$work/driver.o"
"$cc" "$work/driver.o" "$work/lanes.o" -o "$work/lanes"
version=$(llc --version)
echo "llc: $(grep -m1 -o 'LLVM version [0-9.]*' <<< "$version"), $(grep -m1 -o 'Host CPU: [a-z0-9-]*' <<< "$version" || echo 'Host CPU: unknown')"
echo "the i32 insert, as compiled for this CPU:"
awk '/^load_lanes_i32:/,/Lfunc_end0/' "$work/lanes.s" | awk '/# %then/,/jmp/' | { grep -v '^\s*#' || echo "(no %then block found)"; } | sed 's/^/    /'
llc -O2 -mcpu=skylake-avx512 "$here/emit_load_mem.ll" -o "$work/avx512.s"
echo "the same insert compiled for an AVX-512 CPU (-mcpu=skylake-avx512; compiled, not run):"
awk '/^load_lanes_i32:/,/Lfunc_end0/' "$work/avx512.s" | awk '/# %then/,/jmp/' | { grep -v '^\s*#' || echo "(no %then block found)"; } | sed 's/^/    /'
"$work/lanes"
