#!/usr/bin/env node
// The NCCL check of the GPU run (bench/gpu/run.sh step "nccl"): addon.cuda.nccl on the real device.
// Node built-ins only (the GPU machine has no node_modules); the addon from $FD_ADDON, else
// ./build/Release/fused_distill.node; NCCL from $FUSED_DISTILL_NCCL_LIBRARY (run.sh points it at
// PyTorch's libnccl.so.2).
//   node bench/gpu/nccl_check.js [--json OUT.json]
// In this process, one rank: initRank(id, 1, 0); allGather / allReduceSum / broadcast of float32,
// int32 and bool device buffers against the exact expected values (a collective of one rank is a
// copy); a collective after destroy fails saying so; a new communicator after destroy works.
// In child processes (each killed after 90 s, so a hang is a FAIL, not a stalled run):
//   timeout   initRank(id, 2, 0) with no second rank, FUSED_DISTILL_COLLECTIVE_TIMEOUT_S=3: must fail
//             in about 3 s naming the timeout (the non-blocking init, polled and aborted), and a
//             one-rank communicator must work afterwards in the same process
//   two ranks two processes on the one GPU, the id passed from rank 0 to rank 1 through a file:
//             NCCL refuses two ranks on one GPU ("Duplicate GPU detected"), which is recorded as the
//             expected outcome; if it accepts them, allGather / allReduceSum / broadcast across the two
//             are checked, then rank 0's allGather with rank 1 absent must time out (3 s) naming it
// Under FUSED_DISTILL_EMULATE_DEVICE=1 in a CPU build (prepare.sh's self-test) the one-rank part runs on
// the emulation and the multi-rank parts record the emulation's refusal.
// Prints PASS/FAIL lines; exit 0 when everything passed, 1 otherwise, 3 without any device.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const addonPath = path.resolve(process.env.FD_ADDON || 'build/Release/fused_distill.node');
const argv = process.argv.slice(2);

function load() {
  return require(addonPath);
}

// ---------------------------------------------------------------------------------------------
// children: one JSON line on stdout as their last line

function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function put(cuda, x) {
  const dtype = x instanceof Float32Array ? 'float32' : x instanceof Int32Array ? 'int32' : 'bool';
  const h = cuda.alloc(x.length, dtype);
  cuda.upload(h, x);
  return h;
}
function get(cuda, h, out) {
  cuda.download(h, out);
  return out;
}
const sameBits = (a, b) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function childTimeout() {
  const { cuda } = load();
  const nccl = cuda.nccl;
  const t0 = Date.now();
  let message = null;
  try {
    nccl.initRank(nccl.uniqueId(), 2, 0);
  } catch (e) {
    message = e.message;
  }
  const seconds = (Date.now() - t0) / 1000;
  if (message === null) return emit({ ok: false, detail: 'initRank of 2 ranks with 1 present returned' });
  if (/host emulation has one rank only/.test(message))
    return emit({ ok: true, outcome: 'emulation', detail: message, seconds });
  const named = /ncclCommInitRankConfig did not complete within 3 s \(FUSED_DISTILL_COLLECTIVE_TIMEOUT_S\)/.test(
    message,
  );
  const r = { ok: named && seconds < 30, outcome: named ? 'timed out' : 'other error', detail: message, seconds };
  // the process goes on: a new one-rank communicator works after the abort
  try {
    nccl.initRank(nccl.uniqueId(), 1, 0);
    const b = put(cuda, Float32Array.from([1.5, -2]));
    nccl.allReduceSum(b, 2);
    r.recovered = sameBits(get(cuda, b, new Float32Array(2)), Float32Array.from([1.5, -2]));
    nccl.destroy();
  } catch (e) {
    r.recovered = false;
    r.recoverError = e.message;
  }
  r.ok = r.ok && r.recovered;
  emit(r);
}

