// Data-parallel runs across processes: the ranks' World and its transports, the exact step sum,
// and what keeps ranks in step (docs/distributed.md).
export {
  CollectiveError,
  allgatherFloat32,
  allgatherJson,
  broadcastJson,
  getWorld,
  memoryWorlds,
  setWorld,
  shardRange,
  singleWorld,
  type World,
} from './world';
export { joinWorld, launchKind } from './join';
export { joinMpi, launchedByMpi, mpiAvailable, mpiUnavailableReason, type MpiWorld } from './mpi';
export { joinTcp, launchedByLauncher } from './tcp';
export { launch, type LaunchOptions } from './launch';
export { PairwiseTree, type TreeNode } from './tree_sum';
export { broadcastVariables, requireAgreement, requireEqualVariables, variablesHash } from './sync';
