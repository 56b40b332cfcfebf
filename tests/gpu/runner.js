// Minimal jest-compatible runner (describe/test/.each/hooks + jest's expect) for the bundles made by
// bundle.js: the GPU machine has node (carried) but no node_modules, so jest cannot run there.
// Output: "PASS name (ms)", "FAIL name" + the message, "SKIP name [how]" for test.skip, todo and every
// test inside describe.skip (counted, never run, as jest counts them), then "== LABEL device: WHERE"
// (the real CUDA addon on a GPU, or the host emulation) and "== LABEL: P passed, F failed, S skipped".
const { expect } = require('expect');
globalThis.expect = expect;
const util = require('util');
function fmt(name, row, idx) {
  const args = Array.isArray(row) ? row : [row];
  let i = 0;
  const out = name.replace(/%[sdipjo#%]/g, (m) => {
    if (m === '%%') return '%';
    if (m === '%#') return String(idx);
    const v = args[i++];
    if (m === '%p') return util.inspect(v);
    if (m === '%i' || m === '%d') return String(Math.trunc(Number(v)));
    return String(v);
  });
  return out;
}
const spread = (row) => (Array.isArray(row) ? row : [row]);
// skip: why the suite's tests are not run ('describe.skip', inherited by nested suites), or null
function makeSuite(name, parent, skip) {
  return { name, parent, skip, children: [], beforeAll: [], afterAll: [], beforeEach: [], afterEach: [] };
}
const root = makeSuite('', null, null);
let cur = root;
function addSuite(name, fn, skip) {
  const s = makeSuite(name, cur, skip || cur.skip);
  cur.children.push({ suite: s });
  const prev = cur;
  cur = s;
  fn();
  cur = prev;
}
function describe(name, fn) {
  addSuite(name, fn, null);
}
describe.each = (table) => (name, fn) =>
  table.forEach((row, i) => describe(fmt(name, row, i), () => fn(...spread(row))));
describe.skip = (name, fn) => addSuite(name, fn, 'describe.skip');
describe.skip.each = (table) => (name, fn) =>
  table.forEach((row, i) => describe.skip(fmt(name, row, i), () => fn(...spread(row))));
const skip = (name, how) => cur.children.push({ skip: name, how });
function test(name, fn) {
  if (cur.skip) skip(name, cur.skip);
  else cur.children.push({ test: { name, fn } });
}
test.each = (table) => (name, fn) => table.forEach((row, i) => test(fmt(name, row, i), () => fn(...spread(row))));
// skipped tests are counted, not run (as jest reports them)
test.skip = (name) => skip(name, 'test.skip');
test.skip.each = (table) => (name) => table.forEach((row, i) => test.skip(fmt(name, row, i)));
test.todo = (name) => skip(name, 'todo');
globalThis.describe = describe;
globalThis.test = test;
globalThis.it = test;
globalThis.xdescribe = describe.skip;
globalThis.xtest = test.skip;
globalThis.xit = test.skip;
globalThis.jest = { setTimeout: () => {} };
globalThis.beforeAll = (f) => cur.beforeAll.push(f);
globalThis.afterAll = (f) => cur.afterAll.push(f);
globalThis.beforeEach = (f) => cur.beforeEach.push(f);
globalThis.afterEach = (f) => cur.afterEach.push(f);
let pass = 0,
  fail = 0,
  skipped = 0;
function chain(s) {
  const c = [];
  for (let x = s; x; x = x.parent) c.unshift(x);
  return c;
}
async function run(s, path) {
  // a skipped suite runs no hook (its tests are only counted)
  if (!s.skip) for (const f of s.beforeAll) await f();
  for (const ch of s.children) {
    if (ch.suite) {
      await run(ch.suite, [...path, ch.suite.name]);
      continue;
    }
    if (ch.skip != null) {
      skipped++;
      console.log(`SKIP ${[...path, ch.skip].filter(Boolean).join(' > ')} [${ch.how}]`);
      continue;
    }
    const full = [...path, ch.test.name].filter(Boolean).join(' > ');
    const t0 = Date.now();
    try {
      for (const x of chain(s)) for (const f of x.beforeEach) await f();
      await ch.test.fn();
      for (const x of chain(s).reverse()) for (const f of x.afterEach) await f();
      pass++;
      console.log(`PASS ${full} (${Date.now() - t0} ms)`);
    } catch (e) {
      fail++;
      console.log(
        `FAIL ${full}\n    ${String((e && e.message) || e)
          .split('\n')
          .join('\n    ')}`,
      );
      try {
        for (const x of chain(s).reverse()) for (const f of x.afterEach) await f();
      } catch {
        // an afterEach that fails after a failed test: the test's own error is the one reported
      }
    }
  }
  if (!s.skip) for (const f of s.afterAll) await f();
}
/** Where the suite's device calls went: the addon says whether it is a CUDA build and what answers. */
function deviceOf(getAddon) {
  try {
    const addon = getAddon();
    const cuda = addon.cuda;
    if (!cuda.isAvailable()) return `none (${addon.builtWithCuda() ? 'CUDA build' : 'CPU build'}: ${cuda.lastError()})`;
    return addon.builtWithCuda()
      ? `real CUDA addon on ${cuda.deviceName()}`
      : 'host emulation (CPU build, FUSED_DISTILL_EMULATE_DEVICE=1)';
  } catch (e) {
    return `unknown (the addon did not load: ${String((e && e.message) || e).split('\n')[0]})`;
  }
}
/** Runs every test defined so far; getAddon returns the addon the suite uses (bundle.js passes src/native's). */
globalThis.__runAll = async (label, getAddon) => {
  console.log(`== ${label} device: ${deviceOf(getAddon)}`);
  await run(root, []);
  console.log(`== ${label}: ${pass} passed, ${fail} failed, ${skipped} skipped`);
  return fail;
};
