# Sourced as `source scripts/device_env.sh DEFAULT_OUT DEFAULT_DEADLINE` by scripts/device_check.sh and
# scripts/device_sweep.sh on the device machine, from the repository root: sets `out` ($OUT, else DEFAULT_OUT) and
# `deadline` ($DEADLINE, else DEFAULT_DEADLINE seconds), copies all output into $out/log.txt, unpacks the carried
# loaders (.gl) and the packed test binaries (into /tmp/actgpu-tests/tests), points the loaders at NVIDIA's
# driver, and defines `budget CAP` (seconds a step may take: CAP, or what is left before $deadline if that is
# less, at least 1). ACTGPU_NO_UNPACK=1 skips the loaders, for a dry run on a machine that has its own.
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
