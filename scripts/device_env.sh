# Sourced as `source scripts/device_env.sh DEFAULT_OUT DEFAULT_DEADLINE` by scripts/device_check.sh and
# scripts/device_sweep.sh on the device machine, from the repository root: sets `out` ($OUT, else DEFAULT_OUT) and
# `deadline` ($DEADLINE, else DEFAULT_DEADLINE seconds), copies all output into $out/log.txt, unpacks the carried
# loaders (.gl) and the packed test binaries (into /tmp/actgpu-tests/tests), points the loaders at NVIDIA's
# driver, sets `status` to 0 and defines the steps the device scripts share: `budget CAP` (seconds a step may
# take: CAP, or what is left before $deadline if that is less, at least 1), `validate_json BACKEND FILE`,
# `run_tests BACKEND LOG CAP` and `ab_rounds FILE ROUNDS ARGS...`; a failed step sets `status` to 1. ACTGPU_NO_UNPACK=1 skips the loaders, for a dry run on a machine that has its own.
out="${OUT:-$1}"
deadline="${DEADLINE:-$2}"
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
if [ -z "${ACTGPU_NO_UNPACK:-}" ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
# The test binaries travel packed (the device tool carries 64 MiB at most); python3 is there, xz may not be.
python3 -c "import tarfile; tarfile.open('.device-bin/tests.tar.xz').extractall('/tmp/actgpu-tests')"
# Where the loader finds no NVIDIA driver by itself (see the device tool's README).
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
if [ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ]; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
nvidia-smi -L

budget() {
  local left=$((deadline - SECONDS))
  if [ "$left" -lt "$1" ]; then echo $((left > 1 ? left : 1)); else echo "$1"; fi
}

status=0

# `validate --json` on BACKEND into FILE, and a summary: the adapter, the flushing probe, the checks passed and
# any failure.
validate_json() {
  local backend=$1 file=$2 bin=${3:-.device-bin/validate}
  echo "=== $(basename "$bin") ($backend) at ${SECONDS}s"
  WGPU_BACKEND=$backend timeout "$(budget 60)" "$bin" --json > "$file" || status=1
  python3 -c "
import json, sys
d = json.load(open(sys.argv[1])); r = d['results']
print(d.get('adapter'), '| flushes subnormals:', d.get('flushes_subnormals'), '|', sum(x['ok'] for x in r), 'of',
      len(r), 'pass | elements accepted as flushed:', sum(x.get('flush_accepted', 0) for x in r))
[print('FAIL', x) for x in r if not x['ok']]
# A missing NVIDIA ICD would leave Mesa's lavapipe (or llvmpipe) to pass everything: that is no device check.
name = json.dumps(d.get('adapter')).lower()
assert 'llvmpipe' not in name and 'lavapipe' not in name, 'ran on a software adapter, not the device'" "$file" || status=1
}

# Every test binary (unpacked into /tmp/actgpu-tests/tests) on BACKEND into LOG, each under the time left of CAP.
run_tests() {
  local backend=$1 log=$2 cap=$3
  echo "=== tests ($backend) at ${SECONDS}s"
  local stop=$((SECONDS + $(budget "$cap")))
  for t in /tmp/actgpu-tests/tests/*; do
    local left=$((stop - SECONDS))
    if [ "$left" -le 1 ]; then
      echo "SKIPPED (out of time): $t" >> "$log"
      status=1
      continue
    fi
    echo "### $t" >> "$log"
    WGPU_BACKEND=$backend RUST_BACKTRACE=1 timeout "$left" "$t" >> "$log" 2>&1 || {
      echo "FAILED ($?): $t" >> "$log"
      status=1
    }
  done
  grep -E '^test result|^FAILED|^SKIPPED|panicked' "$log"
}

# An A/B of build variants: `bench` and every `bench_*` in .device-bin (scripts/device_prepare.sh's
# ACTGPU_BASE, or builds made by hand), in alternation, ROUNDS times, each with ARGS, appended to FILE.
ab_rounds() {
  local file=$1 rounds=$2
  shift 2
  for _ in $(seq "$rounds"); do
    for bin in .device-bin/bench .device-bin/bench_*; do
      [ -x "$bin" ] || continue
      echo "=== $(basename "$bin") $* at ${SECONDS}s"
      echo "## $(basename "$bin") $*" >> "$file"
      WGPU_BACKEND=vulkan timeout "$(budget 40)" "$bin" --markdown "$@" >> "$file" \
        2>> "${file%.md}.log" || { status=1; tail -5 "${file%.md}.log"; }
      echo >> "$file"
    done
  done
}
