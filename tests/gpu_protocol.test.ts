// The GPU run's pieces that run here (bench/gpu/README.md): the BERT benchmark and the cuda-vs-native
// training check on the 'native' backend at --tiny sizes (their code paths, not their figures), the
// report merge on a fixture of every step's output, the bundled suites' runner on a fixture suite (its
// skips and its device line), and run.sh's reading of the check binaries' build commands. Child
// processes on the built package (dist/, as `npm test` builds it first).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');
const GPU = path.join(ROOT, 'bench', 'gpu');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fd-gpu-protocol-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const env: NodeJS.ProcessEnv = { ...process.env, FUSED_DISTILL_NUM_THREADS: '2' };
delete env.FUSED_DISTILL_EMULATE_DEVICE;
const node = (script: string, args: string[]) =>
  spawnSync(process.execPath, [path.join(GPU, script), ...args], { cwd: tmp, encoding: 'utf8', env });

describe('bench/gpu/cuda_bert.js', () => {
  test('--backend native --tiny: every case timed (wall time; no device here), profiled, nothing leaked', () => {
    const out = path.join(tmp, 'cuda_bert.json');
    const r = node('cuda_bert.js', ['--backend', 'native', '--tiny', '--steps', '2', '--warmup', '1', '--json', out]);
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.status).toBe(0);
    const j = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(j.tf32_flag).toBe('FUSED_DISTILL_CUDA_TF32');
    expect(j.rows.map((x: { id: string; precision: string }) => `${x.id}/${x.precision}`)).toEqual([
      'teacher/fp32',
      'student6/fp32',
      'student4/fp32',
    ]);
    for (const row of j.rows) {
      expect(row.error).toBeUndefined();
      expect(row.wall_ms).toBeGreaterThan(0);
      expect(row.steps).toBe(2);
      expect(row.tensors_leaked).toBe(0);
      expect(Number.isFinite(row.value)).toBe(true);
    }
    // the student steps' losses: KL of two softmaxes, >= 0
    expect(j.rows[1].value).toBeGreaterThanOrEqual(0);
    for (const id of ['teacher', 'student6', 'student4']) expect(j.profiles[id].calls).toBeGreaterThan(0);
  });

  test('tf32 on a backend without the flag: that row says why, the others run, exit 1', () => {
    const out = path.join(tmp, 'cuda_bert_tf32.json');
    const r = node('cuda_bert.js', [
      '--backend',
      'native',
      '--tiny',
      '--steps',
      '1',
      '--warmup',
      '0',
      '--only',
      'student4',
      '--precisions',
      'fp32,tf32',
      '--no-profile',
      '--json',
      out,
    ]);
    expect(r.status).toBe(1);
    const j = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(j.rows[0].error).toBeUndefined();
    expect(j.rows[1].error).toMatch(/FUSED_DISTILL_CUDA_TF32/);
  });

  test('a backend that does not exist: exit 2 and the reason in the JSON', () => {
    const out = path.join(tmp, 'cuda_bert_none.json');
    const r = node('cuda_bert.js', ['--backend', 'nosuch', '--tiny', '--json', out]);
    expect(r.status).toBe(2);
    expect(JSON.parse(fs.readFileSync(out, 'utf8')).error).toMatch(/'nosuch' is not registered/);
  });
});

test('bench/gpu/cuda_vs_native.js: the same backend twice agrees exactly', () => {
  const out = path.join(tmp, 'cvn.json');
  const r = node('cuda_vs_native.js', ['--backends', 'native,native', '--tiny', '--steps', '3', '--json', out]);
  expect(r.status).toBe(0);
  const j = JSON.parse(fs.readFileSync(out, 'utf8'));
  expect(j.pass).toBe(true);
  expect(j.losses.native).toHaveLength(3);
  expect(j.loss_max_rel_diff).toBe(0);
  expect(j.param_max_abs_diff).toBe(0);
});

