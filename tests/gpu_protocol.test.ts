// The GPU run's pieces that run here (bench/gpu/README.md): the BERT benchmark and the cuda-vs-native
// training check on the 'native' backend at --tiny sizes (their code paths, not their figures), the
// report merge on a fixture of every step's output, and run.sh's reading of the check binaries'
// build commands. Child processes on the built package (dist/, as `npm test` builds it first).
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
const node = (script: string, args: string[]) => spawnSync(process.execPath, [path.join(GPU, script), ...args], { cwd: tmp, encoding: 'utf8', env });

describe('bench/gpu/cuda_bert.js', () => {
  test("--backend native --tiny: every case timed (wall time; no device here), profiled, nothing leaked", () => {
    const out = path.join(tmp, 'cuda_bert.json');
    const r = node('cuda_bert.js', ['--backend', 'native', '--tiny', '--steps', '2', '--warmup', '1', '--json', out]);
    expect(r.stderr).not.toMatch(/FAILED/);
    expect(r.status).toBe(0);
    const j = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(j.tf32_flag).toBe('FUSED_DISTILL_CUDA_TF32');
    expect(j.rows.map((x: { id: string; precision: string }) => `${x.id}/${x.precision}`)).toEqual(['teacher/fp32', 'student6/fp32', 'student4/fp32']);
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
    const r = node('cuda_bert.js', ['--backend', 'native', '--tiny', '--steps', '1', '--warmup', '0', '--only', 'student4', '--precisions', 'fp32,tf32', '--no-profile', '--json', out]);
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
  const write = (f: string, s: unknown) => fs.writeFileSync(path.join(dir, f), typeof s === 'string' ? s : JSON.stringify(s));
  const bertRow = (id: string, precision: string, device: number, extra = {}) => ({ id, label: `${id} case`, precision, device_ms: device, wall_ms: device + 1, steps: 10, ...extra });
  let md = '';
  beforeAll(() => {
    fs.mkdirSync(dir, { recursive: true });
    write('device.txt', 'NVIDIA H100 80GB HBM3, 550.00, 81559 MiB\n');
    write('steps.txt', ['node 0 2', 'addon-build 0 90', 'check-tensor_ops_check 1 5', 'suite-cuda 0 3', 'suite-cuda_backend 124 150', 'tfjs_core 1 40', 'cuda_vs_native 0 20', 'cuda_bert 0 60', 'torch_bert 0 30'].join('\n') + '\n');
    write('check-tensor_ops_check.log', 'PASS add f32\nPASS mul f32\nFAIL sum f32: rel err 1e-3\nFAIL: 2 of 3 checks passed\n');
    write('suite-cuda.log', 'PASS a (1 ms)\n== cuda: 12 passed, 0 failed, 1 skipped\n');
    write('suite-cuda_backend.log', 'PASS x (2 ms)\nFAIL y > z\n    expected 1 got 2\nTIMED OUT after 150s\n');
    write('tfjs_core.json', { seconds: 40, totals: { specs: 4198, run: 4193, passed: 4190, failed: 3, knownFailures: 1 }, unexpectedFailures: ['a spec', 'b spec'], knownFailuresNowPassing: [] });
    write('cuda_vs_native.json', { pass: true, steps: 20, loss_max_rel_diff: 1e-7, param_max_abs_diff: 2e-6, checks: [{ name: 'teacher scores', pass: true }, { name: 'loss', pass: true }] });
    write('cuda_bert.json', { node: 'v20', device: 'NVIDIA H100', steps: 10, shape: { pairs: 64, queries: 8, group: 8, tokens: 256 },
      rows: [bertRow('teacher', 'fp32', 33), bertRow('student6', 'fp32', 150), { id: 'student4', label: 'student4 case', precision: 'tf32', error: 'boom' }],
      profiles: { teacher: { kernels: 3, calls: 40, ms: 2, fallbacks: ['Range'], top: [{ kernel: 'BatchMatMul', calls: 10, ms: 1.5 }] } } });
    write('torch_bert.json', { torch: '2.11', cuda: '13.0', device: 'NVIDIA H100', steps: 10,
      rows: [bertRow('teacher', 'fp32', 66, { reference_ms: 65.9 }), bertRow('student6', 'fp32', 100, { reference_ms: 116.2 }), bertRow('student4', 'tf32', 13, { reference_ms: 13.7 })] });
    write('cuda_bert_sync_uploads.json', { rows: [bertRow('student4', 'fp32', 21.5)] });
    write('cuda_bert_composite.json', { rows: [bertRow('student4', 'fp32', 180)] });
    const r = spawnSync(process.execPath, [path.join(GPU, 'merge.js'), dir], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    md = fs.readFileSync(path.join(dir, 'gpu.md'), 'utf8');
    expect(r.stdout).toBe(md);
  });

  test('the card, each step, each check with its counts', () => {
    expect(md).toContain('card: **NVIDIA H100 80GB HBM3, 550.00, 81559 MiB**');
    expect(md).toContain('suite-cuda_backend **TIMED OUT (150 s)**');
    expect(md).toMatch(/\| bench\/gpu\/tensor_ops_check\.cu \| 2 \| 1 \| exit 1 \|/);
    expect(md).toMatch(/\| jest tests\/cuda\.test\.ts [^|]*\| 12 \| 0 \| ok \|/);
    expect(md).toMatch(/\| tfjs-core op suite on 'cuda' \| 4190 \| 3 \| exit 1; ran 4193 of 4198 specs/);
    expect(md).toMatch(/\| distillation steps: cuda vs native[^|]*\| 2 \| 0 \| ok; 20 steps/);
  });

  test('the benchmark: ratio to PyTorch and the 1.2x target, errors marked', () => {
    expect(md).toMatch(/\| teacher case \| fp32 \| 33\.0 ms \| 34\.0 ms \| 66\.0 ms \| 67\.0 ms \| 0\.50x \| yes \| 65\.9 ms \|/);
    expect(md).toMatch(/\| student6 case \| fp32 \| 150 ms \| 151 ms \| 100 ms \| 101 ms \| 1\.50x \| \*\*no\*\* \| 116 ms \|/);
    expect(md).toMatch(/\| student4 case \| tf32 \| error † \|/);
    expect(md).toMatch(/\| teacher \| 3 \| 40 \| Range \| BatchMatMul \(10, 1\.5\) \|/);
  });

  test('the student step\'s A/B variants, those that ran', () => {
    expect(md).toContain('### Student 4L/256 fp32 step, variants');
    expect(md).toMatch(/\| uploads wait for the stream [^|]* \| cuda_bert_sync_uploads\.json \| 21\.5 ms \| 22\.5 ms \| 10 \|/);
    expect(md).toMatch(/\| LayerNorm \/ GELU as tfjs composites [^|]* \| cuda_bert_composite\.json \| 180 ms \| 181 ms \| 10 \|/);
    expect(md).not.toContain('cuda_bert_composite_sync_uploads.json');
    const j = JSON.parse(fs.readFileSync(path.join(dir, 'gpu.json'), 'utf8'));
    expect(j.variants.map((v: { file: string }) => v.file)).toEqual(['cuda_bert_sync_uploads.json', 'cuda_bert_composite.json']);
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

test("bench/gpu/run.sh reads a check's nvcc command from its header comment, continuation lines joined", () => {
  const cu = path.join(tmp, 'x_check.cu');
  fs.writeFileSync(cu, ['// A check (needs a GPU; nvcc 12+):', '//   nvcc -std=c++17 -O3 -Ikernels -o build/x \\', '//     a.cu b.cpp \\', '//     c.cu -lgomp', '//   ./build/x', '#include <x>'].join('\n'));
  const script = `source <(sed -n '/^check_cmd()/,/^}/p' ${JSON.stringify(path.join(GPU, 'run.sh'))}); check_cmd ${JSON.stringify(cu)}`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  expect(r.stdout.trim()).toBe('nvcc -std=c++17 -O3 -Ikernels -o build/x a.cu b.cpp c.cu -lgomp');
});
