#!/usr/bin/env node
// Runs the op/kernel test suite that ships inside @tensorflow/tfjs-core (dist/**/*_test.js) against
// a tfjs backend — this package's 'native' backend, or stock 'cpu' as the baseline — the way tfjs's
// own backends run it: jasmine, with tfjs-core's jasmine_util test environment for that backend
// (setTestEnvs / setupTestFilters; every describeWithFlags suite then runs on it).
//
//   node tests/tfjs_core/run.js [--backend native|native-mem|cuda|cpu|...,...] [--filter REGEX]
//                               [--no-check] [--all-files] [--known-failures FILE]
//   (or TFJS_TEST_BACKEND=native,native-mem,cpu; default: native)
//
// 'native-mem' is the 'native' backend with every tensor's data in addon memory: each write()
// whose values are not already a view of an addon block is copied into a new one, as if every
// kernel were native. Today only the fused-loss kernels allocate addon memory, so plain 'native'
// runs almost all of the suite on JS arrays; this variant puts the backend's own plumbing (blocks
// shared by several dataIds, freed and detached on the last dispose, readSync copies) under every
// op of the suite. Its specs are named like 'native''s (the backend is the same) and it writes
// results-native-mem.json.
//
// 'cuda' is this package's device backend (src/backend/cuda): it needs a device, or the addon's host
// emulation (FUSED_DISTILL_EMULATE_DEVICE=1).
//
// One backend runs in this process; several run one after another, each in its own process (a
// backend's run must not see the other's registration), and a comparison follows. Per backend it
// prints the totals and the failing specs, and writes tests/tfjs_core/results-<backend>.json
// (atomically). The exit status is non-zero when a spec fails that known_failures.json does not
// list for that backend, or when a listed failure passes (or no longer exists) — so the list stays
// honest; --no-check only reports. Needs the build: `npm run build:native && npm run build`.
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const HERE = __dirname;
const KNOWN_FAILURES_FILE = path.join(HERE, 'known_failures.json');
const BACKENDS = ['native', 'native-mem', 'cuda', 'cpu'];

// Test files not loaded, with why: the ones that exercise no backend. tfjs-backend-cpu's own runner
// loads all 265 (its dist/tests.js list; tfjs keeps its worker and platform_node tests out of that
// list already) and relies on describeWithFlags constraints to drop the browser suites; these are
// the files whose specs, in Node, would test IO, browser APIs or version strings rather than a
// backend. `--all-files` loads them too (they pass on every backend here).
const BROWSER_ONLY =
  'browser-only: every suite is constrained to BROWSER_ENVS/CHROME_ENVS (IndexedDB, localStorage, canvas, file downloads, window), so in Node it defines no spec at all';
const EXCLUDED_FILES = [
  { file: 'io/browser_files_test.js', reason: BROWSER_ONLY },
  { file: 'io/indexed_db_test.js', reason: BROWSER_ONLY },
  { file: 'io/local_storage_test.js', reason: BROWSER_ONLY },
  { file: 'io/model_management_test.js', reason: BROWSER_ONLY },
  { file: 'io/passthrough_test.js', reason: BROWSER_ONLY },
  { file: 'io/router_registry_test.js', reason: BROWSER_ONLY },
  { file: 'io/weights_loader_test.js', reason: BROWSER_ONLY },
  { file: 'platforms/platform_browser_test.js', reason: BROWSER_ONLY },
  { file: 'ops/draw_test.js', reason: BROWSER_ONLY },
  {
    file: 'ops/image/rotate_with_offset_test.js',
    reason: BROWSER_ONLY + ' (tfjs tests rotateWithOffset on WebGL only)',
  },
  { file: 'io/http_test.js', reason: 'IO only: HTTP model loading against a mocked fetch; no tensor op' },
  { file: 'io/composite_array_buffer_test.js', reason: 'IO only: byte-buffer slicing for weight files; no tensor' },
  { file: 'io/progress_test.js', reason: 'IO only: progress-callback arithmetic of model loading; no tensor' },
  {
    file: 'browser_util_test.js',
    reason: 'environment only: nextFrame() timing (requestAnimationFrame/setTimeout); no tensor',
  },
  { file: 'device_util_test.js', reason: 'environment only: user-agent sniffing (isMobile); no tensor' },
  {
    file: 'version_test.js',
    reason: "checks tfjs-core's version string; no tensor (tfjs-node's runner ignores it too)",
  },
];

