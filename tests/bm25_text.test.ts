// The BM25 score as input text (CrossEncoderConfig.bm25Text): the one-document BM25 score equals the
// first stage's, PairEncoder puts its integer text at the start of the query segment, a model that
// reads it trains and evaluates with it, and a model and a run's encoding that disagree are refused.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Bm25Index } from '../src/data/bm25';
import { distill, parseStudentConfig, parseTeacherConfig, trainTeacher, type RankingCollection } from '../src/distill';
import { BertTokenizer } from '../src/data';
import { PairEncoder, loadCrossEncoder } from '../src/models';
import { saveHuggingFace } from '../src/models/hf_export';
import { tinyCollection } from './helpers/tiny_collection';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-bm25text-'));
const collDir = path.join(tmp, 'coll');
let coll: RankingCollection;
let tokenizer: BertTokenizer;

beforeAll(async () => {
  ({ coll, tokenizer } = await tinyCollection(collDir));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('BM25 score as text', () => {
  it('scores one document as search() ranks it, bit for bit, and 0 without a shared term', () => {
    const index = new Bm25Index();
    for (const [id, text] of coll.passages) index.add(id, text);
    for (const query of [...coll.queries.test.values()].slice(0, 5)) {
      const hits = index.search(query, 1000);
      expect(hits.length).toBeGreaterThan(0);
      for (const [id, score] of hits) expect(index.score(query, id)).toBe(score);
      const missing = [...coll.passages.keys()].find((id) => !hits.some(([h]) => h === id));
      if (missing) expect(index.score(query, missing)).toBe(0);
    }
    expect(() => index.score('x', 'nope')).toThrow(/unknown document nope/);
  });

  it('puts the rounded score at the start of the query segment; without the option nothing changes', () => {
    const plain = new PairEncoder(tokenizer, coll, 64);
    const withScore = new PairEncoder(tokenizer, coll, 64, { bm25Text: true });
    const [qid, cands] = [...coll.candidates.test][0];
    const pid = cands[0];
    const index = new Bm25Index();
    for (const [id, text] of coll.passages) index.add(id, text);
    const score = Math.round(index.score(coll.queries.test.get(qid)!, pid));
    const scoreIds = tokenizer.ids(String(score));
    expect(withScore.bm25Ids(qid, pid)).toEqual(scoreIds);
    const a = plain.encode([[qid, pid]]);
    const b = withScore.encode([[qid, pid]]);
    const ids = (x: typeof a) => Array.from(x.inputs.inputIds.dataSync());
    // [CLS] score q... [SEP] p... [SEP]: the score's ids right after [CLS], the rest shifted
    expect(ids(b).slice(1, 1 + scoreIds.length)).toEqual(scoreIds);
    const plainLen = plain.pairLength(qid, pid);
    expect(withScore.pairLength(qid, pid)).toBe(Math.min(64, plainLen + scoreIds.length));
    expect(ids(b)[0]).toBe(ids(a)[0]);
    expect(ids(b).slice(1 + scoreIds.length, 1 + scoreIds.length + 5)).toEqual(ids(a).slice(1, 6));
  });

  it('trains a bm25Text teacher, keeps the flag with the model, and refuses a student that reads other inputs', async () => {
    const sizes = { layers: 2, hidden: 16, heads: 2, intermediate: 32, maxPosition: 64 };
    const data = { collection: collDir, negatives: 3, maxLength: 48, trainQueries: 4, evalQueries: 2 };
    const train = { batch: 2, microBatch: 2, steps: 2, lr: 1e-3, warmup: 0, evalEvery: 0, checkpointEvery: 0 };
    const teacher = await trainTeacher(
      parseTeacherConfig({
        output: path.join(tmp, 't'),
        model: { ...sizes, bm25Text: true },
        data,
        train,
        loss: { ranknet: 1 },
      }),
    );
    const model = loadCrossEncoder(teacher.modelDir);
    expect(model.config.bm25Text).toBe(true);
    await expect(saveHuggingFace(model, path.join(tmp, 'hf'))).rejects.toThrow(/bm25Text/);
    model.dispose();
    // teacherLayers inherits the flag; a random student without it is refused, naming the field
    const student = (name: string, init: 'teacherLayers' | 'random') =>
      parseStudentConfig({
        output: path.join(tmp, name),
        teacher: { checkpoint: teacher.modelDir },
        student: { init, model: { ...sizes, layers: 1 } },
        data,
        train,
        loss: { ranknet: 1, kl: 1 },
      });
    const ok = await distill(student('s1', 'teacherLayers'));
    expect(loadCrossEncoder(ok.modelDir).config.bm25Text).toBe(true);
    await expect(distill(student('s2', 'random'))).rejects.toThrow(
      /student: model\.bm25Text is false but the run's pairs are encoded with the BM25 score as text/,
    );
  });
});
