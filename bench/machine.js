// The machine the CPU benchmarks ran on, and the environment their PyTorch peers run in.
//
// cpuName(): the model name with its family / model numbers and bf16 features: this workplace's VMs
// all say "AMD EPYC" (a Zen 4 and a Zen 5 alike) or "Intel(R) Xeon(R) Processor".
//
// torchEnv(): Debian's torch 1.13 calls OpenBLAS 0.3.21, which
// picks its kernels by CPU model and does not know CPUs newer than itself. On an AMD Zen 5 (family
// 26) it ran torch.mm 1024^3 at 279 GFLOP/s on its own choice, 201 under OPENBLAS_CORETYPE=Haswell
// (set by this workplace's machine image) and 311 with its AVX-512 kernels (SkylakeX), the PyTorch
// fp32 step at 400 vs 325 ms. A peer should run at its best, so on a CPU with AVX-512 (F, BW, DQ, VL:
// what the SkylakeX kernels use) the peers get OPENBLAS_CORETYPE=SkylakeX. FD_OPENBLAS_CORETYPE
// chooses another ('' = OpenBLAS's own detection).
'use strict';
const fs = require('fs');
const os = require('os');

function cpuFlags() {
  try {
    const line = fs
      .readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('flags'));
    return new Set((line ?? '').split(':')[1]?.trim().split(/\s+/) ?? []);
  } catch {
    return new Set();
  }
}

/** e.g. "AMD EPYC (family 26 model 2: Zen 5; avx512_bf16), 2 vCPU". */
function cpuName() {
  let family = '';
  let model = '';
  let name = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    family = /^cpu family\s*:\s*(\d+)/m.exec(info)?.[1] ?? '';
    model = /^model\s*:\s*(\d+)/m.exec(info)?.[1] ?? '';
  } catch {
    // not Linux: the model name alone
  }
  const f = cpuFlags();
  const zen = /AMD/.test(name) ? { 25: f.has('avx512f') ? 'Zen 4' : 'Zen 3', 26: 'Zen 5' }[family] : undefined;
  const bf16 = ['avx512_bf16', 'amx_bf16'].filter((x) => f.has(x));
  name += family
    ? ` (family ${family} model ${model}${zen ? `: ${zen}` : ''}${bf16.length ? `; ${bf16.join(', ')}` : ''})`
    : '';
  return `${name}, ${os.cpus().length} vCPU`;
}

/** The OpenBLAS core type the peers run with ('' = OpenBLAS's own detection). */
function openblasCoreType() {
  if (process.env.FD_OPENBLAS_CORETYPE !== undefined) return process.env.FD_OPENBLAS_CORETYPE;
  const f = cpuFlags();
  return ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl'].every((x) => f.has(x)) ? 'SkylakeX' : '';
}

/** process.env for a PyTorch peer, with the OpenBLAS core type above. */
function torchEnv() {
  const env = { ...process.env };
  const core = openblasCoreType();
  if (core) env.OPENBLAS_CORETYPE = core;
  else delete env.OPENBLAS_CORETYPE;
  return env;
}

/** The peer's BLAS choice in words, for result tables. */
function torchBlasNote() {
  const core = openblasCoreType();
  return core ? `OPENBLAS_CORETYPE=${core}` : "OpenBLAS's own kernel choice";
}

module.exports = { cpuName, torchEnv, torchBlasNote, openblasCoreType };
