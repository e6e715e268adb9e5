#!/usr/bin/env bash
# Prepares a real-GPU check for a session that is lent a device machine (see scripts/device_check.sh):
# builds the release binaries of `validate` and `bench` here and fetches the Vulkan / EGL loaders, which the
# device machine lacks, as .deb files, and packs the release test binaries. Both land in folders that git ignores (.device-bin, .gl) and that the
# device tool's `carry` takes along. Run from the repository root; needs network access to Debian's mirrors.
set -euo pipefail
cd "$(dirname "$0")/.."

# (git rev-parse finds the exclude file in a worktree too, where .git is a file.)
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gl/' "$exclude" 2>/dev/null || echo '/.gl/' >> "$exclude"
grep -qx '/.device-bin/' "$exclude" 2>/dev/null || echo '/.device-bin/' >> "$exclude"

# A baseline `bench` for scripts/device_sweep.sh's A/B rows, built from commit $ACTGPU_BASE in a worktree
# (first, sharing target/ so that only the crate is rebuilt).
mkdir -p .device-bin
rm -f .device-bin/bench_base
target="$PWD/target"
if [ -n "${ACTGPU_BASE:-}" ]; then
  rm -rf /tmp/actgpu-base && git worktree add -f --detach /tmp/actgpu-base "$ACTGPU_BASE"
  (cd /tmp/actgpu-base && CARGO_TARGET_DIR="$target" cargo build --release --example bench)
  cp "$target"/release/examples/bench .device-bin/bench_base
  git worktree remove --force /tmp/actgpu-base
  strip .device-bin/bench_base
  # The shared target/ may still hold this checkout's bench as fresh, which cargo would not copy out again.
  touch src/lib.rs
fi
cargo build --release --example validate --example bench --example accuracy
mkdir -p .device-bin
cp target/release/examples/validate target/release/examples/bench target/release/examples/accuracy .device-bin/
# The release test binaries (the CPU-only `reference` left out), packed: stripped, they are about 6 MB each.
rm -rf .device-bin/tests && mkdir -p .device-bin/tests
cargo test --release --all-features --no-run --message-format=json |
  python3 -c "
import json, shutil, sys
for line in sys.stdin:
    d = json.loads(line)
    if d.get('reason') == 'compiler-artifact' and d.get('executable') and d['profile']['test'] \
            and d['target']['name'] != 'reference':
        shutil.copy(d['executable'], '.device-bin/tests/' + d['target']['name'])
"
strip .device-bin/validate .device-bin/bench .device-bin/accuracy .device-bin/tests/*
tar -C .device-bin -cJf .device-bin/tests.tar.xz tests
rm -rf .device-bin/tests

mkdir -p .gl /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
# shellcheck disable=SC2086
apt-get $o update >/dev/null
# shellcheck disable=SC2086
(cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
du -sh .device-bin .gl
echo "ready: call the device tool with carry [\".device-bin\", \".gl\"] and command \"bash scripts/device_check.sh\""
