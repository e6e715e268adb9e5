#!/usr/bin/env bash
# The real-GPU check, run on the device machine from the repository root with .device-bin and .gl carried
# (scripts/device_prepare.sh makes both): unpacks the loaders, then runs `validate` (every kernel against the f64
# reference) and the full `bench` (every kernel against this GPU's own measured ceilings) on Vulkan and on GL,
# writing JSON and Markdown into $OUT. At most about 8 minutes (the timeouts below), so that the whole check fits
# one call (`timeout_s` 600) of the 15 minutes a session is lent. ACTGPU_BENCH_ARGS adds bench flags (e.g. --quick).
set -uo pipefail
out="${OUT:-/tmp/actgpu-device}"
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
# Where the loader finds no NVIDIA driver by itself (see the device tool's README).
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] &&
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] &&
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
nvidia-smi -L 2>&1 | tee "$out/gpu.txt"
status=0
for backend in vulkan gl; do
  echo "=== validate ($backend)"
  WGPU_BACKEND=$backend timeout 60 .device-bin/validate --json > "$out/validate-$backend.json" || status=1
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); r=d['results']; print(sum(x['ok'] for x in r), 'of', len(r), 'checks pass')" \
    "$out/validate-$backend.json" 2>&1
  echo "=== bench ($backend)"
  WGPU_BACKEND=$backend timeout 170 .device-bin/bench --markdown ${ACTGPU_BENCH_ARGS:-} > "$out/bench-$backend.md" 2> "$out/bench-$backend.err" || status=1
  head -3 "$out/bench-$backend.md"
done
exit $status
