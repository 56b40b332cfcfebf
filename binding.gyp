# CPU build, run by `npm install` (node-gyp-build). The CUDA build is CMakeLists.txt (cmake-js).
# Both read the list of sources from sources.json.
# -fno-trapping-math lets GCC turn the kernels' branch-free selects into vector blends (it will not
# speculate a float op that might trap otherwise); no -ffast-math: NaN/Inf must propagate.
{
  "targets": [
    {
      "target_name": "fused_distill",
      "sources": [
        "<!@(node -p \"const s=require('./sources.json'); s.native.concat(s.cpu, s.no_cuda).join(' ')\")"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "kernels"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-O2", "-O3"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-march=native", "-fopenmp", "-ffp-contract=fast", "-fno-trapping-math", "-fno-math-errno"],
      "ldflags": ["-fopenmp"],
      "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3"] }
    }
  ]
}
