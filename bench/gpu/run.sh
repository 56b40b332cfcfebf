#!/bin/bash
# The GPU check, run THERE (the GPU machine: nvcc, cmake, g++, Python + PyTorch 2.x; no node/npm/
# network) from the repo root with .gpu carried (fill it HERE first: bash bench/gpu/prepare.sh):
#   bash bench/gpu/run.sh            # results in $OUT (the device tool sets it), else /tmp/fd-gpu-out
# Steps, each under its own timeout (the whole run stays under ~6 minutes):
#   1. unpack node from .gpu/node.xz
#   2. build the CUDA addon with plain cmake -> build-gpu/Release/fused_distill.node
#      (and, in parallel, bench/gpu/cuda_selfcheck.cu if it exists, with the nvcc command of its header)
#   3. run the self-check binary, if built                         -> $OUT/selfcheck.txt
#   4. node .gpu/gpu_check.js build-gpu/Release/fused_distill.node  -> $OUT/gpu_check.json
#   5. python3 bench/gpu/torch_gpu.py                               -> $OUT/torch_gpu.json
#   6. node bench/gpu/merge.js $OUT                                 -> $OUT/gpu.md, $OUT/gpu.json (+ stdout)
#      (with $OUT/steps.txt: each step's exit status)
# Everything is also in $OUT/log. Exit status: 0 when every step passed, else 1.
set -u -o pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/fd-gpu-out}
mkdir -p "$OUT"
: >"$OUT/log"
T0=$(date +%s)
BUDGET=${FD_GPU_BUDGET_S:-340} # seconds for the whole run; torch.compile gets what is left

elapsed() { echo $(($(date +%s) - T0)); }
declare -A STATUS
ORDER=()
step() { # step NAME TIMEOUT_S CMD...
  local name=$1 t=$2
  shift 2
  echo "=== [$(elapsed) s] $name (timeout ${t}s): $*"
  timeout --kill-after=10 "$t" "$@"
  local rc=$?
  [ "$rc" -eq 124 ] && echo "=== $name: TIMED OUT after ${t}s"
  echo "=== [$(elapsed) s] $name: exit $rc"
  STATUS[$name]=$rc
  ORDER+=("$name")
  return "$rc"
}

selfcheck_cmd() { # the nvcc command from cuda_selfcheck.cu's header comment
  head -60 bench/gpu/cuda_selfcheck.cu | grep -m1 -E '(^|[^A-Za-z_])nvcc[[:space:]]' |
    sed -E 's@^.*(^|[^A-Za-z_])(nvcc[[:space:]].*)$@\2@; s@[[:space:]]*(\*/)?[[:space:]]*$@@'
}

main() {
  echo "fused-distill GPU check: $(date -u +%FT%TZ) on $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -4
  nvcc --version 2>&1 | tail -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1

  # 1. node
  step node 60 bash -c 'xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node && /tmp/node --version'
  export PATH=/tmp:$PATH

  # 2. the addon (and the self-check, in parallel)
  local sc_pid="" sc_bin=""
  if [ -f bench/gpu/cuda_selfcheck.cu ] && [ -z "${FD_SKIP_SELFCHECK:-}" ]; then
    local cmd
    cmd=$(selfcheck_cmd)
    if [ -n "$cmd" ]; then
      sc_bin=$(echo "$cmd" | sed -nE 's@.*[[:space:]]-o[[:space:]]+([^[:space:]]+).*@\1@p')
      [ -z "$sc_bin" ] && sc_bin=a.out
      mkdir -p "$(dirname "$sc_bin")"
      echo "=== [$(elapsed) s] selfcheck-build (background): $cmd"
      (timeout --kill-after=10 240 bash -c "$cmd" >"/tmp/selfcheck-build.log" 2>&1; echo $? >/tmp/selfcheck-build.rc) &
      sc_pid=$!
    else
      echo "=== bench/gpu/cuda_selfcheck.cu has no nvcc command in its header comment: self-check skipped"
    fi
  else
    echo "=== no bench/gpu/cuda_selfcheck.cu: self-check skipped"
  fi
  step cmake-configure 120 cmake -S . -B build-gpu -DWITH_CUDA=ON \
    -DNAPI_INCLUDE_DIRS="$PWD/.gpu/node-api-headers/include;$PWD/.gpu/node-addon-api"
  if [ "${STATUS[cmake-configure]}" -eq 0 ]; then
    step cmake-build 240 cmake --build build-gpu -j 16
  fi
  if [ -n "$sc_pid" ]; then
    wait "$sc_pid"
    local rc
    rc=$(cat /tmp/selfcheck-build.rc 2>/dev/null || echo 1)
    echo "=== [$(elapsed) s] selfcheck-build: exit $rc"
    cat /tmp/selfcheck-build.log
    STATUS[selfcheck-build]=$rc
    ORDER+=(selfcheck-build)
    # 3. the self-check
    if [ "$rc" -eq 0 ] && [ -x "$sc_bin" ]; then
      step selfcheck 90 sh -c 'exec "$1" > "$2" 2>&1' _ "./${sc_bin#./}" "$OUT/selfcheck.txt"
      cat "$OUT/selfcheck.txt"
    fi
  fi

  # 4. the addon against its own CPU kernels, and its timings
  if [ -f build-gpu/Release/fused_distill.node ]; then
    step gpu_check 180 sh -c 'exec node .gpu/gpu_check.js "$1" --json "$2" >/dev/null' _ \
      build-gpu/Release/fused_distill.node "$OUT/gpu_check.json"
  else
    echo "=== no build-gpu/Release/fused_distill.node: gpu_check skipped"
    STATUS[gpu_check]=1
    ORDER+=(gpu_check)
  fi

  # 5. PyTorch eager + torch.compile, with what is left of the budget
  local left=$((BUDGET - $(elapsed)))
  local cb=$((left - 60))
  [ "$cb" -lt 20 ] && cb=20
  step torch_gpu $((left > 90 ? left : 90)) sh -c 'exec python3 bench/gpu/torch_gpu.py --out "$1" --compile-budget "$2" >/dev/null' _ \
    "$OUT/torch_gpu.json" "$cb"

  # 6. one table
  for s in "${ORDER[@]}"; do echo "$s ${STATUS[$s]}"; done >"$OUT/steps.txt"
  step merge 30 node bench/gpu/merge.js "$OUT"

  echo "=== [$(elapsed) s] summary"
  local bad=0
  for s in "${ORDER[@]}"; do
    echo "  $s: exit ${STATUS[$s]}"
    [ "${STATUS[$s]}" -ne 0 ] && bad=1
  done
  return $bad
}

main 2>&1 | tee -a "$OUT/log"
exit "${PIPESTATUS[0]}"
