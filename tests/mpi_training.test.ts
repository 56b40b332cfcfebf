// Training, scoring and evaluation across processes, through the CLI as users start it: ranks under
// `mpirun` and under `fused-distill launch`. (a) 2 ranks give one process's weights bit for bit;
// (b)+(c) a rank killed with SIGKILL ends the job with a non-zero exit naming it, and `--resume`
// at another rank count finishes with the uninterrupted weights; (d) `teacher score --out` and
// `eval` under 2 ranks write what one process writes. The mpirun cases are skipped only where
// `mpirun` is not on PATH (CI installs Open MPI). Tiny models on the 12-document collection, 'wasm'.
import { spawn, spawnSync, type SpawnSyncReturns } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { tinyCollection } from './helpers/tiny_collection';

const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli', 'index.js');
const version = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
const hasMpirun = !version.error && version.status === 0;
const MPIRUN_FLAGS = /Open MPI|OpenRTE/.test(version.stdout ?? '') ? ['--allow-run-as-root', '--oversubscribe'] : [];
const withMpi = hasMpirun ? it : it.skip;
const noMpi = hasMpirun ? '' : ' [SKIPPED: mpirun is not on PATH; install Open MPI (openmpi-bin libopenmpi-dev)]';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-mpi-train-'));
const collDir = path.join(tmp, 'coll');
beforeAll(async () => {
  await tinyCollection(collDir);
}, 60000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const GLOBAL = ['--backend', 'wasm', '--progress', 'lines'];
const env = { ...process.env, FUSED_DISTILL_NUM_THREADS: '1' };

// How a command is started: one process, mpirun -np n, or fused-distill launch --nproc n.
type How = { kind: 'one' } | { kind: 'mpirun'; n: number } | { kind: 'launch'; n: number };
function argvOf(how: How, args: string[]): [string, string[]] {
  const cli = [CLI, ...GLOBAL, ...args];
  if (how.kind === 'one') return [process.execPath, cli];
  if (how.kind === 'mpirun') return ['mpirun', [...MPIRUN_FLAGS, '-np', String(how.n), process.execPath, ...cli]];
  return [process.execPath, [CLI, 'launch', '--nproc', String(how.n), '--', ...GLOBAL, ...args]];
}
function cli(how: How, args: string[]): SpawnSyncReturns<string> {
  const [cmd, argv] = argvOf(how, args);
  return spawnSync(cmd, argv, { encoding: 'utf8', env, cwd: ROOT, timeout: 240000 });
}
function ok(r: SpawnSyncReturns<string>, what: string): SpawnSyncReturns<string> {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

function teacherConfig(name: string, train: Record<string, unknown> = {}): string {
  const file = path.join(tmp, `${name}.json`);
  const config = {
    output: path.join(tmp, name),
    model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 },
    data: { collection: collDir, negatives: 3, maxLength: 40, trainQueries: 8, evalQueries: 4 },
    train: {
      batch: 4,
      microBatch: 1,
      steps: 6,
      lr: 3e-3,
      warmup: 1,
      seed: 2,
      evalEvery: 3,
      checkpointEvery: 0,
      ...train,
    },
    loss: { ranknet: 1 },
  };
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}
const weights = (name: string) => fs.readFileSync(path.join(tmp, name, 'model', 'weights.bin'));
const result = (name: string) => JSON.parse(fs.readFileSync(path.join(tmp, name, 'result.json'), 'utf8'));

describe('teacher train across processes', () => {
  beforeAll(() => {
    ok(cli({ kind: 'one' }, ['teacher', 'train', teacherConfig('one')]), 'one process');
  }, 240000);

  withMpi(
    `(a) mpirun -np 2: the weights, log and evaluations of one process, bit for bit${noMpi}`,
    () => {
      const r = ok(cli({ kind: 'mpirun', n: 2 }, ['teacher', 'train', teacherConfig('mpi2')]), 'mpirun -np 2');
      expect(weights('mpi2').equals(weights('one'))).toBe(true);
      expect(fs.readFileSync(path.join(tmp, 'mpi2', 'log.jsonl'), 'utf8')).toBe(
        fs.readFileSync(path.join(tmp, 'one', 'log.jsonl'), 'utf8'),
      );
      expect(result('mpi2').worldSize).toBe(2);
      expect(result('one').worldSize).toBe(1);
      // rank 0 alone prints the run's lines
      expect(r.stdout.match(/teacher model:/g)).toHaveLength(1);
      expect(r.stderr).toMatch(/2 ranks/);
    },
    240000,
  );

  // Kills rank `rank` with SIGKILL once the run's first checkpoint is there; the job's exit and output.
  async function killAfterCheckpoint(how: How, config: string, name: string, rank: number) {
    const [cmd, argv] = argvOf(how, ['teacher', 'train', config]);
    const proc = spawn(cmd, argv, { env, cwd: ROOT });
    let output = '';
    proc.stdout.on('data', (d) => (output += d));
    proc.stderr.on('data', (d) => (output += d));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      proc.on('exit', (code, signal) => resolve({ code, signal })),
    );
    const checkpoints = path.join(tmp, name, 'checkpoints');
    const deadline = Date.now() + 120000;
    let killed: number | null = null;
    while (killed == null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      if (!fs.existsSync(checkpoints) || !fs.readdirSync(checkpoints).some((n) => n.startsWith('step-'))) continue;
      killed = rankPid(config, rank);
      if (killed != null) process.kill(killed, 'SIGKILL');
    }
    const { code, signal } = await exited;
    // The other ranks end a moment after the launcher (a rank blocked in a collective gets SIGKILL):
    // wait for them, as a user would, before the run's dir is free for --resume.
    while (Date.now() < deadline && [0, 1, 2, 3].some((r) => rankPid(config, r) != null))
      await new Promise((r) => setTimeout(r, 50));
    return { killed, code, signal, output };
  }

  // The pid of the CLI process that is rank `rank` of the run over `config` (read from its environment).
  function rankPid(config: string, rank: number): number | null {
    for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      try {
        const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (!cmdline.includes(config) || cmdline.includes('launch')) continue;
        const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
        const r = environ.find((e) => e.startsWith('OMPI_COMM_WORLD_RANK=') || e.startsWith('FUSED_DISTILL_RANK='));
        if (r && Number(r.split('=')[1]) === rank) return Number(pid);
      } catch {
        // a process that ended meanwhile
      }
    }
    return null;
  }

  withMpi(
    `(b, c) rank 1 killed under mpirun: a non-zero exit naming it; resumed at 1 rank: the uninterrupted weights${noMpi}`,
    async () => {
      const long = { steps: 60, checkpointEvery: 2, evalEvery: 0 };
      ok(cli({ kind: 'one' }, ['teacher', 'train', teacherConfig('long1', long)]), 'one process, 60 steps');
      const config = teacherConfig('killed', long);
      const run = await killAfterCheckpoint({ kind: 'mpirun', n: 2 }, config, 'killed', 1);
      expect(run.killed).not.toBeNull();
      expect(run.code).not.toBe(0);
      expect(run.output).toMatch(/rank 1[\s\S]*(signal 9|Killed)/);
      expect(fs.existsSync(path.join(tmp, 'killed', 'result.json'))).toBe(false);
      ok(cli({ kind: 'one' }, ['teacher', 'train', config, '--resume']), 'resume at 1 rank');
      expect(weights('killed').equals(weights('long1'))).toBe(true);
    },
    240000,
  );
});

