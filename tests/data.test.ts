// Streaming readers and atomic writers of src/data against files written in the test.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';

import {
  AtomicWriter,
  DataFormatError,
  loadQrels,
  loadRun,
  readCandidates,
  readJsonl,
  readTextTsv,
  readTriples,
  writeAtomic,
  writeJsonl,
  writeQrels,
  writeRun,
  writeTextTsv,
} from '../src/data';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-data-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};
async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('readers', () => {
  it('reads an MS MARCO collection, keeping quotes and commas in the text', async () => {
    const p = file('collection.tsv', '0\tThe "quick", brown fox\r\n7\tsecond passage\n\n');
    expect(await collect(readTextTsv(p))).toEqual([
      { id: '0', text: 'The "quick", brown fox' },
      { id: '7', text: 'second passage' },
    ]);
  });

  it('names the file and line of a malformed row', async () => {
    const p = file('queries.tsv', '1\tfirst\n2 no tab here\n');
    await expect(collect(readTextTsv(p))).rejects.toThrow(`${p}:2: expected 2 fields`);
    await expect(collect(readTextTsv(p))).rejects.toBeInstanceOf(DataFormatError);
  });

  it('reads qrels and runs into maps, rejecting non-numeric grades and scores', async () => {
    const qrels = await loadQrels(file('qrels', 'q1 0 d1 1\nq1 0 d2 0\nq2 0 d9 2\n'));
    expect(qrels.get('q1')).toEqual(
      new Map([
        ['d1', 1],
        ['d2', 0],
      ]),
    );
    expect(qrels.get('q2')!.get('d9')).toBe(2);
    const run = await loadRun(file('run', 'q1 Q0 d2 1 3.5 bm25\nq1 Q0 d1 2 -1e-3 bm25\n'));
    expect(run.get('q1')).toEqual(
      new Map([
        ['d2', 3.5],
        ['d1', -0.001],
      ]),
    );
    await expect(loadQrels(file('bad.qrels', 'q1 0 d1 high\n'))).rejects.toThrow(
      /bad\.qrels:1: grade must be a number/,
    );
    await expect(loadRun(file('bad.run', 'q1 Q0 d1 1 0.5\n'))).rejects.toThrow(/bad\.run:1: expected 6 fields/);
  });

  it('reads triples, 2- and 4-column candidates, JSONL and gzip', async () => {
    expect(await collect(readTriples(file('t.tsv', 'q\tpos\tneg\n')))).toEqual([
      { query: 'q', positive: 'pos', negative: 'neg' },
    ]);
    expect(await collect(readCandidates(file('c.tsv', '1\t10\n1\t11\tthe query\tthe passage\n')))).toEqual([
      { qid: '1', docid: '10' },
      { qid: '1', docid: '11', query: 'the query', passage: 'the passage' },
    ]);
    expect(await collect(readJsonl(file('x.jsonl', '{"a":1}\n[2]\n')))).toEqual([{ a: 1 }, [2]]);
    await expect(collect(readJsonl(file('y.jsonl', '{"a":1}\n{oops\n')))).rejects.toThrow(/y\.jsonl:2: invalid JSON/);
    const gz = path.join(dir, 'collection.tsv.gz');
    fs.writeFileSync(gz, zlib.gzipSync('5\tzipped text\n'));
    expect(await collect(readTextTsv(gz))).toEqual([{ id: '5', text: 'zipped text' }]);
  });

  it('reads a 200k-line file line by line, in order', async () => {
    const p = path.join(dir, 'big.tsv');
    fs.writeFileSync(p, Array.from({ length: 200000 }, (_, i) => `${i}\tpassage number ${i}`).join('\n'));
    let count = 0;
    let last = '';
    for await (const r of readTextTsv(p)) {
      count += 1;
      last = r.id;
    }
    expect(count).toBe(200000);
    expect(last).toBe('199999');
  });
});

describe('writers', () => {
  it('round-trips qrels, runs (ranked, trec_eval tie order), TSV and JSONL', async () => {
    const qrels = new Map([
      [
        'q1',
        new Map([
          ['d1', 2],
          ['d2', 0],
        ]),
      ],
    ]);
    await writeQrels(path.join(dir, 'out.qrels'), qrels);
    expect(await loadQrels(path.join(dir, 'out.qrels'))).toEqual(qrels);

    await writeRun(
      path.join(dir, 'out.run'),
      new Map([
        [
          'q1',
          new Map([
            ['a', 1],
            ['b', 1],
            ['c', 2],
          ]),
        ],
      ]),
      'test',
    );
    expect(fs.readFileSync(path.join(dir, 'out.run'), 'utf8')).toBe(
      'q1 Q0 c 1 2 test\nq1 Q0 b 2 1 test\nq1 Q0 a 3 1 test\n',
    );

    await writeTextTsv(path.join(dir, 'c.tsv'), [{ id: '1', text: 'a "b", c' }]);
    expect(await collect(readTextTsv(path.join(dir, 'c.tsv')))).toEqual([{ id: '1', text: 'a "b", c' }]);

    async function* values() {
      yield { step: 1 };
      yield { step: 2 };
    }
    await writeJsonl(path.join(dir, 'log.jsonl'), values());
    expect(await collect(readJsonl(path.join(dir, 'log.jsonl')))).toEqual([{ step: 1 }, { step: 2 }]);
  });

  it('a failure while writing leaves the previous file intact and no temporary file', async () => {
    const target = path.join(dir, 'keep.tsv');
    fs.writeFileSync(target, 'old content\n');
    await expect(
      writeTextTsv(target, [
        { id: '1', text: 'fine' },
        { id: '2', text: 'has\ta tab' },
      ]),
    ).rejects.toThrow(/contains a field separator/);
    expect(fs.readFileSync(target, 'utf8')).toBe('old content\n');
    expect(fs.readdirSync(dir)).toEqual(['keep.tsv']);

    await expect(
      writeAtomic(path.join(dir, 'new.txt'), async (w) => {
        await w.write('partial');
        throw new Error('killed midway');
      }),
    ).rejects.toThrow('killed midway');
    expect(fs.readdirSync(dir)).toEqual(['keep.tsv']);
  });

  it('a writer killed midway leaves no target; the next writer cleans its temporary file', async () => {
    const target = path.join(dir, 'killed.tsv');
    // A child process writes 1 MB and then SIGKILLs itself before committing.
    // It runs the compiled module (dist/, built by `npm test`'s pretest step).
    const child = spawnSync(
      process.execPath,
      [
        '-e',
        `
      const { AtomicWriter } = require(${JSON.stringify(path.resolve(__dirname, '../dist/data/atomic.js'))});
      (async () => {
        const w = AtomicWriter.open(${JSON.stringify(target)});
        await w.write('x'.repeat(1 << 20));
        process.kill(process.pid, 'SIGKILL');
      })();`,
      ],
      { encoding: 'utf8' },
    );
    expect(child.signal).toBe('SIGKILL');
    expect(fs.existsSync(target)).toBe(false);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toHaveLength(1);
    await writeTextTsv(target, [{ id: '1', text: 'complete' }]);
    expect(fs.readdirSync(dir)).toEqual(['killed.tsv']);
  });

  it('the target only appears at commit', async () => {
    const target = path.join(dir, 'later.txt');
    const w = AtomicWriter.open(target);
    await w.write('x'.repeat(1 << 20));
    expect(fs.existsSync(target)).toBe(false);
    await w.commit();
    expect(fs.statSync(target).size).toBe(1 << 20);
    expect(fs.readdirSync(dir)).toEqual(['later.txt']);
  });
});
