#!/bin/bash
# Run HERE (the dev machine, with node_modules) before the GPU run: fills .gpu/ with everything the
# GPU machine lacks (it has nvcc, cmake, g++, cuBLAS, Python + PyTorch; no node, npm, node_modules or
# network), then self-tests each bundle from outside the repo (no node_modules above it):
#   .gpu/node.xz                      this machine's Node.js (xz-compressed by this script)
#   .gpu/node-api-headers/include/    node_api.h etc.   } cmake -DNAPI_INCLUDE_DIRS=... (run.sh)
#   .gpu/node-addon-api/              napi.h etc.       }
#   .gpu/fd-tests/<suite>.js          the jest suites with device tests          } tests/gpu/bundle.js,
#   .gpu/tfjs/tests/tfjs_core/run.js  tfjs-core's op suite runner + dist/        } from dist/ built
#   .gpu/bench/cuda_bert.js, cuda_vs_native.js, .gpu/gpu_check.js  the scripts } here by tsc first
# Then, on the GPU machine, from the repo root with ".gpu" carried: bash bench/gpu/run.sh
#   bash bench/gpu/prepare.sh [--no-selftest]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
mkdir -p .gpu

# Node: pack-node.sh's xz of this machine's node (kept when there already; pack-node.sh itself
# also writes .git/info/exclude, which a git worktree does not have: .gitignore covers /.gpu/).
if [ ! -s .gpu/node.xz ]; then
  xz -T2 -6 -c "$(readlink -f "$(command -v node)")" >.gpu/node.xz.tmp && mv .gpu/node.xz.tmp .gpu/node.xz
fi

rm -rf .gpu/node-api-headers .gpu/node-addon-api .gpu/fd-tests .gpu/tfjs .gpu/bench .gpu/gpu_check.js
mkdir -p .gpu/node-api-headers .gpu/node-addon-api
cp -r node_modules/node-api-headers/include .gpu/node-api-headers/
cp node_modules/node-addon-api/*.h .gpu/node-addon-api/

nice -n 10 npx --no-install tsc -p tsconfig.json
node tests/gpu/bundle.js \
  --script bench/gpu/cuda_bert.js=.gpu/bench/cuda_bert.js \
  --script bench/gpu/cuda_vs_native.js=.gpu/bench/cuda_vs_native.js \
  --script bench/gpu/gpu_check.js=.gpu/gpu_check.js

# Self-tests: from a directory with no node_modules above it, each bundle must run what it runs on
# the GPU, on the CPU addon's host emulation of the device (the 'cuda' backend included), or stop at
# its clear "no CUDA" message (gpu_check.js needs a CUDA build).
if [ "${1:-}" != "--no-selftest" ]; then
  addon=$root/build/Release/fused_distill.node
  if [ ! -f "$addon" ]; then
    echo "prepare.sh: no $addon here (npx node-gyp rebuild): bundle self-tests skipped" >&2
  else
    t=$(mktemp -d /tmp/fd-gpu-selftest.XXXXXX)
    cp -r .gpu/fd-tests .gpu/tfjs .gpu/bench .gpu/gpu_check.js "$t/"
    fail=0
    selftest() { # NAME EXPECTED_EXIT_CODES CMD...
      local name=$1 ok=$2 rc
      shift 2
      (cd "$t" && FD_ADDON=$addon FUSED_DISTILL_EMULATE_DEVICE=1 "$@") >"$t/$name.log" 2>&1
      rc=$?
      if [[ " $ok " == *" $rc "* ]]; then
        echo "prepare.sh: self-test $name: ok (exit $rc)"
      else
        echo "prepare.sh: self-test $name FAILED (exit $rc):" >&2
        tail -20 "$t/$name.log" >&2
        fail=1
      fi
    }
    set +e
    for s in "$t"/fd-tests/*.js; do selftest "suite-$(basename "$s" .js)" 0 node "$s"; done
    selftest tfjs_core 0 node tfjs/tests/tfjs_core/run.js --backend cuda --filter '^abs '
    selftest cuda_bert 0 node bench/cuda_bert.js --tiny --steps 2 --warmup 1
    selftest cuda_vs_native 0 node bench/cuda_vs_native.js --tiny --steps 2
    selftest gpu_check "0 1 3 4" node gpu_check.js "$addon" --quick
    # not bundled (Node built-ins only): run from the repo, one rank on the emulation
    selftest nccl_check 0 node "$root/bench/gpu/nccl_check.js"
    set -e
    rm -rf "$t"
    [ "$fail" -eq 0 ] || exit 1
  fi
fi

# The carried tree: git's files (tracked + untracked, not ignored) and .gpu.
bytes=$(( $(du -sb .gpu | cut -f1) + $(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) ))
limit=$((64 * 1024 * 1024))
du -sh .gpu/* | sed 's/^/  /'
echo "prepare.sh: carried tree ~$((bytes / 1048576)) MiB (.gpu + the working tree; limit 64 MiB)"
if [ "$bytes" -ge "$limit" ]; then
  echo "prepare.sh: over 64 MiB" >&2
  exit 1
fi