describe('the built-in launcher (no MPI needed)', () => {
  beforeAll(() => {
    if (!fs.existsSync(path.join(tmp, 'one', 'result.json')))
      ok(cli({ kind: 'one' }, ['teacher', 'train', teacherConfig('one')]), 'one process');
  }, 240000);

  it('(a) launch --nproc 2: the weights of one process, bit for bit', () => {
    ok(cli({ kind: 'launch', n: 2 }, ['teacher', 'train', teacherConfig('launch2')]), 'launch --nproc 2');
    expect(weights('launch2').equals(weights('one'))).toBe(true);
    expect(result('launch2').worldSize).toBe(2);
  }, 240000);

  it('(b, c) rank 1 killed under launch: a non-zero exit naming it; resumed at 2 ranks: the uninterrupted weights', async () => {
    const long = { steps: 60, checkpointEvery: 2, evalEvery: 0 };
    if (!fs.existsSync(path.join(tmp, 'long1', 'result.json')))
      ok(cli({ kind: 'one' }, ['teacher', 'train', teacherConfig('long1', long)]), 'one process, 60 steps');
    const config = teacherConfig('killedLaunch', long);
    const [cmd, argv] = argvOf({ kind: 'launch', n: 2 }, ['teacher', 'train', config]);
    const proc = spawn(cmd, argv, { env, cwd: ROOT });
    let output = '';
    proc.stdout.on('data', (d) => (output += d));
    proc.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    const checkpoints = path.join(tmp, 'killedLaunch', 'checkpoints');
    const deadline = Date.now() + 120000;
    let killed = false;
    while (!killed && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      if (!fs.existsSync(checkpoints) || !fs.readdirSync(checkpoints).some((n) => n.startsWith('step-'))) continue;
      // rank 1: the child of the launcher whose environment says so
      for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
        try {
          const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
          if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(config)) continue;
          if (environ.includes('FUSED_DISTILL_RANK=1') && !killed) {
            process.kill(Number(pid), 'SIGKILL');
            killed = true;
          }
        } catch {
          // ended meanwhile
        }
      }
    }
    expect(killed).toBe(true);
    expect(await exited).not.toBe(0);
    expect(output).toMatch(/rank 1 \(pid \d+\) was killed by SIGKILL/);
    ok(cli({ kind: 'launch', n: 2 }, ['teacher', 'train', config, '--resume']), 'resume under launch');
    expect(weights('killedLaunch').equals(weights('long1'))).toBe(true);
  }, 240000);

  it('(d) teacher score --out and eval under 2 ranks write what one process writes', () => {
    const student = (name: string) => {
      const file = path.join(tmp, `${name}.json`);
      fs.writeFileSync(
        file,
        JSON.stringify({
          output: path.join(tmp, name),
          teacher: { checkpoint: path.join(tmp, 'one', 'model') },
          student: { model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 } },
          data: { collection: collDir, negatives: 3, maxLength: 40, trainQueries: 8, evalQueries: 4 },
          train: { batch: 4, microBatch: 1, steps: 5, seed: 4 },
        }),
      );
      return file;
    };
    const scores = (n: number) => path.join(tmp, `scores-${n}.tsv`);
    ok(cli({ kind: 'one' }, ['teacher', 'score', student('s'), '--out', scores(1)]), 'teacher score, one process');
    ok(cli({ kind: 'launch', n: 2 }, ['teacher', 'score', student('s'), '--out', scores(2)]), 'teacher score, 2 ranks');
    expect(fs.readFileSync(scores(2), 'utf8')).toBe(fs.readFileSync(scores(1), 'utf8'));

    const evalArgs = (n: number) => [
      'eval',
      `teacher=${path.join(tmp, 'one', 'model')}`,
      '--collection',
      collDir,
      '--max-length',
      '40',
      '--run-out',
      path.join(tmp, `run-${n}-{name}.trec`),
    ];
    const one = ok(cli({ kind: 'one' }, evalArgs(1)), 'eval, one process');
    const two = ok(cli({ kind: 'launch', n: 2 }, evalArgs(2)), 'eval, 2 ranks');
    // the table's rows without their last column (ms/query: timed, differs run to run)
    const table = (s: string) =>
      s
        .split('\n')
        .filter((l) => /^\| (teacher|BM25)/.test(l))
        .map((l) => l.replace(/\|[^|]*\|\s*$/, '|'));
    expect(fs.readFileSync(path.join(tmp, 'run-2-teacher.trec'), 'utf8')).toBe(
      fs.readFileSync(path.join(tmp, 'run-1-teacher.trec'), 'utf8'),
    );
    expect(table(two.stdout).length).toBeGreaterThan(0);
    expect(table(two.stdout)).toEqual(table(one.stdout));
    // rank 0 alone prints the table (rank 1's stdout is quiet: no "[rank 1]" table lines)
    expect(two.stdout.match(/^\| teacher/gm)).toHaveLength(1);
    expect(two.stdout).not.toMatch(/^\[rank 1\] \|/m);
  }, 240000);
});

