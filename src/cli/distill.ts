// `fused-distill distill <config>`: distils a student from a teacher (src/distill distill) with the
// config's objective, with progress (each loss part) and a run report in the run's output dir.
import type { Command } from 'commander';

import { loadStudentConfig } from '../distill/config';
import { distill } from '../distill/train';
import { objectiveText } from '../report/report';
import {
  checkConfigPaths,
  existingFile,
  progressFor,
  reportRun,
  withRunProgress,
  withSkipBadRows,
  printRunEnd,
  type GlobalOptions,
} from './common';

export function registerDistill(program: Command, globals: () => GlobalOptions, setup: () => Promise<string>): void {
  program
    .command('distill')
    .description('distil a student from a teacher (a student run config: teacher, student, data, train, loss)')
    .argument('<config>', 'student run config (JSON)')
    .option(
      '--resume',
      "continue from the output dir's latest checkpoint (a finished run with the same config is returned as is)",
    )
    .option('--name <name>', "the run's name in progress and report (default: the output dir's name)")
    .option('--skip-bad-rows', 'skip malformed data rows, counted per file and written into result.json')
    .action(async (file: string, o: { resume?: boolean; name?: string; skipBadRows?: boolean }) => {
      const abs = existingFile(file);
      const config = withSkipBadRows(loadStudentConfig(abs), o.skipBadRows);
      checkConfigPaths(file, config);
      const backend = await setup();
      const progress = progressFor(globals());
      const name = o.name ?? config.output.split(/[\\/]/).filter(Boolean).pop() ?? 'student';
      try {
        const r = await withRunProgress(progress, name, (onProgress) =>
          distill(config, { resume: o.resume, onProgress }),
        );
        progress.close();
        const html = await reportRun(
          'student',
          name,
          `${objectiveText(config.loss)}; init ${config.student.init}`,
          abs,
          backend,
          r,
        );
        printRunEnd('student', r.result, html);
      } finally {
        progress.close();
      }
    });
}
