// Readers validate what they trust. A tiny real teacher run leaves checkpoints at steps 4 and 8;
// each test corrupts a copy of that output (truncates a file, edits state.json, removes the
// checksums) and resumes: a corrupt checkpoint is skipped with a notice naming it and why, the run
// resumes from the newest intact one and reaches the same weights as the uninterrupted run. Model
// loaders, safetensors imports and the teacher-score cache are checked the same way: every error
// names the file.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import '@tensorflow/tfjs-backend-wasm';

import { BertTokenizer } from '../../src/data';
import {
  PairEncoder,
  distill,
  parseStudentConfig,
  parseTeacherConfig,
  teacherScores,
  trainTeacher,
  trainingPairs,
  type ProgressEvent,
  type RankingCollection,
  type TeacherRunConfig,
} from '../../src/distill';
import { CrossEncoder, importSafetensors, loadCrossEncoder, type CrossEncoderConfig } from '../../src/models';
import { tinyCollection } from '../helpers/tiny_collection';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-readers-'));
const collDir = path.join(tmp, 'coll');
const runDir = path.join(tmp, 'run');
const pristine = path.join(tmp, 'pristine');
const ck = (step: number) => path.join(runDir, 'checkpoints', `step-${String(step).padStart(8, '0')}`);
let coll: RankingCollection;
let config: TeacherRunConfig;
let finalWeights: Buffer;

