// `fused-distill teacher train <config>`: trains a teacher on hard labels (src/distill trainTeacher),
// with progress and a run report (report.json / .md / .html in the run's output dir).
// `fused-distill teacher score <student-config>`: fills the teacher-score cache a student run reads
// (every training pair the student can draw), so the scoring is a step of its own; with `--out
// <file>`, streams the scores of exactly the pairs the run draws to a `qid pid score` file (resumable
// after a kill) that a run reads back as teacher.scores.
// --skip-bad-rows (both commands; config data.skipBadRows): malformed data rows are skipped and counted.
import type { Command } from 'commander';

import { loadStudentConfig, loadTeacherConfig } from '../distill/config';
import { prepareTeacherScores, streamRunTeacherScores, trainTeacher } from '../distill/train';
import { objectiveText } from '../report/report';
import {
  UsageError,
  checkConfigPaths,
  existingFile,
  positiveInt,
  progressFor,
  reportRun,
  withRunProgress,
  withSkipBadRows,
  printBadRows,
  printRunEnd,
  type GlobalOptions,
} from './common';

export function registerTeacher(program: Command, globals: () => GlobalOptions, setup: () => Promise<string>): void {
  const teacher = program.command('teacher').description('teacher cross-encoders');
  teacher
    .command('train')
    .description('train a teacher cross-encoder on hard labels (a teacher run config: model, data, train, loss)')
    .argument('<config>', 'teacher run config (JSON)')
    .option(
      '--resume',
      "continue from the output dir's latest checkpoint (a finished run with the same config is returned as is)",
    )
    .option('--skip-bad-rows', 'skip malformed data rows, counted per file and written into result.json')
    .action(async (file: string, o: { resume?: boolean; skipBadRows?: boolean }) => {
      const abs = existingFile(file);
      const config = withSkipBadRows(loadTeacherConfig(abs), o.skipBadRows);
      checkConfigPaths(file, config);
      const backend = await setup();
      const progress = progressFor(globals());
      try {
        const r = await withRunProgress(progress, 'teacher', (onProgress) =>
          trainTeacher(config, { resume: o.resume, onProgress }),
        );
        progress.close();
        const html = await reportRun('teacher', 'teacher', objectiveText(config.loss), abs, backend, r);
        printRunEnd('teacher', r.result, html);
      } finally {
        progress.close();
      }
    });

  teacher
    .command('score')
    .description(
      'fill the teacher-score cache for a student run config (scores every training pair the student can draw)',
    )
    .argument('<student-config>', 'student run config (JSON); its teacher.checkpoint is the teacher')
    .option(
      '--out <file>',
      'stream the scores of the pairs the run draws to <file> (qid<TAB>pid<TAB>score; resumes after a kill); the run reads it as teacher.scores',
    )
    .option('--steps <n>', "with --out: the pairs of the run's first n steps (default: train.steps)", positiveInt)
    .option('--skip-bad-rows', 'skip malformed data rows, counted per file and printed')
    .action(async (file: string, o: { out?: string; steps?: number; skipBadRows?: boolean }) => {
      const config = withSkipBadRows(loadStudentConfig(existingFile(file)), o.skipBadRows);
      checkConfigPaths(file, config);
      if (o.steps != null && o.out == null) throw new UsageError('--steps goes with --out');
      if (o.out != null && config.teacher.scores != null)
        throw new UsageError(`${file}: teacher.scores gives scores already; teacher score --out needs a teacher model`);
      await setup();
      const progress = progressFor(globals());
      try {
        progress.setLabel('teacher scores');
        if (o.out != null) {
          const r = await streamRunTeacherScores(config, o.out, { steps: o.steps, onProgress: progress.onProgress });
          progress.close();
          process.stdout.write(
            `teacher scores: ${r.pairs} pairs ${r.computed ? (r.resumedAt > 0 ? `(${r.resumedAt} from before) written to` : 'written to') : 'already in'} ${r.file} (manifest ${r.manifest})\n`,
          );
          printBadRows(r.badRows);
          return;
        }
        const r = await prepareTeacherScores(config, { onProgress: progress.onProgress });
        progress.close();
        process.stdout.write(
          `teacher scores: ${r.scores.size} pairs ${r.computed ? 'computed into' : 'already cached in'} ${r.file}\n`,
        );
      } finally {
        progress.close();
      }
    });
}
