#!/usr/bin/env bash
# The real-GPU check, run on the device machine from the repository root with .device-bin and .gl carried
# (scripts/device_prepare.sh makes both): unpacks the loaders, then on Vulkan and then on GL runs `validate` (every
# kernel against the f64 reference), the full `bench` (every kernel against this GPU's own measured ceilings), the
# f32 accuracy survey at stride 2^10 (ACCURACY.md) and the release test binaries, writing 7 files into $OUT on
# Vulkan (log.txt, validate, bench and its log, bench sizes, accuracy, tests): the device tool returns 8 at most,
# so with GL's four more some would not come back. Every step has a
# timeout and the whole check stops by DEADLINE seconds (default 540), so that it fits one call (`timeout_s` 600) of
# the 15 minutes a session is lent; the Vulkan steps come first, as the ones the issues' numbers need.
# ACTGPU_BENCH_ARGS adds bench flags (e.g. --quick); ACTGPU_SKIP_TESTS=1 skips the test binaries (when a sweep in
# the same session ran them). GL runs only with ACTGPU_DEVICE_GL=1: NVIDIA's EGL fails at request_device on the
# H200 machine (BENCHMARKS.md), so by default its steps would only fail, cost time and make every run's status 1.
set -uo pipefail
# shellcheck source=scripts/device_env.sh
source scripts/device_env.sh /tmp/actgpu-device 540
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv

for backend in vulkan ${ACTGPU_DEVICE_GL:+gl}; do
  validate_json "$backend" "$out/validate-$backend.json"
  echo "=== bench ($backend) at ${SECONDS}s"
  # shellcheck disable=SC2086
  # stderr holds the rows as they are measured: what a run cut short by its timeout measured is still there.
  WGPU_BACKEND=$backend timeout "$(budget 170)" .device-bin/bench --markdown ${ACTGPU_BENCH_ARGS:-} \
    > "$out/bench-$backend.md" 2> "$out/bench-$backend.log" || { status=1; tail -5 "$out/bench-$backend.log"; }
  head -12 "$out/bench-$backend.md"
  if [ "$backend" = vulkan ]; then
    # 16-bit against f32 past the L2 cache too (2^24 f16 elements in and out are 64 MiB, about an H200's L2).
    echo "=== bench sizes ($backend) at ${SECONDS}s"
    # Its stderr (the rows as measured) joins the full run's log: $OUT's files are counted (see the header).
    WGPU_BACKEND=$backend timeout "$(budget 60)" .device-bin/bench --markdown --kernels identity,relu,gelu \
      --pass both --sizes 2^24,2^26 --dtypes f32,f16,bf16 > "$out/bench-sizes-$backend.md" \
      2>> "$out/bench-$backend.log" || { status=1; tail -5 "$out/bench-$backend.log"; }
    # Every activation's f32 error over the whole line, 8.4 M inputs per row (ACCURACY.md): this GPU's own exp,
    # tanh and division, and its flushing of subnormals.
    echo "=== accuracy ($backend) at ${SECONDS}s"
    WGPU_BACKEND=$backend timeout "$(budget 60)" .device-bin/accuracy --stride 2^10 \
      > "$out/accuracy-$backend.md" || status=1
    tail -n 2 "$out/accuracy-$backend.md"
  fi
  if [ -z "${ACTGPU_SKIP_TESTS:-}" ]; then
    run_tests "$backend" "$out/tests-$backend.log" 150
  fi
done
echo "=== done at ${SECONDS}s, status $status"
exit $status
