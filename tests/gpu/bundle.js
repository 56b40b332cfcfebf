// Bundles the addon-level suites (cuda, fuzz, addon_kernels) into standalone scripts under .gpu/fd-tests/
// so they can run on the GPU machine (no node_modules there) against a CUDA build of the addon:
//
//   here:   node tests/gpu/bundle.js            (needs node_modules; .gpu/node.xz from /work/shared/gpu/pack-node.sh)
//   there:  xz -dc .gpu/node.xz > /tmp/node && chmod +x /tmp/node && export PATH=/tmp:$PATH
//           cmake -S . -B build-cuda -DWITH_CUDA=ON \
//             -DNAPI_INCLUDE_DIRS="$PWD/.gpu/node-api-headers/include;$PWD/.gpu/node-addon-api"
//           cmake --build build-cuda -j 16
//           export FD_ADDON=$PWD/build-cuda/Release/fused_distill.node
//           for t in cuda fuzz addon_kernels; do node .gpu/fd-tests/$t.js; done     (carry ".gpu")
//
// src/native is replaced by a stub that loads the addon named by $FD_ADDON.
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const esbuild = require(path.join(root, 'node_modules', 'esbuild'));
const outDir = path.join(root, '.gpu', 'fd-tests');

const stub = {
  name: 'native-stub',
  setup(b) {
    b.onResolve({ filter: /src\/native$/ }, () => ({ path: 'native-stub', namespace: 'stub' }));
    b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({
      contents: "const p = process.env.FD_ADDON; if (!p) throw new Error('set FD_ADDON to the .node file'); exports.addon = require(p);",
      loader: 'js',
    }));
  },
};

(async () => {
  fs.mkdirSync(outDir, { recursive: true });
  const names = process.argv.length > 2 ? process.argv.slice(2) : ['cuda', 'fuzz', 'addon_kernels'];
  for (const name of names) {
    const entry = path.join(outDir, `entry_${name}.js`);
    fs.writeFileSync(
      entry,
      `require(${JSON.stringify(path.join(__dirname, 'runner.js'))});\n` +
        `require(${JSON.stringify(path.join(root, 'tests', `${name}.test.ts`))});\n` +
        `__runAll(${JSON.stringify(name)}).then((f) => process.exit(f ? 1 : 0));\n`,
    );
    await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      target: 'node20',
      outfile: path.join(outDir, `${name}.js`),
      plugins: [stub],
      logLevel: 'warning',
      nodePaths: [path.join(root, 'node_modules')],
    });
    fs.unlinkSync(entry);
    console.log(`bundled tests/${name}.test.ts -> ${path.relative(root, path.join(outDir, name + '.js'))}`);
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
