#!/usr/bin/env node
// fused-distill: the command line. One file per command group:
//   data build                      data.ts     the bundled (or a custom-sized) collection
//   teacher train | teacher score   teacher.ts  a teacher on hard labels; the teacher-score cache
//   distill                         distill.ts  a student from a teacher
//   pretrain                        pretrain.ts masked-language-model pre-training of an encoder
//   eval                            eval.ts     models compared: metrics, t-test, parameters, ms/query
//   export                          export.ts   a model as a Hugging Face BertForSequenceClassification dir
//   main | grid                     grid.ts     a whole suite (src/suite): teacher, students, eval, table
//   launch                          launch.ts   N ranks of a command on this machine (without mpirun)
// Global options pick the tfjs backend (default 'native', this package's addon), the kernel
// threads and how progress is shown (progress.ts). Shared helpers: common.ts. The work itself is
// the library's (src/distill, src/eval, src/suite, src/report): commands parse, call and print.
import { Command, CommanderError, Option } from 'commander';

import { ConfigError } from '../distill/config';
import { joinWorld } from '../distributed/join';
import { getWorld, setWorld, singleWorld, type World } from '../distributed/world';
import { BACKENDS, UsageError, positiveInt, useBackend, type GlobalOptions } from './common';
import { registerData } from './data';
import { registerDistill } from './distill';
import { registerEval } from './eval';
import { registerExport } from './export';
import { registerLaunch } from './launch';
import { registerSuites } from './grid';
import { PROGRESS_MODES } from './progress';
import { registerPretrain } from './pretrain';
import { registerTeacher } from './teacher';

/** The commands that run as several ranks (mpirun, launch), sharing their work. */
export const RANK_COMMANDS = ['teacher train', 'teacher score', 'distill', 'eval'];

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('fused-distill')
    .description('Distil BERT cross-encoder rankers with fused loss kernels (TensorFlow.js + a C++ addon)')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS).default('native'))
    .option(
      '--threads <n>',
      'threads for the native kernels (default: the core count, or FUSED_DISTILL_NUM_THREADS)',
      positiveInt,
    )
    .addOption(
      new Option(
        '--precision <p>',
        'matrix products: fp32 (default), bf16 (bf16 inputs, fp32 accumulation; native, cuda) or tf32 (cuda)',
      ).choices(['fp32', 'bf16', 'tf32']),
    )
    .addOption(
      new Option('--progress <mode>', 'progress display (default: bars on a terminal, lines otherwise)').choices(
        PROGRESS_MODES,
      ),
    )
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  const globals = () => program.opts<GlobalOptions>();
  const setup = async () => {
    const g = globals();
    await useBackend(g.backend, g.threads, g.precision);
    return g.backend;
  };
  registerData(program, globals);
  registerTeacher(program, globals, setup);
  registerDistill(program, globals, setup);
  registerPretrain(program, globals, setup);
  registerEval(program, globals, setup);
  registerExport(program, setup);
  registerSuites(program, globals, setup);
  registerLaunch(program);
  // Started as several ranks, only the commands that share their work run; the others write shared
  // files from one process and would race (data build/index, export, pretrain, main, grid).
  program.hook('preAction', (_program, action) => {
    const world = getWorld();
    const name = [action.parent?.name() === program.name() ? '' : action.parent?.name(), action.name()]
      .filter(Boolean)
      .join(' ');
    if (world.size > 1 && !RANK_COMMANDS.includes(name))
      throw new UsageError(
        `${name} runs in one process (this is rank ${world.rank} of ${world.size}); under mpirun or launch run: ${RANK_COMMANDS.join(', ')}`,
      );
  });
  // Subcommands stop at errors the same way (commander prints the message).
  const override = (c: Command) => {
    c.exitOverride();
    c.showHelpAfterError('(add --help for usage)');
    c.commands.forEach(override);
  };
  program.commands.forEach(override);
  return program;
}

/** Runs the CLI; resolves to the exit code. */
export async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  let world: World = singleWorld;
  try {
    // Started by mpirun or `fused-distill launch`: this process is one rank of the command.
    world = await joinWorld();
    setWorld(world);
    // Rank 0 speaks for the command (results, tables, paths); the others' stdout stays quiet, their
    // errors still reach stderr.
    if (world.rank !== 0) process.stdout.write = (() => true) as typeof process.stdout.write;
    await program.parseAsync(argv);
    await world.close();
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode; // commander printed it (or help / version: code 0)
    const message = e instanceof Error ? e.message : String(e);
    const rank = world.size > 1 ? ` (rank ${world.rank} of ${world.size})` : '';
    process.stderr.write(`fused-distill: error${rank}: ${message}\n`);
    if (!(e instanceof UsageError || e instanceof ConfigError) && process.env.FUSED_DISTILL_DEBUG)
      process.stderr.write(`${(e as Error).stack}\n`);
    return e instanceof UsageError || e instanceof ConfigError ? 2 : 1;
  }
}

// Ctrl-C / kill: progress bars hide the terminal's cursor; show it again before the process ends
// (the output dirs' locks are released by their own exit handlers).
function onSignal(signal: NodeJS.Signals, code: number): void {
  if (process.stderr.isTTY) process.stderr.write('\x1b[?25h\n');
  process.stderr.write(`fused-distill: stopped by ${signal}\n`);
  process.exit(code);
}

if (require.main === module) {
  process.once('SIGINT', () => onSignal('SIGINT', 130));
  process.once('SIGTERM', () => onSignal('SIGTERM', 143));
  let settled = false;
  // A command whose promise never settles (a stream error nobody awaited) would end with code 0 and
  // nothing said: make it a failure.
  process.on('beforeExit', () => {
    if (settled) return;
    settled = true;
    process.stderr.write(
      'fused-distill: error: the command stopped before it finished (an I/O error was lost); nothing was committed\n',
    );
    process.exitCode = 1;
  });
  // An error raised outside the command's promise (an 'error' event without a listener) still ends
  // with one message.
  process.on('uncaughtException', (e) => {
    if (process.stderr.isTTY) process.stderr.write('\x1b[?25h');
    process.stderr.write(`fused-distill: error: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.FUSED_DISTILL_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  });
  run(process.argv).then((code) => {
    settled = true;
    process.exitCode = code;
  });
}