beforeAll(async () => {
  ({ coll } = await tinyCollection(collDir));
  config = parseTeacherConfig({
    output: runDir,
    model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 },
    data: { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 0 },
    train: { batch: 2, steps: 12, lr: 3e-3, warmup: 2, seed: 5, evalEvery: 0, checkpointEvery: 4, keepCheckpoints: 2 },
    loss: { ranknet: 1 },
  });
  await trainTeacher(config);
  fs.cpSync(runDir, pristine, { recursive: true });
  finalWeights = fs.readFileSync(path.join(runDir, 'model', 'weights.bin'));
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The run as a kill after step 11 leaves it (checkpoints at 4 and 8, no final model), then `mutate`. */
function interrupted(mutate: () => void = () => undefined): void {
  fs.rmSync(runDir, { recursive: true, force: true });
  fs.cpSync(pristine, runDir, { recursive: true });
  fs.rmSync(path.join(runDir, 'result.json'));
  fs.rmSync(path.join(runDir, 'model'), { recursive: true });
  mutate();
}

async function resume(): Promise<{ events: ProgressEvent[]; notices: string[] }> {
  const events: ProgressEvent[] = [];
  await trainTeacher(config, { resume: true, onProgress: (e) => events.push(e) });
  const notices = events.flatMap((e) => (e.type === 'notice' ? [e.message] : []));
  return { events, notices };
}

const startOf = (events: ProgressEvent[]) =>
  events.find((e) => e.type === 'start') as Extract<ProgressEvent, { type: 'start' }>;
const truncate = (file: string, keep = 0.25) =>
  fs.writeFileSync(file, fs.readFileSync(file).subarray(0, Math.floor(fs.statSync(file).size * keep)));
const editState = (dir: string, edit: (s: Record<string, unknown>) => void) => {
  const file = path.join(dir, 'state.json');
  const s = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(s);
  fs.writeFileSync(file, `${JSON.stringify(s)}\n`);
};
const dropChecksums = (dir: string) => fs.rmSync(path.join(dir, 'checksums.json'));

describe('checkpoints', () => {
  it('are written with the sha256 of every file; an intact one resumes without a notice', async () => {
    const sums = JSON.parse(
      fs.readFileSync(path.join(pristine, 'checkpoints', 'step-00000008', 'checksums.json'), 'utf8'),
    );
    expect(Object.keys(sums.sha256).sort()).toEqual([
      'extra.bin',
      'extra.json',
      'model/model.json',
      'model/weights.bin',
      'optimizer.bin',
      'optimizer.json',
      'state.json',
    ]);
    interrupted();
    const { events, notices } = await resume();
    expect(notices).toEqual([]);
    expect(startOf(events)).toMatchObject({ step: 8, resumedFrom: ck(8) });
    expect(fs.readFileSync(path.join(runDir, 'model', 'weights.bin')).equals(finalWeights)).toBe(true);
  });

  it('a truncated weights.bin: the checkpoint is skipped, naming the file; the older one resumes to the same weights', async () => {
    interrupted(() => truncate(path.join(ck(8), 'model', 'weights.bin')));
    const { events, notices } = await resume();
    expect(notices).toHaveLength(1);
    expect(notices[0]).toContain(
      `skipping checkpoint ${ck(8)}: ${path.join(ck(8), 'model', 'weights.bin')}: sha256 differs`,
    );
    expect(startOf(events)).toMatchObject({ step: 4, resumedFrom: ck(4) });
    expect(fs.readFileSync(path.join(runDir, 'model', 'weights.bin')).equals(finalWeights)).toBe(true);
  });

  it('a truncated weights.bin in a checkpoint without checksums: the error names the file and the sizes', async () => {
    interrupted(() => {
      dropChecksums(ck(8));
      truncate(path.join(ck(8), 'model', 'weights.bin'));
    });
    const { events, notices } = await resume();
    expect(notices.join('\n')).toMatch(
      /weights\.bin: holds \d+ bytes, its manifest describes \d+ \(truncated or corrupt\?\)/,
    );
    expect(notices.join('\n')).toContain(`skipping checkpoint ${ck(8)}: ${path.join(ck(8), 'model', 'weights.bin')}`);
    expect(startOf(events)).toMatchObject({ step: 4 });
    expect(fs.readFileSync(path.join(runDir, 'model', 'weights.bin')).equals(finalWeights)).toBe(true);
  });

  it('a truncated state.json (no checksums): named, not "Unterminated string in JSON" alone; falls back', async () => {
    interrupted(() => {
      dropChecksums(ck(8));
      truncate(path.join(ck(8), 'state.json'), 0.5);
    });
    const { events, notices } = await resume();
    expect(notices.join('\n')).toContain(`${path.join(ck(8), 'state.json')}: not valid JSON`);
    expect(startOf(events)).toMatchObject({ step: 4 });
  });

  it('"step": "abc" is a checksum mismatch, and without checksums a schema error naming state.json', async () => {
    interrupted(() => editState(ck(8), (s) => (s.step = 'abc')));
    let r = await resume();
    expect(r.notices[0]).toContain(`${path.join(ck(8), 'state.json')}: sha256 differs`);
    expect(startOf(r.events)).toMatchObject({ step: 4 });
    expect(r.events.filter((e) => e.type === 'step')).toHaveLength(8); // all of steps 5..12, not "finished" early

    interrupted(() => {
      dropChecksums(ck(8));
      editState(ck(8), (s) => (s.step = 'abc'));
    });
    r = await resume();
    expect(r.notices.join('\n')).toMatch(/state\.json: invalid run state: step: Expected number, received string/);
    expect(startOf(r.events)).toMatchObject({ step: 4 });
    expect(fs.readFileSync(path.join(runDir, 'model', 'weights.bin')).equals(finalWeights)).toBe(true);
  });

  it('"step": 5 with a log of 8 steps is inconsistent: skipped (no duplicated log lines)', async () => {
    interrupted(() => {
      dropChecksums(ck(8));
      editState(ck(8), (s) => (s.step = 5));
    });
    const { events, notices } = await resume();
    expect(notices.join('\n')).toContain('invalid run state: step 5 but the log holds 8 steps');
    expect(startOf(events)).toMatchObject({ step: 4 });
    const steps = fs
      .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    expect(steps).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    // step-8's weights and moments were loaded before its state failed; step-4's replaced all of them
    expect(fs.readFileSync(path.join(runDir, 'model', 'weights.bin')).equals(finalWeights)).toBe(true);
  });

  it('a state without its sampler is named, not "Cannot read properties of undefined"', async () => {
    interrupted(() => {
      dropChecksums(ck(8));
      editState(ck(8), (s) => delete s.sampler);
    });
    const { notices } = await resume();
    expect(notices.join('\n')).toMatch(/state\.json: invalid run state: sampler: Required/);
  });

  it('checkpoints written before checksums are read, with a notice', async () => {
    interrupted(() => {
      dropChecksums(ck(4));
      dropChecksums(ck(8));
    });
    const { events, notices } = await resume();
    expect(notices).toEqual([
      `${ck(8)}: has no checksums (written before checkpoints had them); read without an integrity check`,
    ]);
    expect(startOf(events)).toMatchObject({ step: 8 });
    expect(fs.readFileSync(path.join(runDir, 'model', 'weights.bin')).equals(finalWeights)).toBe(true);
  });

  it('no intact checkpoint: an error naming each and why', async () => {
    interrupted(() => {
      truncate(path.join(ck(4), 'optimizer.bin'));
      truncate(path.join(ck(8), 'state.json'));
    });
    const err = await resume().catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(`${runDir}: no intact checkpoint to resume from`);
    expect((err as Error).message).toContain(`${path.join(ck(4), 'optimizer.bin')}: sha256 differs`);
    expect((err as Error).message).toContain(`${path.join(ck(8), 'state.json')}: sha256 differs`);
  });
});

describe('model loaders', () => {
  const modelDir = () => path.join(pristine, 'model');
  const copyModel = (name: string) => {
    const dir = path.join(tmp, name);
    fs.cpSync(modelDir(), dir, { recursive: true });
    return dir;
  };

  it('a truncated weights.bin or model.json is an error naming the file', () => {
    const a = copyModel('trunc-weights');
    truncate(path.join(a, 'weights.bin'));
    expect(() => loadCrossEncoder(a)).toThrow(`${path.join(a, 'weights.bin')}: holds`);
    const b = copyModel('trunc-json');
    truncate(path.join(b, 'model.json'), 0.5);
    expect(() => loadCrossEncoder(b)).toThrow(`${path.join(b, 'model.json')}: not valid JSON`);
    expect(() => loadCrossEncoder(path.join(tmp, 'nowhere'))).toThrow(
      `${path.join(tmp, 'nowhere', 'model.json')}: cannot be read (ENOENT)`,
    );
  });

  it('a NaN or Inf weight is an error naming the file and the tensor', () => {
    const dir = copyModel('nan-weights');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    const specs: Array<{ name: string; shape: number[] }> = manifest.weightsManifest[0].weights;
    const bin = fs.readFileSync(path.join(dir, 'weights.bin'));
    const size = (s: { shape: number[] }) => s.shape.reduce((a, b) => a * b, 1);
    const at = specs.findIndex((s) => s.name.includes('attention.self.query.weight'));
    const offset = specs.slice(0, at).reduce((n, s) => n + 4 * size(s), 0);
    bin.writeFloatLE(NaN, offset + 4 * 3);
    fs.writeFileSync(path.join(dir, 'weights.bin'), bin);
    expect(() => loadCrossEncoder(dir)).toThrow(
      `${path.join(dir, 'weights.bin')}: ${specs[at].name}: value 3 is NaN; weights must be finite`,
    );
    bin.writeFloatLE(-Infinity, offset + 4 * 3);
    fs.writeFileSync(path.join(dir, 'weights.bin'), bin);
    expect(() => loadCrossEncoder(dir)).toThrow(/value 3 is -Infinity/);
  });

  const tiny: CrossEncoderConfig = {
    vocabSize: 30,
    hidden: 8,
    layers: 1,
    heads: 2,
    intermediate: 16,
    maxPosition: 12,
    typeVocab: 2,
    layerNormEps: 1e-12,
    initStd: 0.02,
  };
  function safetensors(file: string, tensors: Record<string, { shape: number[]; values: Float32Array }>): void {
    const header: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    let offset = 0;
    for (const [name, t] of Object.entries(tensors)) {
      const bytes = Buffer.from(t.values.buffer, t.values.byteOffset, t.values.byteLength);
      header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes.length] };
      chunks.push(bytes);
      offset += bytes.length;
    }
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(file, Buffer.concat([len, json, ...chunks]));
  }
  const params = (m: CrossEncoder, rename: (n: string) => string = (n) => n) =>
    Object.fromEntries(
      [...m.params].map(([n, v]) => [rename(n), { shape: v.shape, values: v.dataSync() as Float32Array }]),
    );

  it('a safetensors file whose names match nothing is an error naming the unmatched parameters', () => {
    const source = new CrossEncoder(tiny, 3);
    const file = path.join(tmp, 'renamed.safetensors');
    safetensors(
      file,
      params(source, (n) => `roberta.${n}`),
    );
    expect(() => importSafetensors(file, tiny)).toThrow(
      new RegExp(
        `^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: \\d+ of the model's \\d+ parameters have no tensor in the file \\(bert\\.embeddings\\.word_embeddings\\.weight, `,
      ),
    );
    // the classifier alone may be missing (a BertModel has none); other names only when listed
    const noHead = path.join(tmp, 'no-head.safetensors');
    const all = params(source);
    const { ['classifier.weight']: _w, ['classifier.bias']: _b, ['bert.pooler.dense.bias']: _p, ...rest } = all;
    safetensors(noHead, rest);
    expect(() => importSafetensors(noHead, tiny)).toThrow(
      /1 of the model's \d+ parameters have no tensor in the file \(bert\.pooler\.dense\.bias\)/,
    );
    const { model, missing } = importSafetensors(noHead, tiny, 0, {
      allowMissing: ['classifier.weight', 'classifier.bias', 'bert.pooler.dense.bias'],
    });
    expect(missing.sort()).toEqual(['bert.pooler.dense.bias', 'classifier.bias', 'classifier.weight']);
    model.dispose();
    source.dispose();
  });

  it('a safetensors tensor holding NaN is an error naming the file and tensor', () => {
    const source = new CrossEncoder(tiny, 4);
    const all = params(source);
    const name = 'bert.encoder.layer.0.output.dense.weight';
    all[name] = { ...all[name], values: Float32Array.from(all[name].values, (x, i) => (i === 5 ? NaN : x)) };
    const file = path.join(tmp, 'nan.safetensors');
    safetensors(file, all);
    expect(() => importSafetensors(file, tiny)).toThrow(`${file}: ${name}: value 5 is NaN`);
    source.dispose();
  });
});