describe('bench/gpu/merge.js', () => {
  const dir = path.join(tmp, 'out');
  const write = (f: string, s: unknown) =>
    fs.writeFileSync(path.join(dir, f), typeof s === 'string' ? s : JSON.stringify(s));
  const bertRow = (id: string, precision: string, device: number, extra = {}) => ({
    id,
    label: `${id} case`,
    precision,
    device_ms: device,
    wall_ms: device + 1,
    steps: 10,
    ...extra,
  });
  let md = '';
  beforeAll(() => {
    fs.mkdirSync(dir, { recursive: true });
    write('device.txt', 'NVIDIA H100 80GB HBM3, 550.00, 81559 MiB\n');
    write(
      'steps.txt',
      [
        'node 0 2',
        'addon-build 0 90',
        'check-tensor_ops_check 1 5',
        'suite-cuda 0 3',
        'suite-device_api 0 4',
        'suite-cuda_backend 124 150',
        'tfjs_core 1 40',
        'cuda_vs_native 0 20',
        'nccl 1 12',
        'cuda_bert 0 60',
        'torch_bert 0 30',
      ].join('\n') + '\n',
    );
    write(
      'check-tensor_ops_check.log',
      'PASS add f32\nPASS mul f32\nFAIL sum f32: rel err 1e-3\nFAIL: 2 of 3 checks passed\n',
    );
    write(
      'suite-cuda.log',
      '== cuda device: real CUDA addon on NVIDIA H100 80GB HBM3\nPASS a (1 ms)\nSKIP b (skipped: no TF32 here) > c [describe.skip]\n== cuda: 12 passed, 0 failed, 1 skipped\n',
    );
    write(
      'suite-device_api.log',
      '== device_api device: host emulation (CPU build, FUSED_DISTILL_EMULATE_DEVICE=1)\nPASS a (1 ms)\nSKIP later [todo]\nSKIP d [test.skip]\n== device_api: 7 passed, 0 failed, 2 skipped\n',
    );
    write('suite-cuda_backend.log', 'PASS x (2 ms)\nFAIL y > z\n    expected 1 got 2\nTIMED OUT after 150s\n');
    write('tfjs_core.json', {
      seconds: 40,
      totals: { specs: 4198, run: 4193, passed: 4190, failed: 3, knownFailures: 1, pending: 1, excluded: 4 },
      unexpectedFailures: ['a spec', 'b spec'],
      knownFailuresNowPassing: [],
    });
    write('cuda_vs_native.json', {
      pass: true,
      steps: 20,
      loss_max_rel_diff: 1e-7,
      param_max_abs_diff: 2e-6,
      checks: [
        { name: 'teacher scores', pass: true },
        { name: 'loss', pass: true },
      ],
    });
    write('nccl.json', {
      pass: false,
      version: 22805,
      two_ranks_outcome: 'refused: Duplicate GPU detected',
      checks: [
        { name: 'NCCL available', pass: true, detail: 'version 22805' },
        { name: 'allGather float32 x 1000', pass: true },
        { name: 'timeout: initRank of 2 ranks with 1 present (other error)', pass: false, detail: 'boom' },
      ],
    });
    write('cuda_bert.json', {
      node: 'v20',
      device: 'NVIDIA H100',
      steps: 10,
      shape: { pairs: 64, queries: 8, group: 8, tokens: 256 },
      rows: [
        bertRow('teacher', 'fp32', 33),
        bertRow('student6', 'fp32', 150),
        { id: 'student4', label: 'student4 case', precision: 'tf32', error: 'boom' },
      ],
      profiles: {
        teacher: {
          kernels: 3,
          calls: 40,
          ms: 2,
          fallbacks: ['Range'],
          top: [{ kernel: 'BatchMatMul', calls: 10, ms: 1.5 }],
        },
      },
    });
    write('torch_bert.json', {
      torch: '2.11',
      cuda: '13.0',
      device: 'NVIDIA H100',
      steps: 10,
      rows: [
        bertRow('teacher', 'fp32', 66, { reference_ms: 65.9 }),
        bertRow('student6', 'fp32', 100, { reference_ms: 116.2 }),
        bertRow('student4', 'tf32', 13, { reference_ms: 13.7 }),
      ],
    });
    write('cuda_bert_sync_uploads.json', { rows: [bertRow('student4', 'fp32', 21.5)] });
    write('cuda_bert_composite.json', { rows: [bertRow('student4', 'fp32', 180)] });
    const r = spawnSync(process.execPath, [path.join(GPU, 'merge.js'), dir], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    md = fs.readFileSync(path.join(dir, 'gpu.md'), 'utf8');
    expect(r.stdout).toBe(md);
  });

  test('the card, each step, each check with its counts (skipped included)', () => {
    expect(md).toContain('card: **NVIDIA H100 80GB HBM3, 550.00, 81559 MiB**');
    expect(md).toContain('suite-cuda_backend **TIMED OUT (150 s)**');
    expect(md).toMatch(/\| bench\/gpu\/tensor_ops_check\.cu \| 2 \| 1 \| 0 \| exit 1 \|/);
    expect(md).toMatch(/\| jest tests\/cuda\.test\.ts [^|]*\| 12 \| 0 \| 1 \| ok \|/);
    expect(md).toMatch(/\| jest tests\/device_api\.test\.ts [^|]*\| 7 \| 0 \| 2 \| ok \|/);
    expect(md).toMatch(/\| tfjs-core op suite on 'cuda' \| 4190 \| 3 \| 5 \| exit 1; ran 4193 of 4198 specs/);
    expect(md).toMatch(/\| distillation steps: cuda vs native[^|]*\| 2 \| 0 \| — \| ok; 20 steps/);
  });

  test('the NCCL check: counts, the version, the two-rank outcome, its failures', () => {
    expect(md).toMatch(
      /\| NCCL collectives \(addon\.cuda\.nccl\) \| 2 \| 1 \| — \| exit 1; NCCL 22805; two ranks on one GPU: refused: Duplicate GPU detected \|/,
    );
    expect(md).toContain('timeout: initRank of 2 ranks with 1 present (other error): boom');
  });

  test('each suite says where it ran: the real CUDA addon, the host emulation (flagged), or not reported', () => {
    expect(md).toContain('| jest tests/cuda.test.ts (bundled, real CUDA addon on NVIDIA H100 80GB HBM3) |');
    expect(md).toContain(
      '| jest tests/device_api.test.ts (bundled, host emulation (CPU build, FUSED_DISTILL_EMULATE_DEVICE=1)) |',
    );
    expect(md).toContain('| jest tests/cuda_backend.test.ts (bundled, device not reported) |');
    expect(md).toMatch(
      /\*\*Not on the GPU's CUDA addon: jest tests\/device_api\.test\.ts [^*]*; jest tests\/cuda_backend\.test\.ts [^*]*\.\*\*/,
    );
    expect(md).not.toMatch(/Not on the GPU's CUDA addon: [^\n]*tests\/cuda\.test\.ts/);
  });

  test('every skipped test listed with how it was skipped', () => {
    expect(md).toContain(
      '- jest tests/cuda.test.ts (bundled, real CUDA addon on NVIDIA H100 80GB HBM3): b (skipped: no TF32 here) > c [describe.skip]',
    );
    expect(md).toMatch(/- jest tests\/device_api\.test\.ts [^\n]*: later \[todo\]/);
    expect(md).toMatch(/- jest tests\/device_api\.test\.ts [^\n]*: d \[test\.skip\]/);
    const j = JSON.parse(fs.readFileSync(path.join(dir, 'gpu.json'), 'utf8'));
    expect(j.skipped.map((x: { test: string }) => x.test)).toEqual([
      'b (skipped: no TF32 here) > c [describe.skip]',
      'later [todo]',
      'd [test.skip]',
    ]);
    expect(j.checks.find((c: { check: string }) => c.check.startsWith('jest tests/device_api')).skipped).toBe(2);
  });

  test('the benchmark: ratio to PyTorch and the 1.2x target, errors marked', () => {
    expect(md).toMatch(
      /\| teacher case \| fp32 \| 33\.0 ms \| 34\.0 ms \| 66\.0 ms \| 67\.0 ms \| 0\.50x \| yes \| 65\.9 ms \|/,
    );
    expect(md).toMatch(
      /\| student6 case \| fp32 \| 150 ms \| 151 ms \| 100 ms \| 101 ms \| 1\.50x \| \*\*no\*\* \| 116 ms \|/,
    );
    expect(md).toMatch(/\| student4 case \| tf32 \| error † \|/);
    expect(md).toMatch(/\| teacher \| 3 \| 40 \| Range \| BatchMatMul \(10, 1\.5\) \|/);
  });

  test("the student step's A/B variants, those that ran", () => {
    expect(md).toContain('### Student 4L/256 fp32 step, variants');
    expect(md).toMatch(
      /\| uploads wait for the stream [^|]* \| cuda_bert_sync_uploads\.json \| 21\.5 ms \| 22\.5 ms \| 10 \|/,
    );
    expect(md).toMatch(
      /\| LayerNorm \/ GELU as tfjs composites [^|]* \| cuda_bert_composite\.json \| 180 ms \| 181 ms \| 10 \|/,
    );
    expect(md).not.toContain('cuda_bert_composite_sync_uploads.json');
    const j = JSON.parse(fs.readFileSync(path.join(dir, 'gpu.json'), 'utf8'));
    expect(j.variants.map((v: { file: string }) => v.file)).toEqual([
      'cuda_bert_sync_uploads.json',
      'cuda_bert_composite.json',
    ]);
  });

  test('failures listed with their first lines', () => {
    expect(md).toContain('  - FAIL sum f32: rel err 1e-3');
    expect(md).toContain('  - FAIL y > z — expected 1 got 2');
    expect(md).toContain('  - a spec');
    expect(md).toContain('  - boom');
    const j = JSON.parse(fs.readFileSync(path.join(dir, 'gpu.json'), 'utf8'));
    expect(j.benchmark.find((r: { id: string }) => r.id === 'teacher').meets_target).toBe(true);
  });
});

describe('tests/gpu: the bundled suites and their runner', () => {
  const RUNNER = path.join(ROOT, 'tests', 'gpu', 'runner.js');
  const suite = path.join(tmp, 'fixture_suite.js');
  const driver = path.join(tmp, 'fixture_driver.js');
  beforeAll(() => {
    fs.writeFileSync(
      suite,
      [
        "describe('a', () => {",
        "  test('passes', () => expect(1).toBe(1));",
        "  test.skip('not run', () => { throw new Error('ran'); });",
        "  test.todo('later');",
        "  it.skip('it skipped', () => { throw new Error('ran'); });",
        '});',
        "describe.skip('b (skipped: no device here)', () => {",
        "  beforeAll(() => { throw new Error('a hook of a skipped suite ran'); });",
        "  test('inside', () => { throw new Error('ran'); });",
        "  test.each([[1], [2]])('row %i', () => { throw new Error('ran'); });",
        "  describe('nested', () => test('deep', () => { throw new Error('ran'); }));",
        '});',
        "describe.each([[1]])('c %i', (n) => test('is one', () => expect(n).toBe(1)));",
        "test('fails', () => expect(1).toBe(2));",
      ].join('\n'),
    );
    // the addon the suite would have used, as bundle.js's entry passes it
    fs.writeFileSync(
      driver,
      [
        `require(${JSON.stringify(RUNNER)});`,
        `require(${JSON.stringify(suite)});`,
        'const cuda = (available, name, error) => ({ isAvailable: () => available, deviceName: () => name, lastError: () => error });',
        'const addons = {',
        "  gpu: { builtWithCuda: () => true, cuda: cuda(true, 'NVIDIA H100 80GB HBM3', '') },",
        "  emulation: { builtWithCuda: () => false, cuda: cuda(true, 'host emulation', '') },",
        "  none: { builtWithCuda: () => false, cuda: cuda(false, '', 'fused-distill was built without CUDA') },",
        '};',
        "__runAll('fixture', () => { if (!addons[process.argv[2]]) throw new Error('no addon at x'); return addons[process.argv[2]]; }).then((f) => process.exit(f ? 1 : 0));",
      ].join('\n'),
    );
  });
  const runFixture = (addon: string) =>
    spawnSync(process.execPath, [driver, addon], { cwd: tmp, encoding: 'utf8', env });

  test('runner.js: test.skip, todo and every test inside describe.skip are counted and listed with how, never run', () => {
    const r = runFixture('gpu');
    expect(r.status).toBe(1); // 'fails' failed
    const out = r.stdout.split('\n');
    expect(out.filter((l) => /^(PASS|SKIP|FAIL) /.test(l)).map((l) => l.replace(/ \(\d+ ms\)$/, ''))).toEqual([
      'PASS a > passes',
      'SKIP a > not run [test.skip]',
      'SKIP a > later [todo]',
      'SKIP a > it skipped [test.skip]',
      'SKIP b (skipped: no device here) > inside [describe.skip]',
      'SKIP b (skipped: no device here) > row 1 [describe.skip]',
      'SKIP b (skipped: no device here) > row 2 [describe.skip]',
      'SKIP b (skipped: no device here) > nested > deep [describe.skip]',
      'PASS c 1 > is one',
      'FAIL fails',
    ]);
    expect(r.stderr).toBe(''); // the skipped suite's beforeAll did not run (it throws)
    expect(out).toContain('== fixture: 2 passed, 1 failed, 7 skipped');
  });

  test('runner.js: the suite says where it ran (the real CUDA addon, the host emulation, no device)', () => {
    const device = (addon: string) =>
      runFixture(addon)
        .stdout.split('\n')
        .find((l) => l.startsWith('== fixture device: '));
    expect(device('gpu')).toBe('== fixture device: real CUDA addon on NVIDIA H100 80GB HBM3');
    expect(device('emulation')).toBe('== fixture device: host emulation (CPU build, FUSED_DISTILL_EMULATE_DEVICE=1)');
    expect(device('none')).toBe('== fixture device: none (CPU build: fused-distill was built without CUDA)');
    expect(device('broken')).toBe('== fixture device: unknown (the addon did not load: no addon at x)');
  });

  test('bundle.js bundles every test file with device tests (device_api included)', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'tests', 'gpu', 'bundle.js'), '--list'], {
      encoding: 'utf8',
      env,
    });
    expect(r.status).toBe(0);
    const deviceTests = /^if \(deviceTestsHere\(__filename\)\)/m;
    const want = fs
      .readdirSync(path.join(ROOT, 'tests'))
      .filter((f) => f.endsWith('.test.ts') && deviceTests.test(fs.readFileSync(path.join(ROOT, 'tests', f), 'utf8')));
    expect(r.stdout.trim().split('\n')).toEqual(want.map((f) => f.replace(/\.test\.ts$/, '')).sort());
    expect(r.stdout.trim().split('\n')).toEqual(expect.arrayContaining(['cuda', 'cuda_backend', 'device_api', 'fuzz']));
  });

  test('a bundled suite, run outside the repo on the host emulation, says so and passes', () => {
    const out = path.join(tmp, 'bundles');
    const b = spawnSync(
      process.execPath,
      [path.join(ROOT, 'tests', 'gpu', 'bundle.js'), '--suites', 'cuda', '--no-tfjs-core', '--out', out],
      { encoding: 'utf8', env },
    );
    expect(b.stderr).toBe('');
    expect(b.status).toBe(0);
    const addon = path.join(ROOT, 'build', 'Release', 'fused_distill.node');
    const r = spawnSync(process.execPath, [path.join(out, 'fd-tests', 'cuda.js')], {
      cwd: tmp,
      encoding: 'utf8',
      env: { ...env, FD_ADDON: addon, FUSED_DISTILL_EMULATE_DEVICE: '1' },
    });
    expect(r.stdout).toContain('== cuda device: host emulation (CPU build, FUSED_DISTILL_EMULATE_DEVICE=1)');
    expect(r.stdout).toMatch(/^== cuda: \d+ passed, 0 failed, 0 skipped$/m);
    expect(r.status).toBe(0);
  }, 120_000);
});

test("bench/gpu/run.sh reads a check's nvcc command from its header comment, continuation lines joined", () => {
  const cu = path.join(tmp, 'x_check.cu');
  fs.writeFileSync(
    cu,
    [
      '// A check (needs a GPU; nvcc 12+):',
      '//   nvcc -std=c++17 -O3 -Ikernels -o build/x \\',
      '//     a.cu b.cpp \\',
      '//     c.cu -lgomp',
      '//   ./build/x',
      '#include <x>',
    ].join('\n'),
  );
  const script = `source <(sed -n '/^check_cmd()/,/^}/p' ${JSON.stringify(path.join(GPU, 'run.sh'))}); check_cmd ${JSON.stringify(cu)}`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  expect(r.stdout.trim()).toBe('nvcc -std=c++17 -O3 -Ikernels -o build/x a.cu b.cpp c.cu -lgomp');
});
