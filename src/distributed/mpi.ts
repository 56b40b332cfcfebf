// The MPI transport of `World`: the ranks started by `mpirun` talk through the optional addon
// fused_distill_mpi (native/mpi/), a separate .node so that the main addon never needs libmpi. It is
// built on `npm install` over the MPI that native/mpi/mpi_flags.js finds, or from a stub that says
// how to get MPI. The collectives block this rank's thread until every rank has joined them (they
// are data-parallel steps: there is nothing else for the rank to do meanwhile).
import * as path from 'path';
import { CollectiveError, type World } from './world';

/** The addon's surface (native/mpi/mpi_addon.cc). */
export interface MpiAddon {
  /** False when it was built without MPI (then `unavailableReason` says how to get it). */
  available(): boolean;
  unavailableReason(): string;
  /** MPI_Init_thread (once per process; later calls return the same values). */
  init(): { rank: number; size: number; localRank: number; localSize: number; library: string };
  /** Every rank's bytes in rank order: views of one ArrayBuffer, each starting 8-byte aligned. */
  allgatherv(bytes: Uint8Array): Uint8Array[];
  /** The root's bytes on every rank, in a fresh array. */
  broadcast(bytes: Uint8Array, root: number): Uint8Array;
  barrier(): void;
  /** MPI_Finalize (once; later calls do nothing). */
  finalize(): void;
  /** MPI_Abort: ends every rank of the run with `code`. */
  abort(code: number): never;
}

/** A world joined through MPI; `library` is MPI's own name and version ("Open MPI v4.1.4"). */
export interface MpiWorld extends World {
  readonly library: string;
  /** MPI_Abort: ends every rank of the run at once with exit code `code` (a rank that cannot go on). */
  abort(code?: number): never;
}

// The package root is one level above src/ (ts-jest, ts_register) or dist/ (the build), as for the main
// addon in src/native.ts. The MPI addon is loaded by its explicit path, never through node-gyp-build,
// which takes the first .node file it finds; FUSED_DISTILL_MPI_ADDON names another build of it.
const ROOT = path.join(__dirname, '..', '..');
const DEFAULT_ADDON = path.join(ROOT, 'build', 'Release', 'fused_distill_mpi.node');
const REBUILD = 'rebuild it with `npm rebuild fused-distill` (`npm run build:native` in a checkout)';

let loaded: { addon: MpiAddon | null; error: string } | null = null;

/** The MPI addon, or null with the reason it could not be loaded. */
export function loadMpiAddon(): { addon: MpiAddon | null; error: string } {
  if (loaded) return loaded;
  const file = process.env.FUSED_DISTILL_MPI_ADDON || DEFAULT_ADDON;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = { addon: require(file) as MpiAddon, error: '' };
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    loaded = { addon: null, error: `the MPI addon ${file} could not be loaded (${why}): ${REBUILD}` };
  }
  return loaded;
}

/** True when the MPI addon is built over MPI (never throws; MPI itself is not started). */
export function mpiAvailable(): boolean {
  const { addon } = loadMpiAddon();
  return addon !== null && addon.available();
}

/** Why `mpiAvailable()` is false, naming the fix ('' when it is true). */
export function mpiUnavailableReason(): string {
  const { addon, error } = loadMpiAddon();
  if (!addon) return error;
  return addon.available() ? '' : addon.unavailableReason();
}

/**
 * True when this process was started by an MPI launcher (mpirun/mpiexec of Open MPI, MPICH, Intel
 * MPI or MVAPICH, or a PMIx launcher such as srun --mpi=pmix): each sets its rank variables in every
 * rank's environment. A plain `srun` without an MPI plugin sets none of these and is not counted.
 */
export function launchedByMpi(env: NodeJS.ProcessEnv = process.env): boolean {
  const vars = [
    'OMPI_COMM_WORLD_SIZE', // Open MPI
    'PMIX_RANK', // PMIx: Open MPI 5, srun --mpi=pmix
    'PMI_SIZE', // PMI-1/2: MPICH's hydra, Intel MPI, srun --mpi=pmi2
    'PMI_RANK',
    'MPI_LOCALNRANKS', // MPICH
    'MV2_COMM_WORLD_SIZE', // MVAPICH
  ];
  return vars.some((name) => (env[name] ?? '') !== '');
}

let joined: MpiWorld | null = null;

/**
 * Joins the MPI world of this `mpirun` (MPI_Init on the first call; later calls return the same
 * world). Throws, naming the fix, when the addon has no MPI. `close()` finalises MPI: call it once
 * every rank is done (a rank that exits without it makes mpirun end the run as failed).
 */
export function joinMpi(): MpiWorld {
  if (joined) return joined;
  const { addon, error } = loadMpiAddon();
  if (!addon) throw new Error(`fused-distill: cannot join an MPI world: ${error}`);
  if (!addon.available()) throw new Error(`fused-distill: cannot join an MPI world: ${addon.unavailableReason()}`);
  const info = addon.init();
  let closed = false;
  // Argument errors (TypeError, RangeError) are the caller's; anything else failed in MPI.
  const collective = <T>(name: string, call: () => T): Promise<T> =>
    new Promise<T>((resolve) => {
      if (closed) throw new CollectiveError(`rank ${info.rank}: ${name} after the world was closed`);
      try {
        resolve(call());
      } catch (e) {
        if (e instanceof TypeError || e instanceof RangeError || !(e instanceof Error)) throw e;
        throw new CollectiveError(`rank ${info.rank}: ${e.message}`);
      }
    });
  joined = {
    rank: info.rank,
    size: info.size,
    localRank: info.localRank,
    localSize: info.localSize,
    transport: 'mpi',
    library: info.library,
    allgather: (bytes) => collective('allgather', () => addon.allgatherv(bytes)),
    broadcast: (bytes, root = 0) => collective('broadcast', () => addon.broadcast(bytes, root)),
    barrier: () => collective('barrier', () => addon.barrier()),
    abort: (code = 1) => addon.abort(code),
    close: async () => {
      if (closed) return;
      closed = true;
      addon.finalize();
    },
  };
  return joined;
}
