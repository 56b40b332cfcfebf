// The MPI transport (src/distributed/mpi.ts over the fused_distill_mpi addon): real ranks started by
// mpirun, each writing what its collectives returned (tests/helpers/mpi_child.ts), compared here.
// Skipped only where `mpirun` is not on PATH (CI installs Open MPI before `npm install`).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');
const version = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
const hasMpirun = !version.error && version.status === 0;
// Open MPI refuses to run as root, and more ranks than cores, unless told; MPICH needs neither flag.
const MPIRUN_FLAGS = /Open MPI|OpenRTE/.test(version.stdout ?? '') ? ['--allow-run-as-root', '--oversubscribe'] : [];

interface RankReport {
  rank: number;
  size: number;
  localRank: number;
  localSize: number;
  transport: string;
  library: string;
  launchedByMpi: boolean;
  gathered: number[][];
  aligned: boolean;
  broadcast: string;
  badRoot: { name: string; message: string } | null;
  badBytes: { name: string; message: string } | null;
  after: number[][];
  closed: { name: string; message: string; collective: boolean };
}

// The bytes mpi_child.ts gives rank r (rank 1's are empty).
const partOf = (r: number) => Array.from({ length: r === 1 ? 0 : 5 + 7 * r }, (_, i) => (r * 31 + i) & 255);

// mpirun -np <np> of tests/helpers/mpi_child.ts with <out dir> and `args`.
function mpirun(np: number, out: string, args: string[] = []) {
  const child = [path.join(ROOT, 'tests/helpers/ts_register.js'), path.join(ROOT, 'tests/helpers/mpi_child.ts')];
  return spawnSync('mpirun', [...MPIRUN_FLAGS, '-np', String(np), process.execPath, '-r', ...child, out, ...args], {
    encoding: 'utf8',
    timeout: 90000,
    cwd: ROOT,
  });
}

function runRanks(np: number): RankReport[] {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-mpi-'));
  try {
    const r = mpirun(np, out);
    if (r.status !== 0) throw new Error(`mpirun -np ${np} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
    return Array.from({ length: np }, (_, k) => JSON.parse(fs.readFileSync(path.join(out, `rank-${k}.json`), 'utf8')));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

describe('the MPI world (mpirun)', () => {
  const check = hasMpirun ? it : it.skip;
  const why = hasMpirun ? '' : ' [SKIPPED: mpirun is not on PATH; install Open MPI (openmpi-bin libopenmpi-dev)]';

  check(`2 ranks: allgather of different lengths, broadcast from rank 1, barrier, errors, close${why}`, () => {
    const reports = runRanks(2);
    for (const [k, r] of reports.entries()) {
      expect([r.rank, r.size, r.localRank, r.localSize, r.transport]).toEqual([k, 2, k, 2, 'mpi']);
      expect(r.library).toMatch(/MPI/);
      expect(r.launchedByMpi).toBe(true);
      expect(r.gathered).toEqual([partOf(0), partOf(1)]);
      expect(r.aligned).toBe(true);
      expect(r.broadcast).toBe('bytes of rank 1 bytes of rank 1 ');
      // A bad call is a JS error on every rank alike, and the world still works after it.
      expect(r.badRoot).toEqual({
        name: 'RangeError',
        message: 'broadcast: root 5 is not a rank of this world (0..1)',
      });
      expect(r.badBytes).toEqual({ name: 'TypeError', message: 'allgatherv: bytes must be a Uint8Array' });
      expect(r.after).toEqual([[0], [1]]);
      expect(r.closed).toEqual({
        name: 'CollectiveError',
        message: `rank ${k}: allgather after the world was closed`,
        collective: true,
      });
    }
  });

  check(`3 ranks: allgather returns every rank's bytes in rank order${why}`, () => {
    const reports = runRanks(3);
    for (const [k, r] of reports.entries()) {
      expect([r.rank, r.size, r.localSize]).toEqual([k, 3, 3]);
      expect(r.gathered).toEqual([partOf(0), partOf(1), partOf(2)]);
      expect(r.broadcast).toBe('bytes of rank 1 bytes of rank 1 ');
      expect(r.after).toEqual([[0], [1], [2]]);
    }
  });

  for (const how of ['abort', 'exit']) {
    check(`a rank that ${how === 'abort' ? 'aborts' : 'exits without close()'} ends the run, not a hang${why}`, () => {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-mpi-'));
      try {
        const r = mpirun(2, out, [how]);
        expect(r.signal).toBeNull(); // not killed by the timeout
        expect(r.status).not.toBe(0);
        expect(fs.readdirSync(out)).toEqual([]); // rank 0 never got past its barrier
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    });
  }
});