describe('the launcher on two "machines" (two launches on this one)', () => {
  it('launch --nnodes 2, one rank each: the weights of one process, bit for bit', async () => {
    if (!fs.existsSync(path.join(tmp, 'one', 'result.json')))
      ok(cli({ kind: 'one' }, ['teacher', 'train', teacherConfig('one')]), 'one process');
    const config = teacherConfig('nodes2');
    const net = await import('net');
    const port = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (server.address() as { port: number }).port;
        server.close(() => resolve(p));
      });
    });
    const machine = (k: number) =>
      new Promise<{ code: number | null; output: string }>((resolve) => {
        const args = ['launch', '--nproc', '1', '--nnodes', '2', '--node-rank', String(k)];
        args.push('--master-addr', '127.0.0.1', '--master-port', String(port), '--run-id', 'nodes2-test');
        const proc = spawn(process.execPath, [CLI, ...args, '--', ...GLOBAL, 'teacher', 'train', config], {
          env,
          cwd: ROOT,
        });
        let output = '';
        proc.stdout.on('data', (d) => (output += d));
        proc.stderr.on('data', (d) => (output += d));
        proc.on('exit', (code) => resolve({ code, output }));
      });
    // machine 1 first: its rank waits for machine 0's hub
    const one = machine(1);
    await new Promise((r) => setTimeout(r, 500));
    const [m1, m0] = await Promise.all([one, machine(0)]);
    expect(m0.output).not.toMatch(/error/i);
    expect([m0.code, m1.code]).toEqual([0, 0]);
    expect(weights('nodes2').equals(weights('one'))).toBe(true);
    expect(result('nodes2').worldSize).toBe(2);
  }, 240000);

  it('--nnodes without its companions is a usage error naming them', () => {
    const r = spawnSync(process.execPath, [CLI, 'launch', '--nproc', '1', '--nnodes', '2', '--', 'eval'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/launch --nnodes 2: also give --node-rank, --master-addr, --master-port, --run-id/);
  });
});

describe('commands that run in one process', () => {
  it('refuse to run as ranks, naming the ones that can', () => {
    const r = cli({ kind: 'launch', n: 2 }, ['data', 'build', path.join(tmp, 'never')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(
      /data build runs in one process \(this is rank \d of 2\); under mpirun or launch run: teacher train, teacher score, distill, eval/,
    );
    expect(fs.existsSync(path.join(tmp, 'never'))).toBe(false);
  }, 60000);
});
