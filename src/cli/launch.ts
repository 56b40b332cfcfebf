// `fused-distill launch --nproc <n> [--nnodes m ...] -- <command> [args...]`: runs a fused-distill
// command as n data-parallel ranks on this machine (src/distributed/launch.ts), or on each of m
// machines, one launch on each, machine 0 running the hub. Each
// rank runs `node <this package's CLI> <command> [args...]`; the global options given to launch
// itself (--backend, --threads, ...) are passed on to every rank.
import * as path from 'path';
import { CommanderError, type Command } from 'commander';

import { launch, type LaunchOptions } from '../distributed/launch';
import { launchedByLauncher } from '../distributed/tcp';
import { UsageError, nonNegativeInt, positiveInt } from './common';

/** This package's CLI entry point (dist/cli/index.js next to this file). */
const CLI = path.join(__dirname, 'index.js');

/** The program's options the user gave on the command line, as arguments for the ranks' CLI. */
export function forwardedGlobals(program: Command): string[] {
  const args: string[] = [];
  for (const option of program.options) {
    const name = option.attributeName();
    if (program.getOptionValueSource(name) !== 'cli') continue;
    const value = program.getOptionValue(name) as unknown;
    if (value === true) args.push(option.long!);
    else if (value !== false && value != null) args.push(option.long!, String(value));
  }
  return args;
}

/** The command line of every rank: this node, the CLI, the global options, then the command. */
export function rankCommand(program: Command, args: string[]): string[] {
  if (args.length === 0) throw new UsageError('launch: name the fused-distill command to run after --');
  if (args[0] === 'launch') throw new UsageError('launch: the command to run cannot be launch itself');
  return [process.execPath, CLI, ...forwardedGlobals(program), ...args];
}

interface LaunchCliOptions {
  nproc: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  runId?: string;
}

/** --nnodes and its companions, each checked with the option's name. */
export function nodesOf(o: LaunchCliOptions): LaunchOptions['nodes'] {
  const count = o.nnodes ?? 1;
  if (count === 1) {
    const stray = (['nodeRank', 'masterAddr', 'masterPort', 'runId'] as const).filter((k) => o[k] != null);
    if (stray.length > 0)
      throw new UsageError(
        `launch: ${stray.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')} go with --nnodes > 1`,
      );
    return undefined;
  }
  const missing = [
    o.nodeRank == null && '--node-rank',
    o.masterAddr == null && '--master-addr',
    o.masterPort == null && '--master-port',
    o.runId == null && '--run-id',
  ].filter(Boolean);
  if (missing.length > 0) throw new UsageError(`launch --nnodes ${count}: also give ${missing.join(', ')}`);
  if (o.nodeRank! >= count) throw new UsageError(`launch: --node-rank ${o.nodeRank} is not in 0..${count - 1}`);
  if (o.masterPort! > 65535) throw new UsageError(`launch: --master-port ${o.masterPort} is not a port (1..65535)`);
  return { count, rank: o.nodeRank!, masterAddr: o.masterAddr!, masterPort: o.masterPort!, runId: o.runId! };
}

export function registerLaunch(program: Command): void {
  program
    .command('launch')
    .description(
      'run a fused-distill command as n data-parallel ranks on this machine, or on each of --nnodes machines (the built-in launcher, without MPI)',
    )
    .requiredOption('--nproc <n>', 'how many ranks (processes) to start on this machine', positiveInt)
    .option('--nnodes <n>', 'machines in the run, one launch on each (default 1)', positiveInt)
    .option('--node-rank <k>', "this machine's place, 0..nnodes-1 (machine 0 runs the hub)", nonNegativeInt)
    .option('--master-addr <host>', "machine 0's address, reachable from every machine (with --nnodes > 1)")
    .option('--master-port <port>', "the hub's port on machine 0 (with --nnodes > 1)", positiveInt)
    .option('--run-id <id>', 'the same id on every machine of the run (with --nnodes > 1)')
    .argument('<command...>', 'the fused-distill command and its arguments, after --')
    .addHelpText(
      'after',
      '\nExample: fused-distill --backend cuda launch --nproc 2 -- distill run.json --resume\n' +
        'Rank 0 prints as usual; the other ranks\' lines start with "[rank r] ". One rank failing stops them all.',
    )
    .action(async (args: string[], o: LaunchCliOptions) => {
      if (launchedByLauncher(process.env))
        throw new UsageError('launch: this process is already a rank of a launch (nested launches are not supported)');
      const command = rankCommand(program, args);
      const nodes = nodesOf(o);
      // The launcher passes SIGINT / SIGTERM on to the ranks and waits for them; the CLI's own
      // handlers would end this process at once and leave the ranks behind.
      const saved = { SIGINT: process.rawListeners('SIGINT'), SIGTERM: process.rawListeners('SIGTERM') };
      for (const s of ['SIGINT', 'SIGTERM'] as const) process.removeAllListeners(s);
      let code: number;
      try {
        code = await launch({ nproc: o.nproc, command, nodes });
      } finally {
        for (const s of ['SIGINT', 'SIGTERM'] as const)
          for (const l of saved[s]) process.on(s, l as (signal: NodeJS.Signals) => void);
      }
      // the launcher has said why; a CommanderError makes the CLI exit with the code and print nothing more
      if (code !== 0) throw new CommanderError(code, 'fused-distill.launch', `a rank failed (exit ${code})`);
    });
}
