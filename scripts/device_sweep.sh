#!/usr/bin/env bash
# A tuning sweep for a real GPU, run on the device machine like scripts/device_check.sh (same carried .device-bin
# and .gl from scripts/device_prepare.sh): validate and the test binaries on Vulkan, an A/B against a baseline
# build where one was carried, `bench` over the choices still open (the matmul kernel, cross-entropy's kernel per
# width), and the full default run.
# GL is not tried: NVIDIA's EGL loses the device at request_device (2026-11-29, gfx-rs/wgpu#7068). At most 8 files
# into $OUT; every step has a timeout and the whole sweep stops by DEADLINE seconds (default 400).
set -uo pipefail
# shellcheck source=scripts/device_env.sh
source scripts/device_env.sh /tmp/actgpu-sweep 400

bench() { # bench FILE CAP ARGS...: appends one run's Markdown to FILE
  local file=$1 cap=$2
  shift 2
  echo "=== bench $* at ${SECONDS}s"
  echo "## bench $*" >> "$file"
  # stderr (the rows as they are measured, so a run cut short by its timeout still shows them) beside FILE.
  WGPU_BACKEND=vulkan timeout "$(budget "$cap")" .device-bin/bench --markdown "$@" >> "$file" \
    2>> "${file%.md}.log" || { status=1; tail -5 "${file%.md}.log"; }
  echo >> "$file"
}

validate_json vulkan "$out/validate-vulkan.json"
run_tests vulkan "$out/tests-vulkan.log" 150

# A/B against the baseline builds carried, if any (scripts/device_prepare.sh's ACTGPU_BASE=<commit>): the kernels
# a change touched, in alternation, twice each.
if compgen -G '.device-bin/bench_*' > /dev/null; then
  # shellcheck disable=SC2086
  ab_rounds "$out/sweep-ab.md" 2 ${ACTGPU_AB_ARGS:---kernels bias_gelu,bias_relu,compare --dtypes f32}
fi

# Matmul kernel: the products, dense layers and training steps on each (tiled32 measured slower on the H200;
# swept again for other GPUs; tiled_wide, the 16-byte loads, not yet measured on a GPU). 40 s each: since
# 2026-12-02 the products have rows for the backward's two forms as well, 11 product rows where there were 5.
for kernel in tiled tiled_wide tiled32; do
  bench "$out/sweep-matmul.md" 40 --kernels training --matmul "$kernel"
done

# Cross-entropy: the adapter's choice (a workgroup per row from 256 classes on GPUs) against a thread per row
# everywhere (--ce-wide-rows past every width), not yet measured on a GPU.
bench "$out/sweep-cross-entropy.md" 20 --kernels cross_entropy
bench "$out/sweep-cross-entropy.md" 20 --kernels cross_entropy --ce-wide-rows 1000000000

# The full default run, every kernel against this GPU's ceilings, for the record.
echo "=== bench (full) at ${SECONDS}s"
WGPU_BACKEND=vulkan timeout "$(budget 170)" .device-bin/bench --markdown > "$out/bench-vulkan.md" \
  2> "$out/bench-vulkan.log" || { status=1; tail -5 "$out/bench-vulkan.log"; }

echo "=== done at ${SECONDS}s, status $status"
exit $status
