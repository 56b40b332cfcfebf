// kernels/cuda/nccl.cu's own logic, on a machine without a GPU or NCCL: nvcc compiles it as the CUDA
// build does, and tests/helpers/nccl_mock/harness.cpp links it with stubs of fd::device and of the
// few CUDA runtime calls it makes, then loads tests/helpers/nccl_mock/mock_nccl.cpp as the NCCL
// library (FUSED_DISTILL_NCCL_LIBRARY). What is checked: the ncclConfig_t it passes (size, magic,
// version, blocking = 0), the non-blocking init polled to completion, the collectives' arguments and
// their completion through the event, finalize + destroy, and every error path: the init or a
// collective past FUSED_DISTILL_COLLECTIVE_TIMEOUT_S, an error NCCL reports during the init, a
// collective NCCL refuses (each aborting the communicator exactly once, with the message naming the
// call), a bad timeout value, and a library that cannot be found. Skipped where there is no nvcc.
// The real NCCL on a GPU: tests/nccl.test.ts and bench/gpu/nccl_check.js in the GPU run.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');
const MOCK = path.join(__dirname, 'helpers', 'nccl_mock');
const which = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
const NVCC = which.status === 0 ? which.stdout.trim() : null;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-nccl-mock-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const harness = path.join(tmp, 'harness');
const lib = path.join(tmp, 'libnccl_mock.so');

