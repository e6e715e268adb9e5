#!/usr/bin/env bash
# An A/B of build variants on the device machine: `bench` and every `bench_*` in .device-bin (built here from
# other commits or constants, see scripts/device_prepare.sh's ACTGPU_BASE), run in alternation ROUNDS times
# (default 2) with ACTGPU_AB_ARGS (default: the training kernels in f32), into $OUT/ab.md; then `validate` of every
# `validate_*` variant, into $OUT/validate-<variant>.json. Carry .device-bin and .gl as for scripts/device_check.sh.
set -uo pipefail
# shellcheck source=scripts/device_env.sh
source scripts/device_env.sh /tmp/actgpu-ab 240
status=0
for _ in $(seq "${ROUNDS:-2}"); do
  for bin in .device-bin/bench .device-bin/bench_*; do
    echo "=== $bin at ${SECONDS}s"
    echo "## $(basename "$bin") ${ACTGPU_AB_ARGS:---kernels training --dtypes f32}" >> "$out/ab.md"
    # shellcheck disable=SC2086
    WGPU_BACKEND=vulkan timeout "$(budget 40)" "$bin" --markdown ${ACTGPU_AB_ARGS:---kernels training --dtypes f32} \
      >> "$out/ab.md" || status=1
    echo >> "$out/ab.md"
  done
done
for bin in .device-bin/validate_*; do
  [ -e "$bin" ] || continue
  name=$(basename "$bin")
  echo "=== $name at ${SECONDS}s"
  WGPU_BACKEND=vulkan timeout "$(budget 40)" "$bin" --json > "$out/$name.json" || status=1
  python3 -c "
import json, sys
d = json.load(open(sys.argv[1])); r = d['results']
print(sys.argv[1], sum(x['ok'] for x in r), 'of', len(r), 'pass')
[print('FAIL', x) for x in r if not x['ok']]" "$out/$name.json"
done
echo "=== done at ${SECONDS}s, status $status"
exit $status
