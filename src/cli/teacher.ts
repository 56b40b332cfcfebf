// `fused-distill teacher train <config>`: trains a teacher on hard labels (src/distill trainTeacher),
// with progress and a run report (report.json / .md / .html in the run's output dir).
// `fused-distill teacher score <student-config>`: fills the teacher-score cache a student run reads
// (every training pair the student can draw), so the scoring is a step of its own.
import type { Command } from 'commander';

import { loadStudentConfig, loadTeacherConfig } from '../distill/config';
import { prepareTeacherScores, trainTeacher } from '../distill/train';
import { objectiveText } from '../report/report';
import { checkConfigPaths, existingFile, progressFor, reportRun, withRunProgress, type GlobalOptions } from './common';

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
    .action(async (file: string, o: { resume?: boolean }) => {
      const abs = existingFile(file);
      const config = loadTeacherConfig(abs);
      checkConfigPaths(file, config);
      const backend = await setup();
      const progress = progressFor(globals());
      try {
        const r = await withRunProgress(progress, 'teacher', (onProgress) =>
          trainTeacher(config, { resume: o.resume, onProgress }),
        );
        progress.close();
        const html = await reportRun('teacher', 'teacher', objectiveText(config.loss), abs, backend, r);
        const f = r.result.final;
        process.stdout.write(`teacher model: ${r.result.modelDir}\n`);
        if (f)
          process.stdout.write(
            `${f.split} (${f.queries} queries): MRR@10 ${f.mrr10.toFixed(4)}  nDCG@10 ${f.ndcg10.toFixed(4)}\n`,
          );
        process.stdout.write(`report: ${html}\n`);
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
    .action(async (file: string) => {
      const config = loadStudentConfig(existingFile(file));
      checkConfigPaths(file, config);
      await setup();
      const progress = progressFor(globals());
      try {
        progress.setLabel('teacher scores');
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
