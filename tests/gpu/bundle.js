// Bundles what the GPU check runs into standalone scripts under .gpu/ (the GPU machine has node,
// carried as .gpu/node.xz, but no node_modules), each loading the addon named by $FD_ADDON
// (else ./build/Release/fused_distill.node from the working directory):
//
//   node tests/gpu/bundle.js [--suites cuda,cuda_backend] [--no-tfjs-core] [--script SRC=OUT ...] [--out DIR] [--list]
//
//   --suites      jest suites tests/<name>.test.ts -> .gpu/fd-tests/<name>.js, run by runner.js
//                 (default: every test file with device tests, under `if (deviceTestsHere(__filename))`
//                 of tests/helpers/device.ts); run: node .gpu/fd-tests/cuda.js
//   --out         the folder to fill instead of .gpu (the bundles find their files relative to themselves)
//   --list        prints the suites it would bundle and stops
//   tfjs-core     tests/tfjs_core/run.js with tfjs-core's *_test.js files and the package's dist/
//                 -> .gpu/tfjs/tests/tfjs_core/run.js (see bundleTfjsCore); run:
//                 node .gpu/tfjs/tests/tfjs_core/run.js --backend cuda
//   --script      any script (bench/gpu/cuda_bert.js, ...) -> OUT
//
// The addon: node-gyp-build (src/native.ts's loader) is replaced by a stub that requires $FD_ADDON,
// so the real src/native.ts (its TERM_NAMES etc.) is bundled. Build dist/ first (npx tsc): the
// tfjs-core runner and the bench scripts load the package from dist/. bench/gpu/prepare.sh does all.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const esbuild = require(path.join(root, 'node_modules', 'esbuild'));
let gpuDir = path.join(root, '.gpu');
const posix = (p) => p.split(path.sep).join('/');

const addonStub = {
  name: 'addon-stub',
  setup(b) {
    b.onResolve({ filter: /^node-gyp-build$/ }, () => ({ path: 'node-gyp-build', namespace: 'addon-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'addon-stub' }, () => ({
      contents:
        "const path = require('path'); const fs = require('fs');\n" +
        'module.exports = function nodeGypBuild() {\n' +
        "  const p = path.resolve(process.env.FD_ADDON || 'build/Release/fused_distill.node');\n" +
        '  if (!fs.existsSync(p)) throw new Error(`fused-distill bundle: no addon at ${p}: set FD_ADDON to the built fused_distill.node`);\n' +
        '  return require(p);\n' +
        '};\n',
      loader: 'js',
    }));
  },
};

// In one bundle every module's `module` is the bundle's, which is require.main: a bundled source's
// "run as a script" guard (src/data/build_collection.ts) would fire inside a suite. Not in a suite.
const noMainGuards = {
  name: 'no-main-guards',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (a) => {
      const text = fs.readFileSync(a.path, 'utf8');
      return text.includes('require.main === module')
        ? { contents: text.replace(/require\.main === module/g, 'false'), loader: 'ts' }
        : undefined;
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'error',
  // whitespace only: names stay in stack traces; the carried tree must stay under 64 MiB
  minifyWhitespace: true,
  nodePaths: [path.join(root, 'node_modules')],
};

async function bundleSuite(name) {
  const outDir = path.join(gpuDir, 'fd-tests');
  fs.mkdirSync(outDir, { recursive: true });
  const test = path.join(root, 'tests', `${name}.test.ts`);
  if (!fs.existsSync(test)) throw new Error(`bundle.js: no ${path.relative(root, test)}`);
  const entry = path.join(outDir, `entry_${name}.js`);
  fs.writeFileSync(
    entry,
    `require(${JSON.stringify(path.join(__dirname, 'runner.js'))});\n` +
      `require(${JSON.stringify(test)});\n` +
      // the addon the suite used, for the runner's "device:" line (real CUDA addon or host emulation)
      `__runAll(${JSON.stringify(name)}, () => require(${JSON.stringify(path.join(root, 'src', 'native.ts'))}).addon).then((f) => process.exit(f ? 1 : 0));\n`,
  );
  try {
    await esbuild.build({
      ...common,
      entryPoints: [entry],
      outfile: path.join(outDir, `${name}.js`),
      plugins: [addonStub, noMainGuards],
    });
  } finally {
    fs.unlinkSync(entry);
  }
  return path.join(outDir, `${name}.js`);
}

function walk(dir, keep, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, keep, out);
    else if (keep(p)) out.push(p);
  }
  return out.sort();
}