describe('the MPI addon in one process', () => {
  it('is a separate .node: node-gyp-build still resolves the main addon', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const resolved: string = require('node-gyp-build').resolve(ROOT);
    expect(path.basename(resolved)).toBe('fused_distill.node');
  });

  it('says whether it has MPI, and why not, without starting MPI', () => {
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mpi = require('../src/distributed/mpi') as typeof import('../src/distributed/mpi');
      const available = mpi.mpiAvailable();
      expect(typeof available).toBe('boolean');
      if (available) expect(mpi.mpiUnavailableReason()).toBe('');
      else expect(mpi.mpiUnavailableReason()).toMatch(/MPI|rebuild/);
      // Where the build found mpicc, the addon must have been built over it.
      if (spawnSync('mpicc', ['--version']).status === 0) expect(available).toBe(true);
    });
  });

  it('refuses to join, naming the fix, when the addon cannot be loaded', () => {
    const saved = process.env.FUSED_DISTILL_MPI_ADDON;
    process.env.FUSED_DISTILL_MPI_ADDON = path.join(os.tmpdir(), 'no-such-dir', 'fused_distill_mpi.node');
    try {
      jest.isolateModules(() => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const mpi = require('../src/distributed/mpi') as typeof import('../src/distributed/mpi');
        expect(mpi.mpiAvailable()).toBe(false);
        expect(() => mpi.joinMpi()).toThrow(
          /cannot join an MPI world: the MPI addon .* could not be loaded.*npm rebuild/,
        );
      });
    } finally {
      if (saved === undefined) delete process.env.FUSED_DISTILL_MPI_ADDON;
      else process.env.FUSED_DISTILL_MPI_ADDON = saved;
    }
  });

  it("turns MPI's errors into CollectiveErrors and finalises once", async () => {
    const saved = process.env.FUSED_DISTILL_MPI_ADDON;
    process.env.FUSED_DISTILL_MPI_ADDON = path.join(__dirname, 'helpers', 'fake_mpi_addon.js');
    try {
      let mpi: typeof import('../src/distributed/mpi') | undefined;
      let world: typeof import('../src/distributed/world') | undefined;
      jest.isolateModules(() => {
        /* eslint-disable @typescript-eslint/no-require-imports */
        mpi = require('../src/distributed/mpi');
        world = require('../src/distributed/world');
        /* eslint-enable @typescript-eslint/no-require-imports */
      });
      const w = mpi!.joinMpi();
      expect([w.rank, w.size, w.transport, w.library]).toEqual([1, 2, 'mpi', 'Fake MPI']);
      expect(mpi!.joinMpi()).toBe(w);
      const failed = w.allgather(new Uint8Array(3));
      await expect(failed).rejects.toBeInstanceOf(world!.CollectiveError);
      await expect(failed).rejects.toThrow('rank 1: MPI_Allgatherv failed: MPI_ERR_TRUNCATE: message truncated');
      await expect(w.broadcast(new Uint8Array(1), 9)).rejects.toBeInstanceOf(RangeError);
      await w.close();
      await w.close();
      const fake = mpi!.loadMpiAddon().addon as unknown as { finalizeCount(): number };
      expect(fake.finalizeCount()).toBe(1);
      await expect(w.barrier()).rejects.toThrow('rank 1: barrier after the world was closed');
    } finally {
      if (saved === undefined) delete process.env.FUSED_DISTILL_MPI_ADDON;
      else process.env.FUSED_DISTILL_MPI_ADDON = saved;
    }
  });

  it('detects an MPI launcher from the environment', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { launchedByMpi } = require('../src/distributed/mpi') as typeof import('../src/distributed/mpi');
    expect(launchedByMpi({})).toBe(false);
    expect(launchedByMpi({ SLURM_PROCID: '0', SLURM_NTASKS: '2' })).toBe(false);
    expect(launchedByMpi({ OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '1' })).toBe(true);
    expect(launchedByMpi({ PMI_SIZE: '4', PMI_RANK: '3' })).toBe(true);
    expect(launchedByMpi({ PMIX_RANK: '0' })).toBe(true);
    expect(launchedByMpi({ OMPI_COMM_WORLD_SIZE: '' })).toBe(false);
  });
});
