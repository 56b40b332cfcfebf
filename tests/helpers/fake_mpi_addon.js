// A stand-in for build/Release/fused_distill_mpi.node (loaded through FUSED_DISTILL_MPI_ADDON) whose
// collectives fail as MPI would report it, so tests/mpi.test.ts can check how src/distributed/mpi.ts
// surfaces an MPI error without a broken MPI run.
'use strict';
let finalized = 0;
module.exports = {
  available: () => true,
  unavailableReason: () => '',
  init: () => ({ rank: 1, size: 2, localRank: 1, localSize: 2, library: 'Fake MPI' }),
  allgatherv: () => {
    throw new Error('MPI_Allgatherv failed: MPI_ERR_TRUNCATE: message truncated');
  },
  broadcast: () => {
    throw new RangeError('broadcast: root 9 is not a rank of this world (0..1)');
  },
  barrier: () => undefined,
  finalize: () => {
    finalized += 1;
  },
  abort: () => {
    throw new Error('abort called');
  },
  finalizeCount: () => finalized,
};
