// Hugging Face both ways, end to end: a hub-shaped XLM-RoBERTa teacher directory (written here as
// the hub lays it out) -> a distillation (teacher.huggingface, student.init teacherLayers) ->
// `fused-distill export` of the run dir (the tokenizer taken from the run's teacher) -> the exported
// dir read back by `fused-distill eval` re-ranks the same queries as the run's own final evaluation
// and as the run's model dir, with exactly the same MRR@10 and nDCG@10 and the same rankings.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { run } from '../src/cli';
import { distill, parseStudentConfig } from '../src/distill';
import { CrossEncoder, loadHuggingFace, type CrossEncoderConfig } from '../src/models';
import { TEST_BACKEND, tinyCollection } from './helpers/tiny_collection';
import {
  XLMR_PIECES,
  f32Tensor,
  positionIdsTensor,
  safetensorsBytes,
  xlmrUnigramTokenizerJson,
} from './helpers/hub_files';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-hf-e2e-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const teacherConfig: CrossEncoderConfig = {
  vocabSize: XLMR_PIECES.length,
  hidden: 8,
  layers: 2,
  heads: 2,
  intermediate: 16,
  maxPosition: 50, // 48 tokens + pad_token_id 1 + 1
  typeVocab: 1,
  layerNormEps: 1e-5,
  initStd: 0.5, // large, so the teacher's scores spread and the ranking is not a tie
  head: 'roberta',
  positionPaddingIdx: 1,
};

/** An XLMRobertaForSequenceClassification dir as the hub stores it (random weights). */
function writeTeacherDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const c = teacherConfig;
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['XLMRobertaForSequenceClassification'],
      model_type: 'xlm-roberta',
      hidden_act: 'gelu',
      hidden_size: c.hidden,
      intermediate_size: c.intermediate,
      layer_norm_eps: c.layerNormEps,
      max_position_embeddings: c.maxPosition,
      num_attention_heads: c.heads,
      num_hidden_layers: c.layers,
      type_vocab_size: 1,
      vocab_size: c.vocabSize,
      pad_token_id: 1,
      bos_token_id: 0,
      eos_token_id: 2,
      id2label: { '0': 'LABEL_0' },
    }),
  );
  const model = new CrossEncoder(c, 31);
  const tensors = [positionIdsTensor('roberta', c.maxPosition)];
  for (const [name, v] of model.params)
    tensors.push(f32Tensor(name.replace(/^bert\./, 'roberta.'), v.dataSync(), v.shape));
  model.dispose();
  fs.writeFileSync(path.join(dir, 'model.safetensors'), safetensorsBytes(tensors));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(xlmrUnigramTokenizerJson()));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'XLMRobertaTokenizer' }));
}

async function cli(args: string[]): Promise<string> {
  let out = '';
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  let code: number;
  try {
    code = await run(['node', 'fused-distill', '--backend', TEST_BACKEND, ...args]);
  } finally {
    write.mockRestore();
  }
  if (code !== 0) throw new Error(`fused-distill ${args.join(' ')} exited ${code}: ${out}`);
  return out;
}

it('hub teacher -> distil -> export -> the exported dir re-ranks with the same MRR@10 / nDCG@10, exactly', async () => {
  const collDir = path.join(tmp, 'coll');
  await tinyCollection(collDir);
  const teacherDir = path.join(tmp, 'teacher');
  writeTeacherDir(teacherDir);

  // distil: the run tokenizes with the teacher's tokenizer.json, the student starts from its layers
  const runDir = path.join(tmp, 'run');
  const evalQueries = 6;
  const maxLength = 48;
  const result = await distill(
    parseStudentConfig({
      output: runDir,
      teacher: { huggingface: teacherDir, cacheDir: path.join(tmp, 'scores') },
      student: {
        init: 'teacherLayers',
        model: { layers: 1, hidden: 8, heads: 2, intermediate: 16, maxPosition: 50 },
      },
      data: { collection: collDir, negatives: 3, maxLength, trainQueries: 4, evalQueries },
      train: { batch: 2, steps: 3, lr: 3e-3, warmup: 1, seed: 3, evalEvery: 0, checkpointEvery: 0 },
      loss: { ranknet: 1, kl: 1 },
    }),
  );
  expect(result.final).not.toBeNull();
  const final = result.final!;
  expect(final.queries).toBe(evalQueries);

  // export the run dir: no --tokenizer, the run's teacher brings it
  const exported = path.join(tmp, 'exported');
  expect(await cli(['export', runDir, exported])).toContain('(XLMRobertaForSequenceClassification, F32)');
  expect(fs.readdirSync(exported).sort()).toEqual([
    'config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  const back = loadHuggingFace(exported);
  expect(back.report).toMatchObject({ modelType: 'xlm-roberta', head: 'classifier', missing: [] });
  expect(back.report.config.layers).toBe(1);
  back.model.dispose();

  // re-rank the run's evaluation queries with the exported dir and with the run's own model dir
  const reportDir = path.join(tmp, 'report');
  await cli([
    'eval',
    `exported=${exported}`,
    `run=${runDir}`,
    '--tokenizer',
    teacherDir,
    '--collection',
    collDir,
    '--split',
    final.split,
    '--queries',
    String(evalQueries),
    '--max-length',
    String(maxLength),
    '--no-bm25',
    '--out',
    reportDir,
    '--run-out',
    path.join(tmp, '{name}.trec'),
  ]);
  const report = JSON.parse(fs.readFileSync(path.join(reportDir, 'report.json'), 'utf8')) as {
    rows: Array<{ name: string; mrr10: number; ndcg10: number }>;
  };
  const row = (name: string) => report.rows.find((r) => r.name === name)!;
  expect({ mrr10: row('exported').mrr10, ndcg10: row('exported').ndcg10 }).toEqual({
    mrr10: final.mrr10,
    ndcg10: final.ndcg10,
  });
  expect({ mrr10: row('run').mrr10, ndcg10: row('run').ndcg10 }).toEqual({ mrr10: final.mrr10, ndcg10: final.ndcg10 });
  // the same rankings, passage for passage (the scores too: the same weights and inputs)
  const ranking = (name: string) =>
    fs
      .readFileSync(path.join(tmp, `${name}.trec`), 'utf8')
      .split('\n')
      .map((line) => line.split(/\s+/).slice(0, 5).join(' '));
  expect(ranking('exported')).toEqual(ranking('run'));
  expect(ranking('exported').length).toBeGreaterThan(evalQueries);
  // the metrics are not degenerate: some relevant passage is ranked, not every one first
  expect(final.mrr10).toBeGreaterThan(0);
});