/**
 * tests/tfjs_core/run.js bundled as is. It finds its files at run time, relative to itself
 * (ROOT = two folders up, tfjs-core's dist/ by require.resolve, dist/backend/... by path), so the
 * bundle sits in a stand-in package root, .gpu/tfjs, which holds only placeholders with the same
 * names (listed, stat'ed, never executed) and known_failures.json; a Module._load hook serves every
 * absolute require of a placeholder from the bundle. One copy of tfjs-core, per-file build (as
 * core_loader.js arranges at run time): '@tensorflow/tfjs-core' and '-backend-cpu' resolve to their
 * per-file ESM dist/index.js for every importer, which esbuild bundles; core_loader is not needed.
 */
async function bundleTfjsCore() {
  const fake = path.join(gpuDir, 'tfjs');
  fs.rmSync(fake, { recursive: true, force: true });
  const here = path.join(fake, 'tests', 'tfjs_core');
  fs.mkdirSync(here, { recursive: true });
  fs.copyFileSync(path.join(root, 'tests', 'tfjs_core', 'known_failures.json'), path.join(here, 'known_failures.json'));

  const perFile = {};
  for (const name of ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-cpu'])
    perFile[name] = path.join(
      path.dirname(require.resolve(`${name}/package.json`, { paths: [root] })),
      'dist',
      'index.js',
    );
  const coreDist = path.dirname(perFile['@tensorflow/tfjs-core']);
  const jasmineCore = path.join(
    path.dirname(require.resolve('jasmine-core/package.json', { paths: [root] })),
    'lib',
    'jasmine-core',
  );
  const distDir = path.join(root, 'dist');
  if (!fs.existsSync(path.join(distDir, 'index.js')))
    throw new Error('bundle.js: dist/ is missing: run npx tsc -p tsconfig.json first');

  // stand-in path (relative to the fake root) -> the real module the bundle serves for it
  const served = {};
  for (const f of walk(coreDist, (p) => p.endsWith('_test.js')))
    served[posix(path.join('node_modules/@tensorflow/tfjs-core/dist', path.relative(coreDist, f)))] = f;
  for (const f of walk(distDir, (p) => p.endsWith('.js')))
    served[posix(path.join('dist', path.relative(distDir, f)))] = f;
  const placeholder =
    "throw new Error('placeholder of the GPU bundle: the bundle serves this module; its loader hook missed it');\n";
  for (const rel of Object.keys(served)) {
    fs.mkdirSync(path.join(fake, path.dirname(rel)), { recursive: true });
    fs.writeFileSync(path.join(fake, rel), placeholder);
  }
  const corePkg = path.join(fake, 'node_modules/@tensorflow/tfjs-core');
  fs.writeFileSync(
    path.join(corePkg, 'package.json'),
    JSON.stringify({ name: '@tensorflow/tfjs-core', main: 'dist/index.js' }) + '\n',
  );
  fs.writeFileSync(path.join(corePkg, 'dist', 'jasmine_util.js'), placeholder);

  const entry = path.join(root, 'tests', 'tfjs_core', `.gpu_entry_${process.pid}.js`);
  fs.writeFileSync(
    entry,
    [
      "const Module = require('module');",
      "const path = require('path');",
      '// the stand-in root, as run.js computes ROOT (the bundle is its ROOT/tests/tfjs_core/run.js)',
      "const FAKE_ROOT = path.resolve(__dirname, '..', '..');",
      'const served = {',
      ...Object.entries(served).map(
        ([rel, real]) => `  ${JSON.stringify(rel)}: () => require(${JSON.stringify(real)}),`,
      ),
      '};',
      'const load = Module._load;',
      'Module._load = function (request, parent, isMain) {',
      '  if (path.isAbsolute(request)) {',
      "    const f = served[path.relative(FAKE_ROOT, request).split(path.sep).join('/')];",
      '    if (f) return f();',
      '  }',
      '  return load.apply(this, arguments);',
      '};',
      `require(${JSON.stringify(path.join(root, 'tests', 'tfjs_core', 'run.js'))});`,
      '',
    ].join('\n'),
  );
  const perFilePlugin = {
    name: 'tfjs-per-file',
    setup(b) {
      b.onResolve({ filter: /^@tensorflow\/tfjs-(core|backend-cpu)$/ }, (a) => ({ path: perFile[a.path] }));
      // jasmine-core's entry lists its own folder at load time (for browsers' file lists): an
      // entry without that listing ...
      b.onResolve({ filter: /^jasmine-core$/ }, () => ({ path: 'jasmine-core', namespace: 'tfjs-per-file' }));
      // run.js's esbuild-at-run-time loader: everything is transpiled already
      b.onResolve({ filter: /core_loader$/ }, () => ({ path: 'core_loader', namespace: 'tfjs-per-file' }));
      b.onLoad({ filter: /.*/, namespace: 'tfjs-per-file' }, (a) => ({
        contents:
          a.path === 'jasmine-core'
            ? // ... and needs sloppy mode (an undeclared loop variable), while the bundle is strict
              // (it holds ES modules): its two files are compiled as modules of their own.
              "const Module = require('module');\n" +
              'const sloppy = (name, src) => { const m = new Module(name); m._compile(src, name); return m.exports; };\n' +
              `module.exports = sloppy('jasmine.js', ${JSON.stringify(fs.readFileSync(path.join(jasmineCore, 'jasmine.js'), 'utf8'))});\n` +
              `module.exports.boot = sloppy('node_boot.js', ${JSON.stringify(fs.readFileSync(path.join(jasmineCore, 'node_boot.js'), 'utf8'))});\n` +
              'module.exports.files = { path: __dirname };\n'
            : 'exports.install = () => ({ packages: [], stats: () => ({ transpiled: 0, transpileMs: 0 }) });',
        loader: 'js',
        resolveDir: root,
      }));
    },
  };
  const out = path.join(here, 'run.js');
  try {
    await esbuild.build({ ...common, entryPoints: [entry], outfile: out, plugins: [perFilePlugin, addonStub] });
  } finally {
    fs.unlinkSync(entry);
  }
  return out;
}

async function bundleScript(src, out) {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  await esbuild.build({ ...common, entryPoints: [src], outfile: out, plugins: [addonStub], external: ['*.node'] });
  return out;
}

/** Every tests/<name>.test.ts with device tests (a line `if (deviceTestsHere(__filename))`): those the GPU run must run. */
function deviceSuites() {
  const dir = path.join(root, 'tests');
  const hasDeviceTests = (f) =>
    /^if \(deviceTestsHere\(__filename\)\)/m.test(fs.readFileSync(path.join(dir, f), 'utf8'));
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.test.ts') && hasDeviceTests(f))
    .map((f) => f.replace(/\.test\.ts$/, ''))
    .sort();
}

function parseArgs(argv) {
  const a = { suites: null, tfjsCore: true, scripts: [], list: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--suites') a.suites = argv[++i].split(',').filter(Boolean);
    else if (argv[i] === '--no-tfjs-core') a.tfjsCore = false;
    else if (argv[i] === '--out') gpuDir = path.resolve(argv[++i]);
    else if (argv[i] === '--list') a.list = true;
    else if (argv[i] === '--script') {
      const [src, out] = argv[++i].split('=');
      if (!src || !out) throw new Error(`bundle.js: --script SRC=OUT, got ${argv[i]}`);
      a.scripts.push([path.resolve(root, src), path.resolve(root, out)]);
    } else throw new Error(`bundle.js: unknown argument ${argv[i]}`);
  }
  a.suites ??= deviceSuites();
  return a;
}

(async () => {
  const a = parseArgs(process.argv.slice(2));
  if (a.list) {
    console.log(a.suites.join('\n'));
    return;
  }
  const done = [];
  for (const name of a.suites) done.push(await bundleSuite(name));
  if (a.tfjsCore) done.push(await bundleTfjsCore());
  for (const [src, out] of a.scripts) done.push(await bundleScript(src, out));
  for (const f of done)
    console.log(`bundled ${path.relative(root, f)} (${(fs.statSync(f).size / 1048576).toFixed(1)} MiB)`);
})().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
