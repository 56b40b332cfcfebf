// Makes the test files that @tensorflow/tfjs-core ships in its npm package loadable under Node's
// CommonJS require, with ONE copy of tfjs-core in the process.
//
// tfjs-core 4.x publishes its per-file build (dist/**/*.js, the *_test.js files among them) as ES
// modules (ES2017) with extensionless relative imports, which neither `require` nor Node's ESM
// loader accepts; only its bundles (dist/tf-core.node.js, ...) are CommonJS. tfjs's own node test
// runs use a per-file CommonJS build of the same sources, where the tests and everything that
// imports '@tensorflow/tfjs-core' share one copy of the library. This hook reproduces that:
//   - '@tensorflow/tfjs-core' resolves to its per-file build (dist/index.js) for every importer:
//     the tfjs union package, this package's dist/, the test files;
//   - so does '@tensorflow/tfjs-backend-cpu': its node bundle is ES5 and its MathBackendCPU
//     (which the 'native' backend extends) cannot call the ES2017 `class KernelBackend` of the
//     per-file core as a function ("Class constructor KernelBackend cannot be invoked without
//     'new'"); its per-file build is the same source compiled to ES2017, like core's;
//   - every per-file module of those two packages is transpiled ESM -> CommonJS (syntax only,
//     target node18) with esbuild, a devDependency of this package, when it is first required.
// Neither package's bundle is ever loaded, so the engine, the kernel registry, the Tensor class
// and the environment flags are the ones the tests import. (The other packages the tfjs union
// loads — layers, converter, data, webgl — stay their node bundles; tfjs-core's tests don't use
// them.)
'use strict';

const fs = require('fs');
const Module = require('module');
const path = require('path');

const PER_FILE_PACKAGES = ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-cpu'];

let installed = null;

function install() {
  if (installed) return installed;
  const esbuild = require('esbuild');

  const packages = PER_FILE_PACKAGES.map((name) => {
    const dist = path.join(path.dirname(require.resolve(`${name}/package.json`)), 'dist');
    return { name, dist: dist + path.sep, index: path.join(dist, 'index.js') };
  });

  // Bundles (tf-core*.js, tf-backend-cpu*.js, miniprogram/) are CommonJS or UMD already; every
  // other .js file under those dist/ folders belongs to the per-file ESM build.
  const isPerFileModule = (filename) =>
    filename.endsWith('.js') &&
    packages.some(
      (p) =>
        filename.startsWith(p.dist) &&
        !/^tf-[\w-]+(\.[\w-]+)*\.js$/.test(path.basename(filename)) &&
        !filename.startsWith(path.join(p.dist, 'miniprogram') + path.sep),
    );

  const originalResolve = Module._resolveFilename;
  Module._resolveFilename = function (request, parent, isMain, options) {
    const p = packages.find((q) => q.name === request);
    if (p) return p.index;
    return originalResolve.call(this, request, parent, isMain, options);
  };

  const originalJs = Module._extensions['.js'];
  let transpiled = 0;
  let transpileMs = 0;
  Module._extensions['.js'] = function (module, filename) {
    if (!isPerFileModule(filename)) return originalJs(module, filename);
    const start = performance.now();
    const { code } = esbuild.transformSync(fs.readFileSync(filename, 'utf8'), {
      loader: 'js',
      format: 'cjs',
      target: 'node18',
      sourcefile: filename,
    });
    transpiled += 1;
    transpileMs += performance.now() - start;
    module._compile(code, filename);
  };

  installed = {
    packages: packages.map((p) => p.index),
    stats: () => ({ transpiled, transpileMs: Math.round(transpileMs) }),
  };
  return installed;
}

module.exports = { install };
