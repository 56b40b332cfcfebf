// CPU time of the fused attention kernels alone (addon.attention / attentionGrad on BERT-mini's
// [16, 128, 256], 4 heads), fp32 and bf16 products, at --threads (default 1). CPU time, not wall
// time, so that a shared machine's load disturbs the numbers less.
//
//   npm run build && node bench/attention_cpu.js [--reps=30] [--threads=1] [--precision=fp32|bf16|both]
'use strict';
const fd = require('../dist');

const arg = (name, def) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
};
const REPS = Number(arg('reps', '30'));
const THREADS = Number(arg('threads', '1'));
const PRECISION = arg('precision', 'both');
const [B, L, H, A] = [16, 128, 256, 4];
const scale = 1 / Math.sqrt(H / A);

let seed = 7;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5;
const t = (n) => Float32Array.from({ length: n }, rand);
const [q, k, v, dout] = [t(B * L * H), t(B * L * H), t(B * L * H), t(B * L * H)];
const bias = new Float32Array(B * L);
const out = new Float32Array(B * L * H);
const probs = new Float32Array(B * A * L * L);
const [dq, dk, dv] = [new Float32Array(B * L * H), new Float32Array(B * L * H), new Float32Array(B * L * H)];
const dbias = new Float32Array(B * L);

const cpuMs = (f) => {
  f();
  const xs = [];
  for (let r = 0; r < REPS; r++) {
    const c0 = process.cpuUsage();
    f();
    const c = process.cpuUsage(c0);
    xs.push((c.user + c.system) / 1000);
  }
  xs.sort((a, b) => a - b);
  return `median ${xs[xs.length >> 1].toFixed(2)} ms, min ${xs[0].toFixed(2)} ms`;
};

fd.addon.setNumThreads(THREADS);
console.log(
  `attention kernels [${B}, ${L}, ${H}] / ${A} heads, ${THREADS} thread(s), gemm ${fd.addon.gemmIsa()}, CPU time:`,
);
for (const [name, precision] of [
  ['fp32', 0],
  ['bf16', 1],
].filter(([name]) => PRECISION === 'both' || PRECISION === name)) {
  const fwd = (p) => () => fd.addon.attention(q, k, v, bias, B, L, H, A, scale, precision, out, p);
  const bwd = () => fd.addon.attentionGrad(dout, q, k, v, probs, B, L, H, A, scale, precision, dq, dk, dv, dbias);
  console.log(`  ${name} forward (no P)    ${cpuMs(fwd(null))}`);
  console.log(`  ${name} forward (with P)  ${cpuMs(fwd(probs))}`);
  console.log(`  ${name} backward          ${cpuMs(bwd)}`);
}
