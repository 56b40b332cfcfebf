// Output directories are locked: a second writer is refused with a message naming the holder's pid
// (a run dir, a collection dir) or waits for it (a teacher-score cache dir); a stale lock (its
// process gone) is taken over with a notice; locks go with the process's exit, an error, SIGINT and
// SIGTERM.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { LockedError, lockDir, withDirLock } from '../../src/data/lock';
import {
  buildTinyCollection,
  cli,
  deadPid,
  exited,
  holdLock,
  leftovers,
  startCli,
  studentConfig,
  teacherConfig,
  tempDir,
  writeJson,
} from './helpers';

const work = tempDir('fd-locks-');
const coll = path.join(work, 'coll');
const teacherOut = path.join(work, 'teacher');
beforeAll(async () => {
  await buildTinyCollection(coll);
  const r = await cli([
    'teacher',
    'train',
    writeJson(path.join(work, 'teacher.json'), teacherConfig(coll, teacherOut)),
  ]);
  expect(r.stderr).toBe('');
}, 120000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const inUse = (dir: string, pid: number) =>
  new RegExp(
    `${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by pid ${pid} \\(test holder, started [^)]+\\); wait for it or remove .*\\.lock if that process is gone`,
  );

describe('the lock module', () => {
  it('refuses a live holder by pid, takes over a dead one with a notice, and releases on error', async () => {
    const dir = path.join(work, 'module');
    const holder = await holdLock(dir);
    try {
      await expect(lockDir(dir)).rejects.toBeInstanceOf(LockedError);
      await expect(lockDir(dir)).rejects.toThrow(inUse(dir, holder.pid!));
    } finally {
      holder.kill('SIGKILL');
      await exited(holder);
    }
    expect(fs.existsSync(path.join(dir, '.lock'))).toBe(true); // SIGKILL: no cleanup
    const notices: string[] = [];
    await expect(
      withDirLock(
        dir,
        async () => {
          expect(JSON.parse(fs.readFileSync(path.join(dir, '.lock'), 'utf8'))).toMatchObject({
            pid: process.pid,
            command: 'work',
          });
          throw new Error('work failed');
        },
        { command: 'work', notice: (m) => notices.push(m) },
      ),
    ).rejects.toThrow('work failed');
    expect(notices).toEqual([
      expect.stringMatching(new RegExp(`took over the lock of pid ${holder.pid} \\(test holder`)),
    ]);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('releases the lock on SIGTERM and SIGINT', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const dir = path.join(work, `signal-${signal}`);
      const holder = await holdLock(dir);
      holder.kill(signal);
      expect(await exited(holder)).toEqual({ code: null, signal });
      expect(fs.readdirSync(dir)).toEqual([]);
    }
  });

  it('waits for a live holder when asked to, then takes the lock', async () => {
    const dir = path.join(work, 'wait');
    const holder = await holdLock(dir);
    const notices: string[] = [];
    const taken = lockDir(dir, { wait: true, notice: (m) => notices.push(m) });
    await new Promise((r) => setTimeout(r, 500));
    expect(notices).toEqual([expect.stringMatching(new RegExp(`waiting for pid ${holder.pid}`))]);
    holder.kill('SIGTERM');
    const release = await taken;
    release();
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('takes over the lock of a zombie holder (exited, not yet reaped)', async () => {
    // `sleep 0` exits at once; its parent then execs `sleep 5`, which never reaps it: a zombie.
    const { spawn } = await import('child_process');
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 5']);
    const zombie = Number(
      await new Promise<string>((resolve) => parent.stdout.once('data', (d) => resolve(String(d)))),
    );
    try {
      let state = '';
      for (let i = 0; i < 100 && state !== 'Z'; i++) {
        await new Promise((r) => setTimeout(r, 20));
        const stat = fs.readFileSync(`/proc/${zombie}/stat`, 'utf8');
        state = stat.charAt(stat.lastIndexOf(')') + 2);
      }
      expect(state).toBe('Z');
      expect(() => process.kill(zombie, 0)).not.toThrow(); // kill(pid, 0) alone calls it alive
      const dir = path.join(work, 'zombie-held');
      fs.mkdirSync(dir, { recursive: true });
      const lock = { pid: zombie, host: os.hostname(), command: 'zombie holder', started: new Date().toISOString() };
      fs.writeFileSync(path.join(dir, '.lock'), JSON.stringify(lock));
      const notices: string[] = [];
      await withDirLock(dir, async () => undefined, { notice: (m) => notices.push(m) });
      expect(notices).toEqual([
        expect.stringMatching(new RegExp(`took over the lock of pid ${zombie} \\(zombie holder`)),
      ]);
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('does not leave a dir it made only for the lock', async () => {
    const dir = path.join(work, 'made', 'for', 'lock');
    await expect(withDirLock(dir, async () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    expect(fs.existsSync(dir)).toBe(false);
  });
});

describe('a training run and signals', () => {
  it('stops at SIGTERM between steps, exit 143, its lock released', async () => {
    const out = path.join(work, 'signal-run');
    const config = writeJson(
      path.join(work, 'signal-run.json'),
      teacherConfig(coll, out, { steps: 100000, evalEvery: 0, checkpointEvery: 0 }),
    );
    const proc = startCli(['--progress', 'lines', 'teacher', 'train', config]);
    try {
      let stderr = '';
      proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      // lines mode prints step 1, then about every 5% of the run: wait for it, then a second of steps.
      while (!/step 1\//.test(stderr)) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 1000));
      const t0 = Date.now();
      proc.kill('SIGTERM');
      expect(await exited(proc)).toEqual({ code: 143, signal: null });
      expect(Date.now() - t0).toBeLessThan(10000);
      expect(stderr).toContain('stopped by SIGTERM');
    } finally {
      proc.kill('SIGKILL');
    }
    expect(fs.existsSync(path.join(out, '.lock'))).toBe(false);
  });
});

describe('commands on a locked output dir', () => {
  it('distill and teacher train: exit 1 naming the holder, nothing written', async () => {
    const out = path.join(work, 'locked-run');
    const holder = await holdLock(out);
    try {
      let r = await cli([
        'distill',
        writeJson(
          path.join(work, 'locked-student.json'),
          studentConfig(coll, out, path.join(teacherOut, 'model'), { loss: { ranknet: 1 } }),
        ),
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(inUse(out, holder.pid!));
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      r = await cli(['teacher', 'train', writeJson(path.join(work, 'locked-teacher.json'), teacherConfig(coll, out))]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(inUse(out, holder.pid!));
      expect(fs.readdirSync(out)).toEqual(['.lock']);
    } finally {
      holder.kill('SIGKILL');
      await exited(holder);
    }
  });

  it('data build: exit 1 naming the holder', async () => {
    const dir = path.join(work, 'locked-coll');
    const holder = await holdLock(dir);
    try {
      const r = await cli(['data', 'build', dir, '--documents', '3', '--queries', '10', '--seed', '1']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(inUse(dir, holder.pid!));
      expect(fs.readdirSync(dir)).toEqual(['.lock']);
    } finally {
      holder.kill('SIGKILL');
      await exited(holder);
    }
  });

  it("teacher score waits for the cache dir's holder, then fills the cache", async () => {
    const cacheDir = path.join(work, 'locked-cache');
    const holder = await holdLock(cacheDir);
    const file = writeJson(
      path.join(work, 'cache-student.json'),
      studentConfig(coll, path.join(work, 'unused'), path.join(teacherOut, 'model'), { cacheDir }),
    );
    const scoring = cli(['teacher', 'score', file]);
    await new Promise((r) => setTimeout(r, 3000));
    expect(fs.readdirSync(cacheDir)).toEqual(['.lock']);
    holder.kill('SIGTERM');
    const r = await scoring;
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`waiting for pid ${holder.pid}`));
    expect(fs.readdirSync(cacheDir)).toEqual([expect.stringMatching(/^teacher-scores-[0-9a-f]{16}\.jsonl$/)]);
  });

  it('a stale lock (its process killed) is taken over with a notice', async () => {
    const out = path.join(work, 'stale-run');
    fs.mkdirSync(out);
    const pid = deadPid();
    fs.writeFileSync(
      path.join(out, '.lock'),
      JSON.stringify({ pid, host: os.hostname(), command: 'distill old', started: '2026-01-01T00:00:00.000Z' }),
    );
    const r = await cli([
      'distill',
      writeJson(
        path.join(work, 'stale-student.json'),
        studentConfig(coll, out, path.join(teacherOut, 'model'), { loss: { ranknet: 1 } }),
      ),
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`took over the lock of pid ${pid} \\(distill old`));
    expect(leftovers(out)).toEqual([]);
  });

  it('two distill runs on one output, different configs, at once: one finishes, the other is refused; config and model agree', async () => {
    const out = path.join(work, 'race');
    const files = [1, 2].map((seed) =>
      writeJson(
        path.join(work, `race-${seed}.json`),
        studentConfig(coll, out, path.join(teacherOut, 'model'), { loss: { ranknet: 1 }, train: { seed, steps: 6 } }),
      ),
    );
    const results = await Promise.all(files.map((f) => cli(['distill', f])));
    const ok = results.filter((r) => r.code === 0);
    const refused = results.filter((r) => r.code !== 0);
    expect(ok).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(refused[0].code).toBe(1);
    expect(refused[0].stderr).toMatch(/is in use by pid \d+|holds a finished run/);
    const winner = results.indexOf(ok[0]);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).train.seed).toBe(winner + 1);
    expect(leftovers(out)).toEqual([]);
  });

  it('Ctrl-C (SIGINT) mid-run: exit 130, one line, the lock released, no temporaries', async () => {
    const out = path.join(work, 'interrupted');
    const file = writeJson(
      path.join(work, 'interrupted.json'),
      teacherConfig(coll, out, { steps: 400, checkpointEvery: 50, evalEvery: 0 }),
    );
    const proc = startCli(['--progress', 'json', 'teacher', 'train', file]);
    let stderr = '';
    await new Promise<void>((resolve) =>
      proc.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/"type":"step"/.test(stderr)) resolve();
      }),
    );
    proc.kill('SIGINT');
    const end = await exited(proc);
    expect(end.code).toBe(130);
    expect(stderr).toMatch(/fused-distill: stopped by SIGINT\n$/);
    expect(fs.existsSync(path.join(out, '.lock'))).toBe(false);
  });
});
