// `fused-distill export <model> <dir>`: a trained model (a model dir or a run dir holding model/)
// written as a Hugging Face directory (src/models/hf_export.ts: BERT, ELECTRA or (XLM-)RoBERTa by the
// model's shape), for transformers' AutoModelForSequenceClassification and sentence-transformers'
// CrossEncoder. The tokenizer: --tokenizer, else the Hugging Face teacher of the run that trained the
// model (its config.json's teacher.huggingface: the run tokenized with that dir's tokenizer).
import * as fs from 'fs';
import * as path from 'path';
import { Option, type Command } from 'commander';

import { loadCrossEncoder, readJsonFile } from '../models/checkpoint';
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
      'write a model as a Hugging Face dir (BERT, ELECTRA or XLM-RoBERTa/RoBERTa ForSequenceClassification: config.json, model.safetensors, tokenizer)',
    )
    .argument('<model>', 'a model dir (model.json) or a run dir holding model/')
    .argument('<dir>', 'the Hugging Face dir to write (replaced when it holds a previous export)')
    .addOption(
      new Option('--dtype <dtype>', 'weights dtype in model.safetensors').choices(HUGGING_FACE_DTYPES).default('F32'),
    )
    .option(
      '--tokenizer <dir>',
      "copy this Hugging Face dir's tokenizer files (default: the run's Hugging Face teacher's, else bert-base-uncased's)",
    )
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
      tokenizer ??= runTeacherTokenizer(modelDir);
      const model = loadCrossEncoder(modelDir);
      let saved;
      try {
        saved = await saveHuggingFace(model, dir, { dtype: o.dtype, tokenizer });
      } finally {
        model.dispose();
      }
      process.stdout.write(`wrote ${path.resolve(dir)} (${saved.architecture}, ${o.dtype})\n`);
    });
}

/**
 * The tokenizer files of the Hugging Face teacher of the run whose model/ is `modelDir` (the run
 * dir's config.json names it as teacher.huggingface), or undefined when the model is not a run's or
 * its teacher was not a hub dir.
 */
function runTeacherTokenizer(modelDir: string) {
  const runConfig = path.join(path.dirname(modelDir), 'config.json');
  if (path.basename(modelDir) !== 'model' || !fs.existsSync(runConfig)) return undefined;
  const teacher = (readJsonFile(runConfig) as { teacher?: { huggingface?: unknown } })?.teacher?.huggingface;
  if (typeof teacher !== 'string') return undefined;
  try {
    return tokenizerFilesFromDir(teacher);
  } catch (e) {
    throw new UsageError(
      `${runConfig}: teacher.huggingface: ${(e as Error).message}; give the tokenizer the run used with --tokenizer <dir>`,
    );
  }
}