// Spec name substrings not run, with why (tfjs's setupTestFilters `customInclude`). None: every spec
// of the loaded files runs. (The two specs of engine_test's 'Switching cpu backends' are constrained
// by tfjs to backendName === 'cpu', so they exist on the cpu baseline only.)
const EXCLUDED_SPECS = [];

function parseArgs(argv) {
  const args = {
    backends: null,
    filter: null,
    check: true,
    child: false,
    allFiles: false,
    knownFailures: KNOWN_FAILURES_FILE,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--backend' || a === '--backends') args.backends = argv[++i];
    else if (a.startsWith('--backend=')) args.backends = a.slice('--backend='.length);
    else if (a === '--filter' || a === '--grep') args.filter = argv[++i];
    else if (a.startsWith('--filter=')) args.filter = a.slice('--filter='.length);
    else if (a === '--no-check') args.check = false;
    else if (a === '--all-files') args.allFiles = true;
    else if (a === '--known-failures') args.knownFailures = path.resolve(argv[++i]);
    else if (a === '--child') args.child = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(fs.readFileSync(__filename, 'utf8').split('\n').slice(1, 24).join('\n') + '\n');
      process.exit(0);
    } else throw new Error(`run.js: unknown argument ${a}`);
  }
  const list = (args.backends ?? process.env.TFJS_TEST_BACKEND ?? 'native')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const b of list)
    if (!BACKENDS.includes(b)) throw new Error(`run.js: unknown backend '${b}' (one of ${BACKENDS.join(', ')})`);
  args.backends = [...new Set(list)];
  return args;
}

/** A spec's full name as it reads on another backend (describeWithFlags names carry the env name). */
function renameForBackend(name, backend) {
  return name.split(' native {').join(` ${backend} {`);
}

/** Registers the 'cuda' backend from dist/; returns its kernel names and the device. */
function setUpCuda() {
  const registerJs = path.join(ROOT, 'dist', 'backend', 'cuda', 'register.js');
  if (!fs.existsSync(registerJs))
    throw new Error(`run.js: ${path.relative(ROOT, registerJs)} is missing: build first (npm run build)`);
  const reg = require(registerJs);
  let device = null;
  if (reg.cudaAvailable()) device = require(path.join(ROOT, 'dist', 'native.js')).addon.cuda.deviceName();
  else
    throw new Error(
      `run.js: no CUDA device answers (${require(path.join(ROOT, 'dist', 'native.js')).addon.cuda.lastError()}); set FUSED_DISTILL_EMULATE_DEVICE=1 on a build without CUDA`,
    );
  if (!reg.registerCudaBackend()) throw new Error('run.js: the cuda backend did not register');
  return { kernels: reg.cudaKernelNames(), device };
}

function loadKnownFailures(file_, variant, backend) {
  const file = JSON.parse(fs.readFileSync(file_, 'utf8'));
  const map = new Map();
  for (const e of file.failures) {
    if (!e.spec || !e.reason || !Array.isArray(e.failsOn))
      throw new Error(`known_failures.json: entry needs spec, reason, failsOn: ${JSON.stringify(e)}`);
    if (e.failsOn.includes(variant)) map.set(renameForBackend(e.spec, backend), e);
  }
  return map;
}

function writeJsonAtomic(file, value) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

function listTestFiles(coreDist) {
  const out = [];
  (function walk(dir) {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('_test.js')) out.push(path.relative(coreDist, p).split(path.sep).join('/'));
    }
  })(coreDist);
  return out.sort();
}

// ---------------------------------------------------------------------------------------------
// One backend, in this process.

