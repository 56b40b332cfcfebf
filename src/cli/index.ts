#!/usr/bin/env node
// fused-distill: the command line. One file per command group:
//   data build                      data.ts     the bundled (or a custom-sized) collection
//   teacher train | teacher score   teacher.ts  a teacher on hard labels; the teacher-score cache
//   distill                         distill.ts  a student from a teacher
//   eval                            eval.ts     models compared: metrics, t-test, parameters, ms/query
//   main | grid                     grid.ts     a whole suite (src/suite): teacher, students, eval, table
// Global options pick the tfjs backend (default 'native', this package's addon), the kernel
// threads and how progress is shown (progress.ts). Shared helpers: common.ts. The work itself is
// the library's (src/distill, src/eval, src/suite, src/report): commands parse, call and print.
import { Command, CommanderError, Option } from 'commander';

import { ConfigError } from '../distill/config';
import { BACKENDS, UsageError, positiveInt, useBackend, type GlobalOptions } from './common';
import { registerData } from './data';
import { registerDistill } from './distill';
import { registerEval } from './eval';
import { registerSuites } from './grid';
import { PROGRESS_MODES } from './progress';
import { registerTeacher } from './teacher';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('fused-distill')
    .description('Distil BERT cross-encoder rankers with fused loss kernels (TensorFlow.js + a C++ addon)')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS).default('native'))
    .option('--threads <n>', 'threads for the native kernels (default: the core count, or FUSED_DISTILL_NUM_THREADS)', positiveInt)
    .addOption(new Option('--progress <mode>', 'progress display (default: bars on a terminal, lines otherwise)').choices(PROGRESS_MODES))
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  const globals = () => program.opts<GlobalOptions>();
  const setup = async () => {
    const g = globals();
    await useBackend(g.backend, g.threads);
    return g.backend;
  };
  registerData(program);
  registerTeacher(program, globals, setup);
  registerDistill(program, globals, setup);
  registerEval(program, globals, setup);
  registerSuites(program, globals, setup);
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
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode; // commander printed it (or help / version: code 0)
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`fused-distill: error: ${message}\n`);
    if (!(e instanceof UsageError || e instanceof ConfigError) && process.env.FUSED_DISTILL_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    return e instanceof UsageError || e instanceof ConfigError ? 2 : 1;
  }
}

if (require.main === module) {
  run(process.argv).then((code) => {
    process.exitCode = code;
  });
}
