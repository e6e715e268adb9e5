#!/usr/bin/env bash
# A tuning sweep for a real GPU, run on the device machine like scripts/device_check.sh (same carried .device-bin
# and .gl from scripts/device_prepare.sh): validate and the test binaries on Vulkan, then `bench` over the choices
# that have per-adapter defaults (elementwise launch shape, f16 storage path, rows per reduction block, matmul
# kernel), and one GL attempt with its error output. At most 8 files into $OUT; every step has a timeout and the
# whole sweep stops by DEADLINE seconds (default 400).
set -uo pipefail
# shellcheck source=scripts/device_env.sh
source scripts/device_env.sh /tmp/actgpu-sweep 400
status=0

bench() { # bench FILE CAP ARGS...: appends one run's Markdown to FILE
  local file=$1 cap=$2
  shift 2
  echo "=== bench $* at ${SECONDS}s"
  echo "## bench $*" >> "$file"
  WGPU_BACKEND=vulkan timeout "$(budget "$cap")" .device-bin/bench --markdown "$@" >> "$file" || status=1
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

# Elementwise launch shape (threads x 8-element units per thread) at 2^24, every type.
for launch in 256x1 256x2 256x4 128x4 512x1 1024x1; do
  bench "$out/sweep-launch.md" 30 --kernels relu,identity,gelu,silu --pass both --sizes 2^24 \
    --dtypes f32,f16,bf16 --launch "$launch"
done
# f16 storage: native f16 against packed words.
for path in native packed; do
  bench "$out/sweep-f16.md" 40 --kernels relu,gelu,silu,glu,bias_gelu --pass both --sizes 2^24 \
    --dtypes f16 --f16 "$path"
done
# Rows per block of the bias kernels' row grid and partial column sums, with the fused-against-unfused table.
for rows in 2 4 8 16 32 64; do
  bench "$out/sweep-reduction.md" 30 --kernels bias_gelu,bias_relu,prelu,compare --dtypes f32,bf16 \
    --reduction-rows "$rows"
done

# Matmul kernel: the products, dense layers and training steps on each (tiled32 is the small-product candidate).
for kernel in tiled tiled32 direct; do
  bench "$out/sweep-matmul.md" 40 --kernels training --matmul "$kernel"
done

echo "=== gl at ${SECONDS}s"
for platform in "" surfaceless device; do
  echo "### EGL_PLATFORM=${platform:-unset}" >> "$out/gl.log"
  EGL_PLATFORM=$platform WGPU_BACKEND=gl RUST_LOG=wgpu_hal=info timeout "$(budget 30)" \
    .device-bin/validate >> "$out/gl.log" 2>&1 && break
done
tail -5 "$out/gl.log"
echo "=== done at ${SECONDS}s, status $status"
exit $status
