// Runs the sgemm cases of a directory written by tests/sgemm.test.ts in a fresh process, so that
// FUSED_DISTILL_GEMM_ISA (read by the addon from the real environment, which jest's sandboxed
// process.env does not reach) picks the path. Reads DIR/cases.json (a case may name a precision,
// 'bf16') and DIR/<i>.a.f32, <i>.b.f32; writes DIR/<i>.c.f32; prints {"isa": ...}. No math here:
// the test checks the results.
'use strict';
const fs = require('fs');
const path = require('path');
const addon = require('node-gyp-build')(path.join(__dirname, '..', '..'));

// Without DIR: only prints {"isa": ...} (with FUSED_DISTILL_GEMM_ISA unset, the best path of this CPU).
const dir = process.argv[2];
const read = (file) => {
  const buf = fs.readFileSync(path.join(dir, file));
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
};
const cases = dir ? JSON.parse(fs.readFileSync(path.join(dir, 'cases.json'), 'utf8')) : [];
cases.forEach((c, i) => {
  addon.setNumThreads(c.threads);
  const out = new Float32Array(c.batch * c.m * c.n).fill(Number.NaN);
  addon.sgemm(
    read(`${i}.a.f32`),
    read(`${i}.b.f32`),
    out,
    c.batch,
    c.m,
    c.n,
    c.k,
    c.transA,
    c.transB,
    c.aOffsets ? Float64Array.from(c.aOffsets) : null,
    c.bOffsets ? Float64Array.from(c.bOffsets) : null,
    c.precision, // absent: fp32
  );
  fs.writeFileSync(path.join(dir, `${i}.c.f32`), Buffer.from(out.buffer));
});
process.stdout.write(JSON.stringify({ isa: addon.gemmIsa() }));
