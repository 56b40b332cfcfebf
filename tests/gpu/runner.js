// Minimal jest-compatible runner (describe/test/.each/hooks + jest's expect) for the bundles made by
// bundle.js: the GPU machine has node (carried) but no node_modules, so jest cannot run there.
const { expect } = require('expect');
globalThis.expect = expect;
const util = require('util');
function fmt(name, row, idx) {
  const args = Array.isArray(row) ? row : [row];
  let i = 0;
  let out = name.replace(/%[sdipjo#%]/g, (m) => {
    if (m === '%%') return '%';
    if (m === '%#') return String(idx);
    const v = args[i++];
    if (m === '%p') return util.inspect(v);
    if (m === '%i' || m === '%d') return String(Math.trunc(Number(v)));
    return String(v);
  });
  return out;
}
function makeSuite(name, parent) {
  return { name, parent, children: [], beforeAll: [], afterAll: [], beforeEach: [], afterEach: [] };
}
const root = makeSuite('', null);
let cur = root;
function describe(name, fn) {
  const s = makeSuite(name, cur);
  cur.children.push({ suite: s });
  const prev = cur; cur = s; fn(); cur = prev;
}
describe.each = (table) => (name, fn) => table.forEach((row, i) => describe(fmt(name, row, i), () => fn(...(Array.isArray(row) ? row : [row]))));
describe.skip = () => {};
function test(name, fn) { cur.children.push({ test: { name, fn } }); }
test.each = (table) => (name, fn) => table.forEach((row, i) => test(fmt(name, row, i), () => fn(...(Array.isArray(row) ? row : [row]))));
// skipped tests are counted, not run (as jest reports them)
test.skip = (name) => cur.children.push({ skip: name });
test.skip.each = (table) => (name) => table.forEach((row, i) => test.skip(fmt(name, row, i)));
test.todo = test.skip;
globalThis.describe = describe; globalThis.test = test; globalThis.it = test;
globalThis.jest = { setTimeout: () => {} };
globalThis.beforeAll = (f) => cur.beforeAll.push(f);
globalThis.afterAll = (f) => cur.afterAll.push(f);
globalThis.beforeEach = (f) => cur.beforeEach.push(f);
globalThis.afterEach = (f) => cur.afterEach.push(f);
let pass = 0, fail = 0, skipped = 0;
function chain(s) { const c = []; for (let x = s; x; x = x.parent) c.unshift(x); return c; }
async function run(s, path) {
  for (const f of s.beforeAll) await f();
  for (const ch of s.children) {
    if (ch.suite) { await run(ch.suite, [...path, ch.suite.name]); continue; }
    if (ch.skip != null) { skipped++; console.log(`SKIP ${[...path, ch.skip].filter(Boolean).join(' > ')}`); continue; }
    const full = [...path, ch.test.name].filter(Boolean).join(' > ');
    const t0 = Date.now();
    try {
      for (const x of chain(s)) for (const f of x.beforeEach) await f();
      await ch.test.fn();
      for (const x of chain(s).reverse()) for (const f of x.afterEach) await f();
      pass++; console.log(`PASS ${full} (${Date.now() - t0} ms)`);
    } catch (e) {
      fail++; console.log(`FAIL ${full}\n    ${String(e && e.message || e).split('\n').join('\n    ')}`);
      try { for (const x of chain(s).reverse()) for (const f of x.afterEach) await f(); } catch {}
    }
  }
  for (const f of s.afterAll) await f();
}
globalThis.__runAll = async (label) => {
  await run(root, []);
  console.log(`== ${label}: ${pass} passed, ${fail} failed, ${skipped} skipped`);
  return fail;
};