function waitForFile(file, seconds) {
  const end = Date.now() + seconds * 1000;
  while (!fs.existsSync(file)) {
    if (Date.now() > end) throw new Error(`no ${file} after ${seconds} s`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}

function childRank(rank, idFile, doneFile) {
  const { cuda } = load();
  const nccl = cuda.nccl;
  let id;
  if (rank === 0) {
    id = nccl.uniqueId();
    fs.writeFileSync(`${idFile}.tmp`, id);
    fs.renameSync(`${idFile}.tmp`, idFile); // rank 1 never reads a partial id
  } else {
    waitForFile(idFile, 60);
    id = new Uint8Array(fs.readFileSync(idFile));
  }
  try {
    nccl.initRank(id, 2, rank);
  } catch (e) {
    const outcome = /host emulation has one rank only/.test(e.message)
      ? 'emulation'
      : /Duplicate GPU/i.test(e.message)
        ? 'refused: Duplicate GPU detected'
        : 'init failed';
    if (rank === 0) fs.writeFileSync(doneFile, 'x');
    return emit({ ok: outcome !== 'init failed', outcome, detail: e.message });
  }
  // accepted: the collectives across the two processes
  const checks = [];
  try {
    acceptedChecks(cuda, nccl, rank, checks, doneFile);
  } catch (e) {
    checks.push({ name: 'collectives across two ranks', pass: false, detail: e.message });
    if (rank === 0) fs.writeFileSync(doneFile, 'x');
  }
  emit({ ok: checks.every((c) => c.pass), outcome: 'accepted', checks });
}

function acceptedChecks(cuda, nccl, rank, checks, doneFile) {
  const n = 1000;
  const mine = Float32Array.from({ length: n }, (_, i) => rank * 10000 + i);
  const recv = cuda.alloc(2 * n);
  nccl.allGather(put(cuda, mine), recv, n);
  const all = get(cuda, recv, new Float32Array(2 * n));
  checks.push({ name: 'allGather', pass: all.every((v, k) => v === Math.floor(k / n) * 10000 + (k % n)) });
  const sum = put(
    cuda,
    Float32Array.from({ length: n }, (_, i) => (rank + 1) * (i % 7)),
  );
  nccl.allReduceSum(sum, n);
  checks.push({ name: 'allReduceSum', pass: get(cuda, sum, new Float32Array(n)).every((v, i) => v === 3 * (i % 7)) });
  const b = put(
    cuda,
    Int32Array.from({ length: n }, (_, i) => (rank === 1 ? i * 3 : -1)),
  );
  nccl.broadcast(b, n, 1);
  checks.push({ name: 'broadcast from rank 1', pass: get(cuda, b, new Int32Array(n)).every((v, i) => v === i * 3) });
  // rank 1 stays out of the next collective: rank 0 must time out, naming it
  if (rank === 0) {
    process.env.FUSED_DISTILL_COLLECTIVE_TIMEOUT_S = '3';
    let message = null;
    try {
      nccl.allGather(put(cuda, mine), recv, n);
    } catch (e) {
      message = e.message;
    }
    fs.writeFileSync(doneFile, 'x');
    checks.push({
      name: 'allGather with rank 1 absent times out',
      pass: message !== null && /ncclAllGather did not complete within 3 s/.test(message),
      detail: message,
    });
  } else {
    waitForFile(doneFile, 60);
  }
}

// ---------------------------------------------------------------------------------------------
// the parent

function runChild(args, env) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [__filename, '--child', ...args], { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const kill = setTimeout(() => p.kill('SIGKILL'), 90000);
    p.on('close', (code, signal) => {
      clearTimeout(kill);
      const last = out.trim().split('\n').pop() || '';
      let result;
      try {
        result = JSON.parse(last);
      } catch {
        result = { ok: false, detail: `no result (exit ${code}${signal ? `, ${signal}: killed after 90 s?` : ''})` };
      }
      result.stderr = err
        .split('\n')
        .filter((l) => /NCCL WARN|Error|Duplicate/i.test(l))
        .slice(0, 8);
      if (!result.outcome && result.stderr.some((l) => /Duplicate GPU/i.test(l)))
        result.outcome = 'refused: Duplicate GPU detected';
      resolve(result);
    });
  });
}

