// A CPU stand-in for the addon's CUDA API, to dry-run gpu_check.js where there is no GPU:
//   node bench/gpu/gpu_check.js bench/gpu/mock_addon.js --quick
// "Device buffers" are Float32Arrays and every cuda.* op calls the addon's own CPU kernel, so all
// checks pass by construction: this tests the script, never the CUDA kernels. Timings are meaningless.
'use strict';
const path = require('path');

const real = require(process.env.FD_ADDON || path.join(__dirname, '..', '..', 'build', 'Release', 'fused_distill.node'));
const buffers = new Map();
let next = 1;
let timer = 0n;
const get = (h) => {
  const b = buffers.get(h);
  if (!b) throw new RangeError(`mock cuda: ${h} is not a live device buffer handle`);
  return b;
};
const opt = (h) => (h == null ? null : get(h));

const cuda = {
  isAvailable: () => true,
  lastError: () => '',
  deviceName: () => 'mock (CPU kernels)',
  alloc: (n) => {
    buffers.set(next, new Float32Array(n));
    return next++;
  },
  free: (h) => {
    get(h);
    buffers.delete(h);
  },
  size: (h) => get(h).length,
  upload: (h, src) => get(h).set(src),
  download: (h, dst) => dst.set(get(h).subarray(0, dst.length)),
  synchronize: () => {},
  memoryStats: () => ({ bytesInUse: 0, bytesCached: 0, buffers: buffers.size }),
  emptyCache: () => {},
  timerStart: () => {
    timer = process.hrtime.bigint();
  },
  timerStop: () => Number(process.hrtime.bigint() - timer) / 1e6,
  rankingObjective: (s, t, y, mask, rows, cols, w, T, sigma, margin, grad, result) => {
    const n = rows * cols;
    const sub = (h) => (h == null ? null : get(h).subarray(0, n));
    const parts = new Float64Array(7);
    const total = real.rankingObjective(sub(s), sub(t), sub(y), sub(mask), rows, cols, w, T, sigma, margin, sub(grad), parts);
    const r = get(result);
    r[0] = total;
    for (let k = 0; k < 7; ++k) r[1 + k] = parts[k];
  },
  hiddenMSE: (a, b, tm, layers, batch, len, hidden, grad, loss) => {
    const n = layers * batch * len * hidden;
    const m = opt(tm);
    get(loss)[0] = real.hiddenMSE(get(a).subarray(0, n), get(b).subarray(0, n), m && m.subarray(0, batch * len), layers, batch, len, hidden, grad == null ? null : get(grad).subarray(0, n));
  },
  attentionMSE: (a, b, tm, batch, heads, len, grad, loss) => {
    const n = batch * heads * len * len;
    const m = opt(tm);
    get(loss)[0] = real.attentionMSE(get(a).subarray(0, n), get(b).subarray(0, n), m && m.subarray(0, batch * len), batch, heads, len, grad == null ? null : get(grad).subarray(0, n));
  },
  scale: (x, c, out, n) => real.scale(get(x).subarray(0, n), c, get(out).subarray(0, n)),
};

module.exports = { ...real, builtWithCuda: () => true, cuda };
