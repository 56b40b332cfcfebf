// `fused-distill main [suite]` (what `npm start` runs) and `fused-distill grid [suite]`: a suite
// (src/suite) end to end — the collection, the teacher (trained once per config, then reused),
// every student, the evaluation — and one table, also written as report.json / .md / .html.
// main: configs/main/main.json, the seed paper's five key objectives, sized to finish in minutes
// on a 2-core CPU. grid: configs/grid/grid.json, the whole objective grid with more steps.
import * as path from 'path';
import type { Command } from 'commander';

import { comparisonLines, resultsTable } from '../report/report';
import { loadSuite, runSuite } from '../suite/suite';
import { GRID_SUITE, MAIN_SUITE, existingFile, progressFor, type GlobalOptions } from './common';
import { formatDuration } from './progress';

interface SuiteCliOptions {
  out?: string;
  fresh?: boolean;
}

function suiteCommand(
  program: Command,
  name: string,
  description: string,
  defaultFile: string,
  globals: () => GlobalOptions,
  setup: () => Promise<string>,
): void {
  program
    .command(name)
    .description(description)
    .argument('[suite]', `suite config (JSON; default ${path.relative(process.cwd(), defaultFile) || defaultFile})`)
    .option('--out <dir>', 'output dir for the students and the report (default: the suite\'s "output")')
    .option(
      '--fresh',
      'retrain the students even when finished runs with the same config are there (the cached teacher is still reused)',
    )
    .action(async (file: string | undefined, o: SuiteCliOptions) => {
      const startedAt = Date.now();
      const suite = await loadSuite(existingFile(file ?? defaultFile, 'suite config'), { output: o.out });
      const backend = await setup();
      const progress = progressFor(globals());
      progress.info(
        `${suite.title}: teacher + ${suite.students.length} students on backend ${backend}; output ${suite.output}`,
      );
      try {
        const { files, report } = await runSuite(suite, { progress, fresh: o.fresh, startedAt });
        progress.close();
        const table = resultsTable(report);
        const v = report.evaluation!;
        process.stdout.write(
          `\n${suite.title} — ${v.split} split, ${v.queries} queries, BM25 top-${v.candidates} re-ranked; ` +
            `p: paired t-test vs "${v.baseline ?? '—'}"; ms/query: one forward pass per query\n\n${table}\n\n` +
            comparisonLines(report)
              .map((line) => `${line}\n`)
              .join('') +
            `wall time ${formatDuration(report.wallSeconds ?? 0)}; report: ${files.md}, ${files.html}\n`,
        );
      } finally {
        progress.close();
      }
    });
}

export function registerSuites(program: Command, globals: () => GlobalOptions, setup: () => Promise<string>): void {
  suiteCommand(
    program,
    'main',
    "the main job (npm start): build/load the collection, train or reuse the teacher, distil the paper's 5 key student objectives, print the comparison table",
    MAIN_SUITE,
    globals,
    setup,
  );
  suiteCommand(
    program,
    'grid',
    'the whole objective grid (hard, soft, feature terms and their mixes) with more steps; same flow and table as main',
    GRID_SUITE,
    globals,
    setup,
  );
}
