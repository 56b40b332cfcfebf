# CPU build, run by `npm install` (node-gyp-build). The CUDA build is CMakeLists.txt (cmake-js).
# Both read the list of sources from sources.json.
# fused_distill_mpi is a separate, optional addon (src/distributed/mpi.ts) so that the main one never
# depends on libmpi: built over MPI where native/mpi/mpi_flags.js finds it, else from its stub. Its
# name sorts after fused_distill.node, the first .node file node-gyp-build takes from build/Release.
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
    },
    {
      "target_name": "fused_distill_mpi",
      "variables": { "mpi_found": "<!(node native/mpi/mpi_flags.js found)" },
      "sources": ["<!@(node -p \"require('./sources.json').mpi_addon.join(' ')\")"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions"],
      "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CPLUSPLUSFLAGS": ["-std=c++17"] },
      "conditions": [
        [
          "mpi_found==1",
          {
            "sources": ["<!@(node -p \"require('./sources.json').mpi.join(' ')\")"],
            "cflags_cc": ["<!@(node native/mpi/mpi_flags.js cflags)"],
            "libraries": ["<!@(node native/mpi/mpi_flags.js libs)", "-ldl"]
          },
          { "sources": ["<!@(node -p \"require('./sources.json').no_mpi.join(' ')\")"] }
        ]
      ]
    }
  ]
}
