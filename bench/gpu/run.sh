#!/bin/bash
# The cuda backend's ONE GPU run, THERE (the GPU machine: nvcc, cmake, g++, cuBLAS, Python + PyTorch 2.x; no
# node, npm, node_modules or network), from the repo root with .gpu carried (filled HERE first by
# bash bench/gpu/prepare.sh):
#   bash bench/gpu/run.sh          results in $OUT (the device tool sets it), else /tmp/fd-gpu-out
# Steps, each under its own timeout, a failure never stopping the others; the whole run keeps to
# FD_GPU_BUDGET_S seconds (default 420: every timeout is cut to what the later steps leave):
#   1. node          unpack .gpu/node.xz -> /tmp/fd-node/node
#   2. in parallel:  addon-build   cmake -DWITH_CUDA=ON (all cores) -> build-gpu/Release/fused_distill.node
#                    checks-build  every bench/gpu/*check*.cu with an nvcc command in its header
#                                  comment (tensor_ops_check.cu, cuda_selfcheck.cu), that command's
#                                  sources compiled in parallel, then linked
#   3. in parallel, correctness (no timing):
#                    check-tensor_ops_check, check-cuda_selfcheck (--no-bench): the kernel checks
#                    suite-<name>  the jest suites with device tests (tests/gpu/bundle.js --list), bundled (.gpu/fd-tests/)
#                    tfjs_core     tfjs-core's op suite on 'cuda' (.gpu/tfjs/tests/tfjs_core/run.js)
#                    cuda_vs_native  20 distillation steps on 'cuda' and 'native': losses agree
#                    nccl          bench/gpu/nccl_check.js: addon.cuda.nccl on one rank, the timeout,
#                                  two ranks (processes) on the one GPU ("Duplicate GPU detected" is
#                                  the expected refusal); NCCL is PyTorch's libnccl.so.2
#                                  (FUSED_DISTILL_NCCL_LIBRARY, found below unless set)
#   4. one at a time, timing:
#                    cuda_bert     bench/gpu/cuda_bert.js (bundled) on 'cuda', fp32 + TF32
#                    cuda_bert_composite, cuda_bert_sync_uploads, cuda_bert_composite_sync_uploads
#                                  the 4L/256 fp32 student step as variants (composite layers;
#                                  FUSED_DISTILL_CUDA_SYNC_UPLOADS=1): merge's "variants" table
#                    torch_bert    bench/gpu/torch_bert_gpu.py, PyTorch eager, same shapes
#                    fused_losses, torch_losses   the old fused-loss check (gpu_check.js --quick,
#                                  torch_gpu.py --quick --no-compile), only with >= 80 s left
#   5. merge         node bench/gpu/merge.js $OUT -> $OUT/gpu.md (printed), $OUT/gpu.json
# Every step's output: $OUT/<step>.log; its exit status and seconds: $OUT/steps.txt; all: $OUT/log.
# Dry runs (no GPU): FD_ADDON, FD_PYTHON name another addon / Python; FD_GPU_TINY=1 runs both
# benchmarks --tiny (PyTorch on the CPU); FUSED_DISTILL_EMULATE_DEVICE=1 puts 'cuda' on the host
# emulation of a CPU build (see bench/gpu/README.md). FD_GPU_SKIP=name,name skips steps (e.g. a rerun on the warm machine: FD_GPU_SKIP=tfjs_core,suites).
# Exit status: 0 when every step passed, else 1.
set -u -o pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
OUT=${OUT:-/tmp/fd-gpu-out}
BUDGET=${FD_GPU_BUDGET_S:-420}
SKIP=",${FD_GPU_SKIP:-},"
NODE_DIR=/tmp/fd-node
export FD_ADDON=${FD_ADDON:-$root/build-gpu/Release/fused_distill.node} # a dry run may name another
JOBS=$(nproc 2>/dev/null || echo 4)
PY=${FD_PYTHON:-python3} # the Python with PyTorch