async function main() {
  const jsonAt = argv.indexOf('--json');
  const jsonOut = jsonAt >= 0 ? argv[jsonAt + 1] : null;
  const report = { addon: addonPath, library: process.env.FUSED_DISTILL_NCCL_LIBRARY || null, checks: [] };
  const check = (name, pass, detail) => {
    report.checks.push({ name, pass: !!pass, detail: detail ?? null });
    console.log(`${pass ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
  };
  const finish = (code) => {
    report.pass = code === 0;
    if (jsonOut) fs.writeFileSync(jsonOut, `${JSON.stringify(report, null, 2)}\n`);
    process.exit(code);
  };
  const { cuda, builtWithCuda } = load();
  const nccl = cuda.nccl;
  if (!cuda.isAvailable()) {
    console.log(`no device: ${cuda.lastError()}`);
    report.error = cuda.lastError();
    finish(3);
  }
  report.device = cuda.deviceName();
  report.emulated = !builtWithCuda();
  console.log(
    `device: ${report.device}${report.emulated ? ' (a dry run)' : ''}; NCCL library: ${report.library ?? 'default names'}`,
  );
  if (!nccl.isAvailable()) {
    check('NCCL available', false, nccl.lastError());
    finish(1);
  }
  report.version = nccl.version();
  check('NCCL available', true, `version ${report.version}`);

  // ---- one rank, here ----
  try {
    const id = nccl.uniqueId();
    check('uniqueId is 128 bytes', id.length === 128);
    let t = Date.now();
    nccl.initRank(id, 1, 0);
    check('initRank(id, 1, 0)', true, `${Date.now() - t} ms`);
    for (const n of [1, 1000, 1 << 24]) {
      const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e3);
      const send = put(cuda, x);
      const recv = cuda.alloc(n);
      t = Date.now();
      nccl.allGather(send, recv, n);
      const ms = Date.now() - t;
      check(`allGather float32 x ${n}`, sameBits(get(cuda, recv, new Float32Array(n)), x), `${ms} ms`);
      t = Date.now();
      nccl.allReduceSum(send, n);
      check(
        `allReduceSum float32 x ${n} (one rank: unchanged)`,
        sameBits(get(cuda, send, new Float32Array(n)), x),
        `${Date.now() - t} ms`,
      );
      nccl.broadcast(recv, n, 0);
      check(`broadcast float32 x ${n}`, sameBits(get(cuda, recv, new Float32Array(n)), x));
      cuda.free(send);
      cuda.free(recv);
    }
    const ints = Int32Array.from({ length: 77 }, (_, i) => (i * 2654435761) | 0);
    const ri = cuda.alloc(77, 'int32');
    nccl.allGather(put(cuda, ints), ri, 77);
    check('allGather int32', sameBits(get(cuda, ri, new Int32Array(77)), ints));
    const bools = Uint8Array.from({ length: 13 }, (_, i) => i % 3 === 0);
    const rb = cuda.alloc(13, 'bool');
    nccl.allGather(put(cuda, bools), rb, 13);
    check('allGather bool', sameBits(get(cuda, rb, new Uint8Array(13)), bools));
    nccl.destroy();
    let message = null;
    try {
      nccl.allGather(ri, ri, 1);
    } catch (e) {
      message = e.message;
    }
    check('a collective after destroy fails saying so', /no communicator/.test(message ?? ''), message);
    nccl.initRank(nccl.uniqueId(), 1, 0);
    nccl.allReduceSum(put(cuda, new Float32Array(4)), 4);
    nccl.destroy();
    check('a new communicator after destroy works', true);
  } catch (e) {
    check('one rank', false, e.message);
  }

  // ---- children: the timeout, and two ranks on the one GPU ----
  const tm = await runChild(['timeout'], { FUSED_DISTILL_COLLECTIVE_TIMEOUT_S: '3' });
  report.timeout = tm;
  check(
    `timeout: initRank of 2 ranks with 1 present (${tm.outcome ?? 'no outcome'})`,
    tm.ok,
    `${tm.detail ?? ''}${tm.seconds != null ? ` [${tm.seconds.toFixed(1)} s]` : ''}${tm.recovered === false ? `; not recovered: ${tm.recoverError ?? 'wrong values'}` : ''}`,
  );

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-nccl-'));
  const idFile = path.join(dir, 'id');
  const doneFile = path.join(dir, 'done');
  const env = { FUSED_DISTILL_COLLECTIVE_TIMEOUT_S: '60', NCCL_DEBUG: 'WARN' };
  const ranks = await Promise.all([0, 1].map((r) => runChild(['rank', String(r), idFile, doneFile], env)));
  fs.rmSync(dir, { recursive: true, force: true });
  report.two_ranks = ranks;
  const outcome = ranks[0].outcome ?? ranks[1].outcome ?? 'no outcome';
  report.two_ranks_outcome = outcome;
  for (const [r, res] of ranks.entries()) {
    check(
      `two ranks on one GPU, rank ${r}: ${res.outcome ?? 'no outcome'}`,
      res.ok,
      res.detail ?? (res.stderr || []).join(' | '),
    );
    for (const c of res.checks || []) check(`two ranks, rank ${r}: ${c.name}`, c.pass, c.detail);
  }
  const failed = report.checks.filter((c) => !c.pass).length;
  console.log(`== nccl: ${report.checks.length - failed} passed, ${failed} failed; two ranks on one GPU: ${outcome}`);
  finish(failed ? 1 : 0);
}

if (argv[0] === '--child') {
  if (argv[1] === 'timeout') childTimeout();
  else childRank(Number(argv[2]), argv[3], argv[4]);
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