function sh(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

interface Run {
  out: string;
  err: string;
  /** "<call> -> <status> [<ms>] <message>" by call */
  calls: Map<string, { status: number; ms: number; message: string }>;
}

function run(env: Record<string, string>, args: string[] = []): Run {
  const full: NodeJS.ProcessEnv = { ...process.env, FUSED_DISTILL_NCCL_LIBRARY: lib, ...env };
  for (const k of ['MOCK_INIT', 'MOCK_COLL', 'MOCK_EVENT', 'FUSED_DISTILL_COLLECTIVE_TIMEOUT_S'])
    if (!(k in env)) delete full[k];
  const r = spawnSync(harness, args, { env: full, encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0) throw new Error(`harness exit ${r.status} ${r.signal ?? ''}:\n${r.stdout}\n${r.stderr}`);
  const calls = new Map<string, { status: number; ms: number; message: string }>();
  for (const line of r.stdout.split('\n')) {
    const m = /^(.+?) -> (\d+) \[(\d+) ms\] ?(.*)$/.exec(line);
    if (m) calls.set(m[1], { status: Number(m[2]), ms: Number(m[3]), message: m[4] });
  }
  return { out: r.stdout, err: r.stderr, calls };
}
const aborts = (r: Run) => r.err.split('\n').filter((l) => l === 'mock: abort').length;
const NO_COMM = 'no communicator (initRank first; a failed or timed-out collective aborts it)';
const ABORTED = '; the communicator was aborted (initRank again with a new unique id)';

(NVCC ? describe : describe.skip)('kernels/cuda/nccl.cu against a mock NCCL (nvcc, no GPU)', () => {
  beforeAll(() => {
    const obj = path.join(tmp, 'nccl.o');
    sh(NVCC!, ['-std=c++17', '-O1', '-Ikernels', '-c', 'kernels/cuda/nccl.cu', '-o', obj]);
    sh('g++', ['-shared', '-fPIC', '-O1', path.join(MOCK, 'mock_nccl.cpp'), '-o', lib]);
    // linked without the CUDA runtime: the harness defines the calls nccl.cu makes
    sh(NVCC!, [
      '-std=c++17',
      '-O1',
      '-Ikernels',
      '-cudart',
      'none',
      path.join(MOCK, 'harness.cpp'),
      obj,
      '-ldl',
      '-o',
      harness,
    ]);
  }, 600000);

  test('the non-blocking init with a 2.14 ncclConfig_t, the collectives on the event, finalize + destroy', () => {
    const r = run({});
    expect(r.out).toMatch(/^available 1 $/m);
    expect(r.out).toMatch(/^version 22805$/m);
    expect(r.err).toContain(
      'mock: init nranks=2 rank=1 id[5]=5 size=40 magic=cafebeef version=21400 blocking=0 cga=-2147483648 net=null',
    );
    expect(r.calls.get('init_rank')?.status).toBe(0);
    expect(r.calls.get('init_rank again')?.message).toBe(
      'this process has a communicator already (rank 1 of 2): destroy it first',
    );
    expect(r.calls.get('all_gather')?.status).toBe(0);
    expect(r.out).toMatch(/^b = 1 2 3 4$/m);
    expect(r.err).toContain('mock: allgather n=4 type=7'); // ncclFloat32
    expect(r.err).toContain('mock: allreduce n=4 type=7 op=0 inplace=1'); // ncclSum, in place
    expect(r.err).toContain('mock: broadcast n=4 type=2 root=1 inplace=1'); // ncclInt32
    expect(r.calls.get('all_reduce_sum')?.status).toBe(0);
    expect(r.calls.get('broadcast')?.status).toBe(0);
    expect(r.calls.get('destroy')?.status).toBe(0);
    expect(r.err).toMatch(/mock: finalize\nmock: destroy/);
    expect(r.calls.get('all_gather after destroy')?.message).toBe(`ncclAllGather: ${NO_COMM}`);
    expect(aborts(r)).toBe(0);
  });

  test('an init that never completes: aborted after FUSED_DISTILL_COLLECTIVE_TIMEOUT_S, named', () => {
    const r = run({ MOCK_INIT: 'hang', FUSED_DISTILL_COLLECTIVE_TIMEOUT_S: '0.3' });
    const init = r.calls.get('init_rank')!;
    expect(init.message).toBe(
      `ncclCommInitRankConfig did not complete within 0.3 s (FUSED_DISTILL_COLLECTIVE_TIMEOUT_S): a rank may have died, hung, or not called it${ABORTED}`,
    );
    expect(init.ms).toBeGreaterThanOrEqual(300);
    expect(init.ms).toBeLessThan(5000);
    // after the abort a new init goes to NCCL again (and times out again here): one abort each
    expect(r.calls.get('init_rank again')?.message).toBe(init.message);
    expect(aborts(r)).toBe(2);
    expect(r.calls.get('all_gather')?.message).toBe(`ncclAllGather: ${NO_COMM}`);
    expect(r.calls.get('destroy')?.status).toBe(0); // nothing left to destroy
  });

  test("an error NCCL reports during the init: its name, its words and ncclGetLastError's text", () => {
    const dup = run({ MOCK_INIT: 'dup' });
    expect(dup.calls.get('init_rank')?.message).toBe(
      `ncclCommInitRankConfig: ncclInvalidUsage 5 (invalid usage): Duplicate GPU detected : rank 1 and rank 0 both on CUDA device 1b000${ABORTED}`,
    );
    expect(aborts(dup)).toBe(2); // the init and the harness's second init, each aborted once
    const remote = run({ MOCK_INIT: 'remote' });
    expect(remote.calls.get('init_rank')?.message).toBe(
      `ncclCommInitRankConfig: ncclRemoteError 6 (remote process exited): remote peer gone${ABORTED}`,
    );
  });

  test('a collective that never completes on the stream: aborted after the timeout, named; the next one has no communicator', () => {
    const r = run({ MOCK_EVENT: 'never', FUSED_DISTILL_COLLECTIVE_TIMEOUT_S: '0.2' });
    const ag = r.calls.get('all_gather')!;
    expect(ag.message).toBe(
      `ncclAllGather did not complete within 0.2 s (FUSED_DISTILL_COLLECTIVE_TIMEOUT_S): a rank may have died, hung, or not called it${ABORTED}`,
    );
    expect(ag.ms).toBeGreaterThanOrEqual(200);
    expect(ag.ms).toBeLessThan(5000);
    expect(aborts(r)).toBe(1);
    expect(r.calls.get('all_reduce_sum')?.message).toBe(`ncclAllReduce: ${NO_COMM}`);
    expect(r.calls.get('broadcast')?.message).toBe(`ncclBroadcast: ${NO_COMM}`);
  });

  test('a collective NCCL refuses at once aborts the communicator (the other ranks must not hang)', () => {
    const r = run({ MOCK_COLL: 'invalid' });
    expect(r.calls.get('all_gather')?.message).toBe(
      `ncclAllGather: ncclInvalidArgument 4 (invalid argument): bad count${ABORTED}`,
    );
    expect(aborts(r)).toBe(1);
  });

  test.each(['abc', '0', '-1', '5s'])('FUSED_DISTILL_COLLECTIVE_TIMEOUT_S=%s is refused, naming the variable', (v) => {
    const r = run({ FUSED_DISTILL_COLLECTIVE_TIMEOUT_S: v });
    expect(r.calls.get('init_rank')?.message).toBe(
      `FUSED_DISTILL_COLLECTIVE_TIMEOUT_S=${v}: not a number of seconds > 0`,
    );
    expect(r.err).not.toContain('mock: init');
  });

  test('a library that cannot be found: unavailable, every name tried and why', () => {
    const r = run({ FUSED_DISTILL_NCCL_LIBRARY: path.join(tmp, 'missing', 'libnccl.so.2') }, ['--load-only']);
    const line = r.out.split('\n')[0];
    if (line.startsWith('available 1')) return; // a libnccl on this machine's search path was loaded instead
    expect(line).toMatch(/^available 0 NCCL not found \(set FUSED_DISTILL_NCCL_LIBRARY to a libnccl\.so\.2\): /);
    expect(line).toContain(`${path.join(tmp, 'missing', 'libnccl.so.2')}: cannot open shared object file`);
    expect(line).toContain('libnccl.so.2: cannot open');
    expect(line).toContain('libnccl.so: cannot open');
  });
});
