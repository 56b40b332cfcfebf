// `fused-distill export <model> <dir>`: a trained model (a model dir or a run dir holding model/)
// written as a Hugging Face BertForSequenceClassification directory (src/models/hf_export.ts), for
// transformers' AutoModelForSequenceClassification and sentence-transformers' CrossEncoder.
import * as path from 'path';
import { Option, type Command } from 'commander';

import { loadCrossEncoder } from '../models/checkpoint';
import {
  HUGGING_FACE_DTYPES,
  saveHuggingFace,
  tokenizerFilesFromDir,
  type HuggingFaceDtype,
} from '../models/hf_export';
import { UsageError, parseModelSpec } from './common';

interface ExportOptions {
  dtype: HuggingFaceDtype;
  tokenizer?: string;
}

export function registerExport(program: Command, setup: () => Promise<string>): void {
  program
    .command('export')
    .description(
      'write a model as a Hugging Face BertForSequenceClassification dir (config.json, model.safetensors, tokenizer)',
    )
    .argument('<model>', 'a model dir (model.json) or a run dir holding model/')
    .argument('<dir>', 'the Hugging Face dir to write (replaced when it holds a previous export)')
    .addOption(
      new Option('--dtype <dtype>', 'weights dtype in model.safetensors').choices(HUGGING_FACE_DTYPES).default('F32'),
    )
    .option('--tokenizer <dir>', "copy this Hugging Face dir's tokenizer files (default: bert-base-uncased's)")
    .action(async (spec: string, dir: string, o: ExportOptions) => {
      const { dir: modelDir, kind } = parseModelSpec(spec);
      if (kind === 'huggingface') throw new UsageError(`${spec} is a Hugging Face dir already: nothing to export`);
      await setup();
      let tokenizer;
      try {
        tokenizer = o.tokenizer ? tokenizerFilesFromDir(path.resolve(o.tokenizer)) : undefined;
      } catch (e) {
        throw new UsageError(`--tokenizer: ${(e as Error).message}`);
      }
      const model = loadCrossEncoder(modelDir);
      try {
        await saveHuggingFace(model, dir, { dtype: o.dtype, tokenizer });
      } finally {
        model.dispose();
      }
      process.stdout.write(`wrote ${path.resolve(dir)} (BertForSequenceClassification, ${o.dtype})\n`);
    });
}
