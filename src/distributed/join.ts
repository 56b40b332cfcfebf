// Which world this process belongs to, read from how it was started: by `mpirun` (or another MPI
// launcher: the MPI transport), by `fused-distill launch` (its TCP hub), or by nothing (one process).
// The CLI joins once at start and makes it the library's default world (setWorld).
import { joinMpi, launchedByMpi, mpiAvailable, mpiUnavailableReason } from './mpi';
import { joinTcp, launchedByLauncher } from './tcp';
import { singleWorld, type World } from './world';

/** How this process was started: 'mpi', 'launch' or 'single'. */
export function launchKind(env: NodeJS.ProcessEnv = process.env): 'mpi' | 'launch' | 'single' {
  if (launchedByLauncher(env)) return 'launch';
  if (launchedByMpi(env)) return 'mpi';
  return 'single';
}

/**
 * Joins the world this process was started in. Under an MPI launcher without the MPI addon the
 * error says how to build it, and that `fused-distill launch` runs ranks without MPI.
 */
export async function joinWorld(env: NodeJS.ProcessEnv = process.env): Promise<World> {
  switch (launchKind(env)) {
    case 'launch':
      return joinTcp(env);
    case 'mpi':
      if (!mpiAvailable())
        throw new Error(
          `started by an MPI launcher, but ${mpiUnavailableReason()}; or run the ranks with \`fused-distill launch --nproc N -- <command>\`, which needs no MPI`,
        );
      return joinMpi();
    default:
      return singleWorld;
  }
}
