// A full disk (a 2 MB tmpfs, filled): every write path ends with a non-zero exit and one message
// naming the file, keeps the previous file (or none), and leaves no temporaries or locks behind.
// Mounting needs root; without it the tests are skipped under the reason, counted by jest.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { WriteError, writeAtomic } from '../../src/data/atomic';
import { environment, writeReport, type RunReport } from '../../src/report';
import {
  buildTinyCollection,
  cli,
  errorLines,
  fillDisk,
  leftovers,
  mountTmpfs,
  studentConfig,
  teacherConfig,
  tempDir,
  unmount,
  writeJson,
} from './helpers';

const work = tempDir('fd-full-');
const mnt = path.join(work, 'mnt');
const notMounted = mountTmpfs(mnt);
const test = (name: string, fn: () => Promise<void>) =>
  notMounted ? it.skip(`${name} [skipped: ${notMounted}]`, fn) : it(name, fn);

const coll = path.join(work, 'coll');
const teacherOut = path.join(work, 'teacher');
beforeAll(async () => {
  if (notMounted) return;
  await buildTinyCollection(coll);
  const r = await cli([
    'teacher',
    'train',
    writeJson(path.join(work, 'teacher.json'), teacherConfig(coll, teacherOut)),
  ]);
  expect(r.stderr).toBe('');
}, 120000);
afterAll(() => {
  if (!notMounted) unmount(mnt);
  fs.rmSync(work, { recursive: true, force: true });
});
beforeEach(() => {
  if (notMounted) return;
  for (const name of fs.readdirSync(mnt)) fs.rmSync(path.join(mnt, name), { recursive: true, force: true });
});

/** One error line, naming a file on the full disk and ENOSPC. */
function expectOneEnospcMessage(stderr: string): void {
  const errors = errorLines(stderr);
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(new RegExp(`^fused-distill: error: cannot write ${mnt}/\\S+: ENOSPC`));
}

describe('a full disk', () => {
  it('runs these tests on a tmpfs (or says why not)', () => {
    if (notMounted) console.warn(`disk-full tests skipped: ${notMounted}`);
    expect(notMounted === null || notMounted.length > 0).toBe(true);
  });

  test('writeAtomic rejects with ENOSPC naming the file, keeps the old file and removes its temporary', async () => {
    const file = path.join(mnt, 'big.bin');
    fs.writeFileSync(file, 'old');
    const write = writeAtomic(file, (w) => w.write(new Uint8Array(4 << 20)));
    await expect(write).rejects.toBeInstanceOf(WriteError);
    await expect(write).rejects.toMatchObject({
      code: 'ENOSPC',
      file,
      message: expect.stringContaining(`cannot write ${file}: ENOSPC`),
    });
    expect(fs.readFileSync(file, 'utf8')).toBe('old');
    expect(fs.readdirSync(mnt)).toEqual(['big.bin']);
  });

  test('writeAtomic of many small chunks fails the same way', async () => {
    const file = path.join(mnt, 'lines.txt');
    const line = `${'x'.repeat(1000)}\n`;
    await expect(
      writeAtomic(file, async (w) => {
        for (let i = 0; i < 4000; i++) await w.write(line);
      }),
    ).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(fs.readdirSync(mnt)).toEqual([]);
  });

  test('teacher train: exit 1, one message, no checkpoint temporaries, no lock', async () => {
    const out = path.join(mnt, 'teacher');
    const r = await cli([
      'teacher',
      'train',
      writeJson(path.join(work, 'full-teacher.json'), teacherConfig(coll, out)),
    ]);
    expect(r.code).toBe(1);
    expectOneEnospcMessage(r.stderr);
    expect(leftovers(mnt)).toEqual([]);
    expect(fs.existsSync(path.join(out, 'result.json'))).toBe(false);
  });

  test('distill: exit 1 when the model cannot be written, no .tmp-model dir, no result', async () => {
    const out = path.join(mnt, 'student');
    const config = studentConfig(coll, out, path.join(teacherOut, 'model'), {
      loss: { ranknet: 1 },
      train: { checkpointEvery: 0 },
    });
    const r = await cli(['distill', writeJson(path.join(work, 'full-student.json'), config)]);
    expect(r.code).toBe(1);
    expectOneEnospcMessage(r.stderr);
    expect(leftovers(mnt)).toEqual([]);
    expect(fs.existsSync(path.join(out, 'result.json'))).toBe(false);
  });

  test('teacher score: exit 1 when the cache cannot be written, no cache file, no temporary', async () => {
    const cacheDir = path.join(mnt, 'cache');
    fs.mkdirSync(cacheDir);
    fillDisk(mnt, 4096);
    const config = studentConfig(coll, path.join(work, 'unused'), path.join(teacherOut, 'model'), { cacheDir });
    const r = await cli(['teacher', 'score', writeJson(path.join(work, 'full-score.json'), config)]);
    expect(r.code).toBe(1);
    expectOneEnospcMessage(r.stderr);
    expect(fs.readdirSync(cacheDir)).toEqual([]);
  });

  test('data build: exit 1, no manifest (the collection does not look complete), no temporaries', async () => {
    fillDisk(mnt, 8192);
    const dir = path.join(mnt, 'coll');
    const r = await cli([
      'data',
      'build',
      dir,
      '--documents',
      '12',
      '--queries',
      '40',
      '--candidates',
      '10',
      '--passage-words',
      '60',
      '--seed',
      '7',
    ]);
    expect(r.code).toBe(1);
    expectOneEnospcMessage(r.stderr);
    expect(fs.existsSync(path.join(dir, 'manifest.json'))).toBe(false);
    expect(leftovers(mnt)).toEqual([]);
  });

  test('reports: writeReport rejects naming the file and keeps the old report', async () => {
    const dir = path.join(mnt, 'report');
    const report: RunReport = {
      title: 'r',
      created: 'now',
      environment: environment('native'),
      wallSeconds: null,
      evaluation: null,
      rows: [],
      runs: [],
      notes: ['x'.repeat(1 << 20)],
    };
    const first = await writeReport(dir, { ...report, notes: ['small'] });
    const before = fs.readFileSync(first.json, 'utf8');
    fillDisk(mnt, 4096);
    await expect(writeReport(dir, report)).rejects.toMatchObject({
      code: 'ENOSPC',
      message: expect.stringMatching(/cannot write .*report\.json: ENOSPC/),
    });
    expect(fs.readFileSync(first.json, 'utf8')).toBe(before);
    expect(leftovers(mnt)).toEqual([]);
  });

  test('a read-only file system (EROFS): writeAtomic and teacher train name the file and exit 1', async () => {
    const out = path.join(mnt, 'ro-run');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(mnt, 'old.txt'), 'old');
    expect(spawnSync('mount', ['-o', 'remount,ro', mnt]).status).toBe(0);
    try {
      const file = path.join(mnt, 'old.txt');
      await expect(writeAtomic(file, (w) => w.write('new'))).rejects.toMatchObject({
        code: 'EROFS',
        message: expect.stringContaining(`cannot write ${file}: EROFS`),
      });
      const r = await cli([
        'teacher',
        'train',
        writeJson(path.join(work, 'ro-teacher.json'), teacherConfig(coll, out)),
      ]);
      expect(r.code).toBe(1);
      const errors = errorLines(r.stderr);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(new RegExp(`^fused-distill: error: .*EROFS.*${out}/\\.lock`));
      expect(fs.readFileSync(file, 'utf8')).toBe('old');
    } finally {
      spawnSync('mount', ['-o', 'remount,rw', mnt]);
    }
    expect(leftovers(mnt)).toEqual([]);
  });
});