describe('the teacher-score cache', () => {
  let teacher: CrossEncoder;
  let encoder: PairEncoder;
  let pairs: Array<[string, string]>;
  const cacheDir = path.join(tmp, 'scores');
  let file: string;
  let fresh: Map<string, number>;

  beforeAll(async () => {
    teacher = loadCrossEncoder(path.join(pristine, 'model'));
    encoder = new PairEncoder(new BertTokenizer(), coll, 48);
    pairs = trainingPairs(coll, 4);
    const first = await teacherScores(teacher, path.join(pristine, 'model'), coll, encoder, pairs, {
      cacheDir,
      scoreBatch: 16,
    });
    file = first.file;
    fresh = first.scores;
    fs.copyFileSync(file, `${file}.good`);
  });
  afterAll(() => teacher.dispose());

  const read = async () => {
    const notices: string[] = [];
    const r = await teacherScores(teacher, path.join(pristine, 'model'), coll, encoder, pairs, {
      cacheDir,
      scoreBatch: 16,
      onNotice: (m) => notices.push(m),
    });
    return { ...r, notices };
  };
  const editLine = (line: number, edit: (rec: Record<string, unknown>) => void) => {
    const lines = fs.readFileSync(`${file}.good`, 'utf8').trim().split('\n');
    const rec = JSON.parse(lines[line - 1]);
    edit(rec);
    lines[line - 1] = JSON.stringify(rec);
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
  };

  it('is written with the sha256 of its lines, and read back without recomputing', async () => {
    expect(JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[0]).sha256).toMatch(/^[0-9a-f]{64}$/);
    const r = await read();
    expect(r).toMatchObject({ computed: false, notices: [] });
  });

  it.each([
    ['1e300', 1e300, /score 1e\+300; scores must be finite float32 values/],
    ['"abc"', 'abc', /score "abc"; scores must be finite float32 values/],
    ['null', null, /score null; scores must be finite float32 values/],
  ])('a score of %s is recomputed, with a notice naming the file and line', async (_name, value, message) => {
    editLine(3, (rec) => (rec.score = value));
    const r = await read();
    expect(r.computed).toBe(true);
    expect(r.notices).toHaveLength(1);
    expect(r.notices[0]).toContain(`${file}:3: query `);
    expect(r.notices[0]).toMatch(message);
    expect(r.notices[0]).toMatch(/recomputing the teacher's scores$/);
    expect([...r.scores]).toEqual([...fresh]);
    expect(fs.readFileSync(file).equals(fs.readFileSync(`${file}.good`))).toBe(true);
  });

  it('a changed but finite score fails the checksum; a truncated file is named', async () => {
    editLine(4, (rec) => (rec.score = (rec.score as number) + 1));
    let r = await read();
    expect(r.notices).toEqual([
      `${file}: its sha256 differs from the one in its header (corrupt); recomputing the teacher's scores`,
    ]);
    expect([...r.scores]).toEqual([...fresh]);
    const text = fs.readFileSync(`${file}.good`, 'utf8');
    fs.writeFileSync(file, text.slice(0, text.indexOf('\n', text.length / 2) + 5)); // mid-line
    r = await read();
    expect(r.computed).toBe(true);
    expect(r.notices[0]).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+: not valid JSON`));
  });

  it('a student run over a corrupt cache recomputes it, says so, and trains on finite scores', async () => {
    editLine(2, (rec) => (rec.score = 1e300));
    const events: ProgressEvent[] = [];
    const result = await distill(
      parseStudentConfig({
        output: path.join(tmp, 'student'),
        teacher: { checkpoint: path.join(pristine, 'model'), cacheDir },
        student: { model: { layers: 1, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 } },
        data: { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 0 },
        train: { batch: 2, steps: 2, lr: 3e-3, warmup: 1, seed: 3, evalEvery: 0, checkpointEvery: 0 },
        loss: { kl: 1, marginMSE: 1 },
      }),
      { onProgress: (e) => events.push(e) },
    );
    expect(events.filter((e) => e.type === 'notice').map((e) => (e as { message: string }).message)).toEqual([
      expect.stringContaining(`${file}:2: query `),
    ]);
    expect(events.find((e) => e.type === 'teacherScoresReady')).toMatchObject({ file, computed: true });
    for (const s of result.log.steps) expect(Number.isFinite(s.loss)).toBe(true);
  });

  it('a cache written before checksums is read, its lines checked, with a notice', async () => {
    const lines = fs.readFileSync(`${file}.good`, 'utf8').trim().split('\n');
    const { sha256: _s, ...header } = JSON.parse(lines[0]);
    fs.writeFileSync(file, `${[JSON.stringify(header), ...lines.slice(1)].join('\n')}\n`);
    const r = await read();
    expect(r.computed).toBe(false);
    expect(r.notices).toEqual([
      `${file}: has no checksum (written before caches had one); its lines were checked one by one`,
    ]);
    expect([...r.scores]).toEqual([...fresh]);
  });
});