# The nvcc command in the header comment of a .cu file: the first comment line with "nvcc -...",
# joined with the lines it continues onto (a trailing backslash).
check_cmd() {
  head -80 "$1" | sed -nE 's@^[[:space:]]*(//|\*)[[:space:]]?@@p' | awk '
    !found && /(^|[^A-Za-z_])nvcc[[:space:]]+-/ { found = 1; sub(/^.*(^|[^A-Za-z_])nvcc[[:space:]]/, "nvcc ") }
    found { line = $0; more = sub(/[[:space:]]*\\[[:space:]]*$/, " ", line); gsub(/^[[:space:]]+/, "", line); cmd = cmd line; if (!more) { print cmd; exit } }'
}

# Builds one check binary from its header command: each source compiled on its own core (objects
# shared between checks built with the same flags), then linked (what the command does, in
# parallel). Prints the binary's path on the last line.
build_check() {
  local src=$1 cmd
  cmd=$(check_cmd "$src")
  echo "$src: $cmd"
  local -a words=() flags=() srcs=() objs=() pids=()
  # expands the command's globs (kernels/cuda/*.cu)
  if ! eval "words=($cmd)" 2>/dev/null || [ "${#words[@]}" -lt 2 ]; then
    echo "$src: cannot read its nvcc command"
    return 3
  fi
  local out=a.out i=1 w
  while [ "$i" -lt "${#words[@]}" ]; do
    w=${words[$i]}
    case "$w" in
      -o) out=${words[$((i + 1))]}; i=$((i + 2)); continue ;;
      *.cu | *.cpp | *.cc) srcs+=("$w") ;;
      *) flags+=("$w") ;;
    esac
    i=$((i + 1))
  done
  mkdir -p "$(dirname "$out")" build-gpu/check-obj
  local key s o ok=1
  # an object is reused only for the same flags, source and headers (a rerun after an edit rebuilds)
  key=$( (printf '%s ' "${flags[@]}"; cat kernels/*.h kernels/*/*.h kernels/*/*.cuh bench/gpu/*.h 2>/dev/null) | md5sum | cut -c1-10)
  for s in "${srcs[@]}"; do
    o=build-gpu/check-obj/$(echo "$s" | tr '/' '_').$key.$(md5sum <"$s" | cut -c1-10).o
    objs+=("$o")
    [ -s "$o" ] && continue
    (nvcc "${flags[@]}" -c "$s" -o "$o.tmp" && mv "$o.tmp" "$o") &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || ok=0; done
  [ "$ok" -eq 1 ] || return 1
  nvcc "${flags[@]}" "${objs[@]}" -o "$out" || return 1
  echo "$out"
}

build_checks() {
  local f bin rc=0
  : >build-gpu/checks.list
  for f in bench/gpu/*check*.cu; do
    [ -f "$f" ] || continue
    if [ -z "$(check_cmd "$f")" ]; then # a part of another check (its header names no build command)
      echo "$f: no nvcc command in its header comment: not a check of its own"
      continue
    fi
    local log=build-gpu/$(basename "$f" .cu).build.log
    if build_check "$f" >"$log" 2>&1; then
      bin=$(tail -1 "$log")
      echo "$(basename "$f" .cu) $bin" >>build-gpu/checks.list
    else
      rc=1
    fi
    cat "$log"
  done
  return $rc
}

T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
# limit DEFAULT RESERVE: DEFAULT, cut so that RESERVE seconds of the budget stay for later steps.
limit() {
  local left=$((BUDGET - $(elapsed) - $2))
  [ "$left" -lt "$1" ] && echo $((left > 15 ? left : 15)) || echo "$1"
}
skipped() { [[ "$SKIP" == *",$1,"* ]]; }
# step NAME TIMEOUT CMD...: CMD's output -> $OUT/NAME.log; "NAME rc seconds" -> $OUT/steps.txt.
step() {
  local name=$1 t=$2 s rc
  shift 2
  if skipped "$name"; then
    echo "=== $name: skipped (FD_GPU_SKIP)"
    return 0
  fi
  s=$(date +%s)
  echo "=== [$(elapsed) s] $name (timeout ${t}s): $*"
  timeout --kill-after=5 "$t" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  [ "$rc" -eq 124 ] && echo "TIMED OUT after ${t}s" >>"$OUT/$name.log"
  echo "$name $rc $(($(date +%s) - s))" >>"$OUT/steps.txt"
  echo "=== [$(elapsed) s] $name: exit $rc"
  tail -n 6 "$OUT/$name.log" | sed 's/^/    /'
  return "$rc"
}
# needs NAME FILE WHAT: records NAME as not run (exit 99) when FILE is missing.
needs() {
  [ -e "$2" ] && return 0
  skipped "$1" && return 1
  echo "not run: $3 is missing ($2)" >"$OUT/$1.log"
  echo "$1 99 0" >>"$OUT/steps.txt"
  echo "=== $1: not run: $3 is missing"
  return 1
}
node_step() { # node_step NAME TIMEOUT SCRIPT ARGS...: a bundled script with the built addon
  local name=$1 t=$2 script=$3
  shift 3
  needs "$name" "$script" "the bundle (bash bench/gpu/prepare.sh here)" || return 0
  needs "$name" "$FD_ADDON" "the CUDA addon (see addon-build.log)" || return 0
  step "$name" "$t" node "$script" "$@"
}

main() {
  mkdir -p "$OUT"
  : >"$OUT/log"
  : >"$OUT/steps.txt"
  echo "fused-distill GPU run: $(date -u +%FT%TZ) on $(hostname), budget ${BUDGET}s, $JOBS cores"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2 | tee "$OUT/device.txt"
  nvcc --version 2>&1 | tail -1
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1
  # NCCL: on the GPU machines only inside PyTorch's install (the nvidia-nccl wheel, or torch/lib in
  # older wheels). The addon dlopens FUSED_DISTILL_NCCL_LIBRARY first (kernels/cuda/nccl.cu).
  if [ -z "${FUSED_DISTILL_NCCL_LIBRARY:-}" ]; then
    FUSED_DISTILL_NCCL_LIBRARY=$("$PY" -c '
import glob, os, sys
for p in sys.path:
    for pat in ("nvidia/nccl/lib/libnccl.so*", "torch/lib/libnccl*.so*"):
        for f in sorted(glob.glob(os.path.join(p or ".", pat))):
            print(f)
            raise SystemExit' 2>/dev/null | head -1)
    export FUSED_DISTILL_NCCL_LIBRARY
  fi
  echo "NCCL library: ${FUSED_DISTILL_NCCL_LIBRARY:-none found (the addon tries libnccl.so.2, libnccl.so)}"

  # 1. node
  step node 60 bash -c "mkdir -p $NODE_DIR && xz -dc .gpu/node.xz > $NODE_DIR/node.tmp && chmod +x $NODE_DIR/node.tmp && mv $NODE_DIR/node.tmp $NODE_DIR/node && $NODE_DIR/node --version"
  export PATH=$NODE_DIR:$PATH

  # 2. builds
  step addon-build "$(limit 240 170)" bash -c "cmake -S . -B build-gpu -DWITH_CUDA=ON \
    -DNAPI_INCLUDE_DIRS='$root/.gpu/node-api-headers/include;$root/.gpu/node-addon-api' && cmake --build build-gpu -j $JOBS" &
  local pa=$!
  step checks-build "$(limit 240 170)" bash bench/gpu/run.sh --build-checks &
  local pc=$!
  wait "$pa" "$pc"

  # 3. correctness, in parallel
  local -a pids=()
  while read -r name bin; do
    local args=()
    [ "$name" = cuda_selfcheck ] && args=(--no-bench) # its timings belong to the old check
    step "check-$name" "$(limit 120 160)" "./${bin#./}" "${args[@]}" &
    pids+=($!)
  done < <(cat build-gpu/checks.list 2>/dev/null)
  [ -f build-gpu/checks.list ] || needs checks build-gpu/checks.list "the check binaries (see checks-build.log)"
  local suite
  if ! skipped suites; then
    for suite in .gpu/fd-tests/*.js; do
      [ -f "$suite" ] || { needs suites "$suite" "the bundled jest suites"; continue; }
      node_step "suite-$(basename "$suite" .js)" "$(limit 150 160)" "$suite" &
      pids+=($!)
    done
  fi
  rm -f .gpu/tfjs/tests/tfjs_core/results-*.json
  node_step tfjs_core "$(limit 200 160)" .gpu/tfjs/tests/tfjs_core/run.js --backend cuda &
  pids+=($!)
  node_step cuda_vs_native "$(limit 150 160)" .gpu/bench/cuda_vs_native.js --json "$OUT/cuda_vs_native.json" &
  pids+=($!)
  node_step nccl "$(limit 150 160)" bench/gpu/nccl_check.js --json "$OUT/nccl.json" &
  pids+=($!)
  wait "${pids[@]}"
  cp .gpu/tfjs/tests/tfjs_core/results-cuda.json "$OUT/tfjs_core.json" 2>/dev/null

  # 4. timing, one at a time
  local t
  t=$(limit 180 75)
  local tiny=() torch_dry=()
  [ -n "${FD_GPU_TINY:-}" ] && tiny=(--tiny) && torch_dry=(--tiny --device cpu)
  # FD_BERT_ARGS: more cuda_bert.js options (e.g. "--only student4 --precisions fp32" for a short rerun)
  # shellcheck disable=SC2086
  node_step cuda_bert "$t" .gpu/bench/cuda_bert.js --json "$OUT/cuda_bert.json" --budget-s $((t - 30)) "${tiny[@]}" ${FD_BERT_ARGS:-}
  # the same student step with LayerNorm / GELU as tfjs composites, each kernel's device time (profile)
  node_step cuda_bert_composite "$(limit 60 60)" .gpu/bench/cuda_bert.js --json "$OUT/cuda_bert_composite.json" \
    --only student4 --precisions fp32 --steps 2 --warmup 1 --composite-layers "${tiny[@]}"
  # A/B: uploads that wait for the stream (the behaviour before the pinned staging ring), both paths
  FUSED_DISTILL_CUDA_SYNC_UPLOADS=1 node_step cuda_bert_sync_uploads "$(limit 60 45)" .gpu/bench/cuda_bert.js \
    --json "$OUT/cuda_bert_sync_uploads.json" --only student4 --precisions fp32 "${tiny[@]}"
  FUSED_DISTILL_CUDA_SYNC_UPLOADS=1 node_step cuda_bert_composite_sync_uploads "$(limit 60 45)" .gpu/bench/cuda_bert.js \
    --json "$OUT/cuda_bert_composite_sync_uploads.json" --only student4 --precisions fp32 --steps 2 --warmup 1 --composite-layers "${tiny[@]}"
  step torch_bert "$(limit 120 15)" "$PY" bench/gpu/torch_bert_gpu.py --json "$OUT/torch_bert.json" "${torch_dry[@]}"
  if [ $((BUDGET - $(elapsed))) -ge 80 ]; then
    node_step fused_losses 45 .gpu/gpu_check.js "$FD_ADDON" --quick --json "$OUT/gpu_check.json"
    step torch_losses 30 "$PY" bench/gpu/torch_gpu.py --quick --no-compile --out "$OUT/torch_gpu.json"
  else
    echo "=== the old fused-loss check: skipped, $((BUDGET - $(elapsed))) s left"
  fi

  # 5. one table
  echo "=== [$(elapsed) s] merge"
  if command -v node >/dev/null; then
    node bench/gpu/merge.js "$OUT" || true
  else
    echo "merge: no node; the step logs are in $OUT"
  fi
  echo "=== [$(elapsed) s] done"
  ! awk '$2 != 0 { bad = 1 } END { exit !bad }' "$OUT/steps.txt"
}

# --build-checks: the internal entry point of step 2 (under `timeout`, which needs a program). Both
# branches end the script: nothing after this `if` may run (an error aborting a branch must not
# fall through into another run).
if [ "${1:-}" = "--build-checks" ]; then
  mkdir -p build-gpu && build_checks
else
  main 2>&1 | tee -a "$OUT/log"
  test "${PIPESTATUS[0]}" -eq 0
fi
exit