/** native-mem: every write()/move() of numeric values not already in an addon block copies them into one. */
function putAllDataInNativeMemory(NativeBackend) {
  const dtypeOf = (v) =>
    v instanceof Float32Array ? 'float32' : v instanceof Int32Array ? 'int32' : v instanceof Uint8Array ? 'bool' : null;
  const toNative = (backend, values) => {
    const dtype = dtypeOf(values);
    if (!dtype || values.length === 0 || backend.allocated.has(values.buffer)) return values;
    const copy = backend.allocate(dtype, values.length);
    copy.set(values);
    return copy;
  };
  const { write, move } = NativeBackend.prototype;
  NativeBackend.prototype.write = function (values, shape, dtype) {
    return write.call(this, toNative(this, values), shape, dtype);
  };
  NativeBackend.prototype.move = function (dataId, values, shape, dtype, refCount) {
    return move.call(this, dataId, toNative(this, values), shape, dtype, refCount);
  };
}

async function runOne(variant, args) {
  const started = Date.now();
  const backend = variant === 'native-mem' ? 'native' : variant;
  const loader = require('./core_loader').install();

  // jasmine first: it defines describe/it/expect, which the test files use as they load.
  const Jasmine = require('jasmine');
  const runner = new Jasmine({ projectBaseDir: ROOT });
  runner.exitOnCompletion = false;
  runner.loadConfig({ random: false, spec_files: [], helpers: [] });
  runner.clearReporters();
  jasmine.DEFAULT_TIMEOUT_INTERVAL = 60000;

  // tfjs (the union package: what this package's code imports), then the backend under test.
  const tf = require('@tensorflow/tfjs');
  require('@tensorflow/tfjs-backend-cpu');
  // As tfjs's own backend test setups do: every gradient and every chained op (t.add(...)).
  require('@tensorflow/tfjs-core/dist/register_all_gradients');
  require('@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops');
  let nativeKernels = null;
  if (backend === 'native') {
    const registerJs = path.join(ROOT, 'dist', 'backend', 'native', 'register.js');
    if (!fs.existsSync(registerJs))
      throw new Error(
        `run.js: ${path.relative(ROOT, registerJs)} is missing: build first (npm run build:native && npm run build)`,
      );
    const reg = require(registerJs);
    reg.registerNativeBackend();
    nativeKernels = reg.nativeKernelNames();
    if (variant === 'native-mem')
      putAllDataInNativeMemory(require(path.join(ROOT, 'dist', 'backend', 'native', 'backend.js')).NativeBackend);
  }
  let device = null;
  if (backend === 'cuda') ({ kernels: nativeKernels, device } = setUpCuda());

  const jasmineUtil = require('@tensorflow/tfjs-core/dist/jasmine_util');
  jasmineUtil.setTestEnvs([{ name: backend, backendName: backend, flags: {}, isDataSync: true }]);
  const env = jasmine.getEnv();
  if (args.filter) {
    const re = new RegExp(args.filter);
    env.configure({ specFilter: (spec) => re.test(spec.getFullName()) });
  }
  const excludedBy = (name) => EXCLUDED_SPECS.find((e) => name.includes(e.match));
  jasmineUtil.setupTestFilters([], (name) => !excludedBy(name));

  // Results.
  const specs = [];
  const suiteErrors = [];
  let specStart = 0;
  let count = 0;
  const progress = (s) => process.stdout.write(s);
  env.addReporter({
    specStarted() {
      specStart = performance.now();
    },
    specDone(r) {
      const ms = performance.now() - specStart;
      const messages = (r.failedExpectations || []).map((f) => String(f.message).slice(0, 600));
      specs.push({
        name: r.fullName,
        status: r.status,
        ms: r.status === 'excluded' ? 0 : Math.round(ms * 10) / 10,
        messages,
      });
      if (r.status === 'failed') progress(`\n  FAILED ${r.fullName}\n    ${messages[0] ?? ''}\n`);
      if (r.status !== 'excluded' && ++count % 1000 === 0)
        progress(`  ${count} specs run (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    },
    suiteDone(r) {
      if (r.failedExpectations && r.failedExpectations.length)
        suiteErrors.push({
          name: `${r.fullName} (suite: beforeAll/afterAll)`,
          status: 'failed',
          messages: r.failedExpectations.map((f) => String(f.message).slice(0, 600)),
        });
    },
  });

  // The test files.
  const coreDist = path.dirname(require.resolve('@tensorflow/tfjs-core/dist/jasmine_util'));
  const allFiles = listTestFiles(coreDist);
  const excludedFiles = new Map(args.allFiles ? [] : EXCLUDED_FILES.map((e) => [e.file, e.reason]));
  for (const f of excludedFiles.keys())
    if (!allFiles.includes(f))
      throw new Error(`run.js: excluded file ${f} is not in tfjs-core ${coreDist}: update EXCLUDED_FILES`);
  const loadErrors = [];
  const loaded = [];
  // Specs each file defines here (suites whose describeWithFlags constraints rule this backend out
  // — browser, WebGL, async backends — define none).
  const specsPerFile = {};
  let defined = 0;
  for (const fn of ['it', 'xit', 'fit']) {
    const orig = global[fn];
    global[fn] = function (...a) {
      defined += 1;
      return orig.apply(this, a);
    };
  }
  for (const f of allFiles) {
    if (excludedFiles.has(f)) continue;
    try {
      const before = defined;
      require(path.join(coreDist, f));
      specsPerFile[f] = defined - before;
      loaded.push(f);
    } catch (e) {
      loadErrors.push({
        name: `(load) ${f}`,
        status: 'failed',
        messages: [String((e && e.stack) || e).slice(0, 1000)],
      });
    }
  }
  const loadMs = Date.now() - started;
  progress(
    `tfjs-core ${tf.version_core} op tests on '${variant}': ${loaded.length}/${allFiles.length} test files loaded in ${(loadMs / 1000).toFixed(1)} s ` +
      `(${loader.stats().transpiled} tfjs modules transpiled in ${(loader.stats().transpileMs / 1000).toFixed(1)} s)\n`,
  );

  const done = await runner.execute();
  const globalErrors = ((done && done.failedExpectations) || []).map((f) => ({
    name: '(global error)',
    status: 'failed',
    messages: [String(f.message).slice(0, 600)],
  }));
  const seconds = (Date.now() - started) / 1000;

  // Totals and the check against known_failures.json.
  const by = (st) => specs.filter((s) => s.status === st);
  const failures = [...by('failed'), ...suiteErrors, ...globalErrors, ...loadErrors];
  const known = args.check ? loadKnownFailures(args.knownFailures, variant, backend) : new Map();
  const seen = new Set(specs.map((s) => s.name));
  const ranSpecs = specs.filter((s) => s.status === 'passed' || s.status === 'failed');
  const ran = new Set(ranSpecs.map((s) => s.name));
  const failedNames = new Set(failures.map((f) => f.name));
  const unexpected = failures.filter((f) => !known.has(f.name));
  const nowPassing = [...known.keys()].filter((n) => ran.has(n) && !failedNames.has(n));
  // A listed spec that no longer exists (renamed, or the suite changed) is stale: only decidable on
  // an unfiltered run.
  const missing = args.filter ? [] : [...known.keys()].filter((n) => !seen.has(n));
  const slowest = specs
    .filter((s) => s.status !== 'excluded')
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 15)
    .map((s) => ({ name: s.name, ms: s.ms }));
  const totals = {
    specs: specs.length,
    run: ranSpecs.length,
    passed: by('passed').length,
    failed: failures.length,
    knownFailures: failures.length - unexpected.length,
    pending: by('pending').length,
    excluded: by('excluded').length,
  };
  const ok = args.check ? unexpected.length === 0 && nowPassing.length === 0 && missing.length === 0 : true;
  const summary = {
    backend: variant,
    ok,
    tfjsCore: tf.version_core,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
    seconds: Math.round(seconds * 10) / 10,
    filter: args.filter,
    totals,
    nativeKernels,
    device,
    testFiles: {
      total: allFiles.length,
      loaded: loaded.length,
      excluded: args.allFiles ? [] : EXCLUDED_FILES,
      loadErrors: loadErrors.length,
      withoutSpecsHere: Object.keys(specsPerFile).filter((f) => specsPerFile[f] === 0),
      specsPerFile,
    },
    excludedSpecs: EXCLUDED_SPECS.map((e) => ({
      ...e,
      specs: specs.filter((s) => s.status === 'excluded' && s.name.includes(e.match)).length,
    })),
    failures: failures.map((f) => ({
      name: f.name,
      known: known.has(f.name),
      reason: known.get(f.name)?.reason,
      messages: f.messages,
    })),
    unexpectedFailures: unexpected.map((f) => f.name),
    knownFailuresNowPassing: nowPassing,
    knownFailuresMissing: missing,
    pendingSpecs: by('pending').map((s) => s.name),
    slowest,
  };
  writeJsonAtomic(path.join(HERE, `results-${variant}.json`), summary);

  const lines = [];
  lines.push('');
  lines.push(`tfjs-core ${tf.version_core} op tests on '${variant}' (${seconds.toFixed(1)} s):`);
  lines.push(
    `  specs ${totals.specs}: ran ${totals.run}, passed ${totals.passed}, failed ${totals.failed} ` +
      `(known ${totals.knownFailures}), pending ${totals.pending}, excluded/skipped ${totals.excluded}`,
  );
  if (nativeKernels)
    lines.push(
      `  ${backend === 'cuda' ? 'device' : 'native'} kernels registered (${nativeKernels.length}): ${nativeKernels.join(', ') || '(none)'}`,
    );
  if (device) lines.push(`  device: ${device}`);
  for (const f of failures)
    lines.push(
      `  ${known.has(f.name) ? 'known  ' : 'FAILED '} ${f.name}${known.has(f.name) ? ` — ${known.get(f.name).reason}` : `\n            ${(f.messages[0] ?? '').split('\n')[0]}`}`,
    );
  for (const n of nowPassing) lines.push(`  PASSES  ${n} — listed in known_failures.json: remove it`);
  for (const n of missing) lines.push(`  MISSING ${n} — listed in known_failures.json but no such spec ran: update it`);
  lines.push(
    `  ${ok ? 'OK' : 'NOT OK'}: results in ${path.relative(ROOT, path.join(HERE, `results-${variant}.json`))}`,
  );
  process.stdout.write(lines.join('\n') + '\n');
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// Several backends: one child process each, then the comparison.

function runMany(args) {
  let status = 0;
  const results = {};
  for (const b of args.backends) {
    const childArgs = [__filename, '--child', '--backend', b];
    if (args.filter) childArgs.push('--filter', args.filter);
    if (!args.check) childArgs.push('--no-check');
    if (args.allFiles) childArgs.push('--all-files');
    if (args.knownFailures !== KNOWN_FAILURES_FILE) childArgs.push('--known-failures', args.knownFailures);
    const r = spawnSync(process.execPath, childArgs, { stdio: 'inherit', cwd: ROOT });
    if (r.status !== 0) status = 1;
    const file = path.join(HERE, `results-${b}.json`);
    if (fs.existsSync(file)) results[b] = JSON.parse(fs.readFileSync(file, 'utf8'));
  }
  const names = Object.keys(results);
  if (names.length > 1) {
    const lines = ['', 'Same run, side by side:'];
    for (const b of names) {
      const t = results[b].totals;
      lines.push(
        `  ${b.padEnd(10)} specs ${t.specs}, ran ${t.run}, passed ${t.passed}, failed ${t.failed}, pending ${t.pending}, excluded ${t.excluded}, ${results[b].seconds} s`,
      );
    }
    if (results.cpu) {
      const cpuFailed = new Set(results.cpu.failures.map((f) => f.name));
      for (const b of names.filter((n) => n !== 'cpu')) {
        const failed = results[b].failures.map((f) => f.name);
        const only = failed.filter((n) => !cpuFailed.has(renameForBackend(n, 'cpu')));
        const cpuOnly = [...cpuFailed].filter((n) => !failed.some((m) => renameForBackend(m, 'cpu') === n));
        lines.push(`  failing on ${b} but not on cpu (${only.length}):${only.map((n) => `\n    ${n}`).join('')}`);
        lines.push(`  failing on cpu but not on ${b} (${cpuOnly.length}):${cpuOnly.map((n) => `\n    ${n}`).join('')}`);
      }
    }
    process.stdout.write(lines.join('\n') + '\n');
  }
  return status;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.backends.length === 1) return runOne(args.backends[0], args);
  return runMany(args);
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`run.js: ${(e && e.stack) || e}\n`);
    process.exit(2);
  },
);
