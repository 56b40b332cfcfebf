// Readers reject bad input with the file (and line): a missing or truncated .gz, bytes that are not
// UTF-8, an id given twice. Commands end with one message and the right exit code (2: a usage or
// config error, such as a teacher checkpoint that is not there), and leave no temporary dirs.
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

import { DataFormatError, readLines } from '../../src/data/lines';
import { readTextTsv } from '../../src/data/formats';
import {
  CLI,
  buildTinyCollection,
  cli,
  deadPid,
  exited,
  leftovers,
  studentConfig,
  teacherConfig,
  tempDir,
  writeJson,
} from './helpers';

const work = tempDir('fd-inputs-');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('readers', () => {
  it('a missing file, plain or .gz, rejects naming it (no unhandled stream error)', async () => {
    const unhandled: unknown[] = [];
    const onError = (e: unknown) => unhandled.push(e);
    process.on('uncaughtException', onError);
    try {
      for (const name of ['nope.tsv', 'nope.tsv.gz']) {
        const file = path.join(work, name);
        await expect(collect(readTextTsv(file))).rejects.toThrow(`${file}: cannot read: ENOENT`);
      }
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(unhandled).toEqual([]);
  });

  it('a truncated .gz rejects naming the file and the line where it broke off', async () => {
    const file = path.join(work, 'cut.tsv.gz');
    const z = zlib.gzipSync(Array.from({ length: 2000 }, (_, i) => `${i}\tpassage ${i}`).join('\n'));
    fs.writeFileSync(file, z.subarray(0, z.length - 30));
    await expect(collect(readTextTsv(file))).rejects.toThrow(
      new RegExp(`^${file.replace(/\./g, '\\.')}:\\d+: cannot read: unexpected end of file`),
    );
  });

  it('bytes that are not UTF-8 are a DataFormatError at their line', async () => {
    const file = path.join(work, 'latin1.tsv');
    fs.writeFileSync(file, Buffer.concat([Buffer.from('1\tfine\n2\tcaf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    const read = collect(readTextTsv(file));
    await expect(read).rejects.toBeInstanceOf(DataFormatError);
    await expect(read).rejects.toThrow(`${file}:2: not valid UTF-8 text`);
    const gz = path.join(work, 'latin1.tsv.gz');
    fs.writeFileSync(gz, zlib.gzipSync(fs.readFileSync(file)));
    await expect(collect(readTextTsv(gz))).rejects.toThrow(`${gz}:2: not valid UTF-8 text`);
  });

  it('splits lines as readline did: \\n, \\r\\n and a lone \\r; multi-byte characters across chunks intact', async () => {
    const file = path.join(work, 'endings.txt');
    const long = 'é'.repeat(70000); // spans several 64 KiB read chunks, split inside characters
    fs.writeFileSync(file, `a\r\n\r\nb\rc\n${long}\nlast`);
    expect((await collect(readLines(file))).map((l) => [l.line, l.text.length > 10 ? l.text.length : l.text])).toEqual([
      [1, 'a'],
      [3, 'b'],
      [4, 'c'],
      [5, 70000],
      [6, 'last'],
    ]);
  });

  it('an id given twice in a collection or queries file is an error naming both lines', async () => {
    const file = path.join(work, 'dup.tsv');
    fs.writeFileSync(file, '1\tone\n2\ttwo\n1\tagain\n');
    await expect(collect(readTextTsv(file))).rejects.toThrow(`${file}:3: duplicate id '1' (first on line 1)`);
  });
});

describe('command exits', () => {
  const coll = path.join(work, 'coll');
  beforeAll(() => buildTinyCollection(coll), 60000);

  it('a missing teacher checkpoint: exit 2, naming the config field and the path', async () => {
    const missing = path.join(work, 'no-teacher', 'model');
    const file = writeJson(path.join(work, 'student.json'), studentConfig(coll, path.join(work, 'student'), missing));
    for (const command of [['distill'], ['teacher', 'score']]) {
      const r = await cli([...command, file]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `fused-distill: error: ${file}: teacher.checkpoint: no saved model at ${missing} (a model dir holds model.json and weights.bin; train or export it first)\n`,
      );
    }
    expect(fs.existsSync(path.join(work, 'student'))).toBe(false);
  });

  it('a missing init checkpoint of a teacher: exit 2 naming init.checkpoint', async () => {
    const file = writeJson(path.join(work, 'teacher-init.json'), {
      ...teacherConfig(coll, path.join(work, 't-init')),
      init: { checkpoint: 'nowhere' },
    });
    const r = await cli(['teacher', 'train', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/init\.checkpoint: no saved model at .*nowhere/);
  });

  it('a collection with a duplicate passage id: exit 1, one message naming the file and line', async () => {
    const bad = path.join(work, 'dup-coll');
    fs.cpSync(coll, bad, { recursive: true });
    const tsv = path.join(bad, 'collection.tsv');
    const first = fs.readFileSync(tsv, 'utf8').split('\n')[0];
    fs.appendFileSync(tsv, `${first}\n`);
    const r = await cli([
      'teacher',
      'train',
      writeJson(path.join(work, 'dup-teacher.json'), teacherConfig(bad, path.join(work, 'dup-run'))),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^fused-distill: error: ${tsv}:\\d+: duplicate id '[^']+' \\(first on line 1\\)\\n$`),
    );
  });

  it('a resumed run removes the .tmp-model dir a killed process left', async () => {
    const out = path.join(work, 'resumed');
    const file = writeJson(path.join(work, 'resumed.json'), teacherConfig(coll, out, { steps: 4, checkpointEvery: 2 }));
    let r = await cli(['teacher', 'train', file]);
    expect(r.code).toBe(0);
    fs.rmSync(path.join(out, 'result.json'));
    const stale = path.join(out, `.tmp-model-${deadPid()}`);
    fs.mkdirSync(stale);
    fs.writeFileSync(path.join(stale, 'weights.bin'), 'partial');
    r = await cli(['teacher', 'train', '--resume', file]);
    expect(r.code).toBe(0);
    expect(leftovers(out)).toEqual([]);
  });

  // A real terminal: script(1) runs the command on a pty; ^C typed there is the terminal's SIGINT.
  const noScript = spawnSync('script', ['--version']).error
    ? 'script(1) (util-linux) is not installed: no pty to type ^C into'
    : null;
  (noScript ? it.skip : it)(
    `Ctrl-C on a terminal: the progress bars' hidden cursor is shown again, exit 130, lock released${noScript ? ` [skipped: ${noScript}]` : ''}`,
    async () => {
      const out = path.join(work, 'ctrl-c');
      const file = writeJson(
        path.join(work, 'ctrl-c.json'),
        teacherConfig(coll, out, { steps: 400, checkpointEvery: 50, evalEvery: 0 }),
      );
      const proc = spawn('script', ['-qfec', `${process.execPath} ${CLI} teacher train ${file}`, '/dev/null'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let screen = '';
      let typed = false;
      proc.stdout!.on('data', (d: Buffer) => {
        screen += d.toString();
        if (typed || !/steps\/s/.test(screen)) return;
        typed = true;
        proc.stdin!.write('\x03');
      });
      const end = await exited(proc);
      expect(end.code).toBe(130);
      expect(screen).toContain('\x1b[?25l'); // the bars hid the cursor
      expect(screen.slice(screen.lastIndexOf('\x1b[?25l'))).toContain('\x1b[?25h');
      expect(screen).toMatch(/fused-distill: stopped by SIGINT\r?\n$/);
      expect(fs.existsSync(path.join(out, '.lock'))).toBe(false);
    },
  );
});
