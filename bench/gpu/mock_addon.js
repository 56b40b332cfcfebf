// A CPU stand-in for the addon's CUDA API, to dry-run gpu_check.js where there is no GPU:
//   node bench/gpu/gpu_check.js bench/gpu/mock_addon.js --quick
// "Device buffers" are Float32Arrays and every cuda.* op calls the addon's own CPU kernel, so all
// checks pass by construction: this tests the script, never the CUDA kernels. Timings are meaningless.
'use strict';
const path = require('path');

const real = require(
  process.env.FD_ADDON || path.join(__dirname, '..', '..', 'build', 'Release', 'fused_distill.node'),
);
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
  // The losses take the host op's arguments with device buffers in place of arrays (register_op):
  // each handle becomes its Float32Array.
  rankingObjective: (s, t, y, mask, rows, cols, w, T, sigma, margin, grad, result) =>
    real.rankingObjective(get(s), opt(t), opt(y), opt(mask), rows, cols, w, T, sigma, margin, opt(grad), get(result)),
  hiddenMSE: (a, b, tm, layers, batch, len, hidden, grad, loss) =>
    real.hiddenMSE(get(a), get(b), opt(tm), layers, batch, len, hidden, opt(grad), get(loss)),
  attentionMSE: (a, b, tm, batch, heads, len, grad, loss) =>
    real.attentionMSE(get(a), get(b), opt(tm), batch, heads, len, opt(grad), get(loss)),
  scale: (x, c, out) => real.scale(get(x), c, get(out)),
};

module.exports = { ...real, builtWithCuda: () => true, cuda };
