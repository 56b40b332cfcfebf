#!/bin/bash
# Run HERE (the dev machine, with node_modules) before a GPU run: fills .gpu/ with what the GPU
# machine lacks (it has nvcc, cmake, g++, Python + PyTorch; no node, npm, node_modules or network):
#   .gpu/node.xz                        this machine's Node.js (by /work/shared/gpu/pack-node.sh)
#   .gpu/node-api-headers/include/      node_api.h etc.   } for cmake -DNAPI_INCLUDE_DIRS=...
#   .gpu/node-addon-api/                napi.h etc.       }
#   .gpu/gpu_check.js                   bench/gpu/gpu_check.js bundled by esbuild (no node_modules needed)
# Then, on the GPU machine, from the repo root with .gpu carried: bash bench/gpu/run.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

pack="$root/../shared/gpu/pack-node.sh"
[ -f "$pack" ] || pack=/work/shared/gpu/pack-node.sh
bash "$pack" >/dev/null

rm -rf .gpu/node-api-headers .gpu/node-addon-api .gpu/gpu_check.js
mkdir -p .gpu/node-api-headers .gpu/node-addon-api
cp -r node_modules/node-api-headers/include .gpu/node-api-headers/
cp node_modules/node-addon-api/*.h .gpu/node-addon-api/
npx --no-install esbuild bench/gpu/gpu_check.js --bundle --platform=node --outfile=.gpu/gpu_check.js \
  '--external:*.node' --log-level=warning

# The bundle must run on its own: outside the repo it must get as far as its "no CUDA" message here.
if [ ! -f "$root/build/Release/fused_distill.node" ]; then
  echo "prepare.sh: no build/Release/fused_distill.node here, bundle self-test skipped" >&2
else
set +e
(cd /tmp && node "$root/.gpu/gpu_check.js" "$root/build/Release/fused_distill.node" >/dev/null 2>"$root/.gpu/selftest.err")
rc=$?
set -e
if [ "$rc" -ne 3 ] && [ "$rc" -ne 4 ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
  echo "prepare.sh: the bundled gpu_check.js failed its self-test (exit $rc):" >&2
  cat "$root/.gpu/selftest.err" >&2
  exit 1
fi
rm -f "$root/.gpu/selftest.err"
fi

bytes=$(du -sb .gpu | cut -f1)
limit=$((64 * 1024 * 1024))
echo "prepare.sh: .gpu is $((bytes / 1024)) KiB (limit for the whole carried tree: 64 MiB)"
ls -la .gpu
if [ "$bytes" -ge "$limit" ]; then
  echo "prepare.sh: .gpu is over 64 MiB" >&2
  exit 1
fi
