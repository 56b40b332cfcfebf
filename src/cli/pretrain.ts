// `fused-distill pretrain <config>`: masked-language-model pre-training of a cross-encoder's encoder
// on a collection's passages (src/distill pretrain), with progress (steps/s, ETA, loss); the model dir
// it writes is a teacher run's init.checkpoint.
import * as fs from 'fs';
import type { Command } from 'commander';

import { loadPretrainConfig } from '../distill/config';
import { pretrain } from '../distill/pretrain';
import { UsageError, checkConfigPaths, existingFile, progressFor, withRunProgress, type GlobalOptions } from './common';

export function registerPretrain(program: Command, globals: () => GlobalOptions, setup: () => Promise<string>): void {
  program
    .command('pretrain')
    .description(
      "pre-train a cross-encoder's encoder with masked language modelling on a collection's passages (a pretrain run config: model, data, train, mlmProbability)",
    )
    .argument('<config>', 'pretrain run config (JSON)')
    .option(
      '--resume',
      "continue from the output dir's latest checkpoint (a finished run with the same config is returned as is)",
    )
    .action(async (file: string, o: { resume?: boolean }) => {
      const config = loadPretrainConfig(existingFile(file));
      checkConfigPaths(file, config);
      for (const [i, t] of (config.data.texts ?? []).entries())
        if (!fs.existsSync(t)) throw new UsageError(`${file}: data.texts.${i}: file not found: ${t}`);
      await setup();
      const progress = progressFor(globals());
      try {
        const r = await withRunProgress(progress, 'pretrain', (onProgress) =>
          pretrain(config, { resume: o.resume, onProgress }),
        );
        progress.close();
        const steps = r.result.log.steps;
        process.stdout.write(`pre-trained model: ${r.result.modelDir}\n`);
        if (steps.length > 0)
          process.stdout.write(
            `MLM loss: ${steps[0].loss.toFixed(4)} (step 1) -> ${steps[steps.length - 1].loss.toFixed(4)} (step ${steps.length}); ${r.seconds.toFixed(1)} s\n`,
          );
      } finally {
        progress.close();
      }
    });
}
