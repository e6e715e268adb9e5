#!/usr/bin/env bash
# An A/B of build variants on the device machine: `bench` and every `bench_*` in .device-bin (built here from
# other commits or constants, see scripts/device_prepare.sh's ACTGPU_BASE), run in alternation ROUNDS times
# (default 2) with ACTGPU_AB_ARGS (default: the training kernels in f32), into $OUT/ab.md; then `validate` of every
# `validate_*` variant, into $OUT/<its name>.json. Carry .device-bin and .gl as for scripts/device_check.sh.
set -uo pipefail
# shellcheck source=scripts/device_env.sh
source scripts/device_env.sh /tmp/actgpu-ab 240
# shellcheck disable=SC2086
ab_rounds "$out/ab.md" "${ROUNDS:-2}" ${ACTGPU_AB_ARGS:---kernels training --dtypes f32}
for bin in .device-bin/validate_*; do
  [ -e "$bin" ] || continue
  validate_json vulkan "$out/$(basename "$bin").json" "$bin"
done
echo "=== done at ${SECONDS}s, status $status"
exit $status
