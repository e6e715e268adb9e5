#!/bin/bash
# Alternating rounds, old order (389f3c5) vs four K steps in a row (624207d), same adapter, one at a time.
export XDG_RUNTIME_DIR=/tmp/xdg WGPU_BACKEND=$1
# /tmp/bench-old: examples/bench.rs built at 389f3c5; /tmp/bench-new: the same with 624207d's kernel generator.
# Rounds: 3 for alternating-vulkan.txt (`bash alternating.sh vulkan`), 2 for alternating-gl.txt (`... gl`).
for r in 1 2 3; do
  for v in old new; do
    echo "### round $r $v ($(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
    /tmp/bench-$v --kernels matmul,train_step --matmul-shapes 1024x1024x1024,256x784x512,256x512x512,256x512x10 --dtypes f32 --samples 7 2>&1
  done
done
