#!/usr/bin/env bash
# A tuning sweep for a real GPU, run on the device machine like scripts/device_check.sh (same carried .device-bin
# and .gl from scripts/device_prepare.sh): validate and the test binaries on Vulkan, an A/B against a baseline
# build where one was carried, `bench` over the choice still open (the matmul kernel), and the full default run.
# GL is not tried: NVIDIA's EGL loses the device at request_device (2026-11-29, gfx-rs/wgpu#7068). At most 8 files
# into $OUT; every step has a timeout and the whole sweep stops by DEADLINE seconds (default 400).
set -uo pipefail
# shellcheck source=scripts/device_env.sh
source scripts/device_env.sh /tmp/actgpu-sweep 400
status=0

bench() { # bench FILE CAP ARGS...: appends one run's Markdown to FILE (binary: $BENCH_BIN, else bench)
  local file=$1 cap=$2 bin=${BENCH_BIN:-bench}
  shift 2
  echo "=== $bin $* at ${SECONDS}s"
  echo "## $bin $*" >> "$file"
  WGPU_BACKEND=vulkan timeout "$(budget "$cap")" ".device-bin/$bin" --markdown "$@" >> "$file" || status=1
  echo >> "$file"
}

echo "=== validate (vulkan) at ${SECONDS}s"
WGPU_BACKEND=vulkan timeout "$(budget 60)" .device-bin/validate --json > "$out/validate-vulkan.json" || status=1
python3 -c "
import json, sys
d = json.load(open(sys.argv[1])); r = d['results']
print(d['adapter'], '| flushes subnormals:', d.get('flushes_subnormals'), '|', sum(x['ok'] for x in r), 'of', len(r), 'pass')
print('elements accepted as flushed:', sum(x.get('flush_accepted', 0) for x in r))
[print('FAIL', x) for x in r if not x['ok']]" "$out/validate-vulkan.json"

echo "=== tests (vulkan) at ${SECONDS}s"
stop=$((SECONDS + $(budget 150)))
for t in /tmp/actgpu-tests/tests/*; do
  left=$((stop - SECONDS))
  [ "$left" -le 1 ] && { echo "SKIPPED (out of time): $t" >> "$out/tests-vulkan.log"; status=1; continue; }
  echo "### $t" >> "$out/tests-vulkan.log"
  WGPU_BACKEND=vulkan timeout "$left" "$t" >> "$out/tests-vulkan.log" 2>&1 ||
    { echo "FAILED ($?): $t" >> "$out/tests-vulkan.log"; status=1; }
done
grep -E '^test result|^FAILED|^SKIPPED|panicked' "$out/tests-vulkan.log"

# A/B against a baseline build where scripts/device_prepare.sh was given one (ACTGPU_BASE=<commit>): the kernels
# a change touched, in alternation, twice each.
if [ -x .device-bin/bench_base ]; then
  for round in 1 2; do
    for bin in bench_base bench; do
      # shellcheck disable=SC2086
      BENCH_BIN=$bin bench "$out/sweep-ab.md" 30 ${ACTGPU_AB_ARGS:---kernels bias_gelu,bias_relu,compare --dtypes f32}
    done
  done
fi

# Matmul kernel: the products, dense layers and training steps on each (tiled32 measured slower on the H200;
# swept again for other GPUs).
for kernel in tiled tiled32; do
  bench "$out/sweep-matmul.md" 30 --kernels training --matmul "$kernel"
done

# The full default run, every kernel against this GPU's ceilings, for the record.
echo "=== bench (full) at ${SECONDS}s"
WGPU_BACKEND=vulkan timeout "$(budget 170)" .device-bin/bench --markdown > "$out/bench-vulkan.md" || status=1

echo "=== done at ${SECONDS}s, status $status"
exit $status
