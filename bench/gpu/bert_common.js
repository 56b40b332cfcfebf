// What bench/gpu/cuda_bert.js (the BERT benchmark) and bench/gpu/cuda_vs_native.js (the training
// check) share: the GPU benchmark's model sizes, a synthetic distillation batch, backend selection, and the
// student step of the distillation pipeline (src/distill/step.ts's trainStep, objective.ts's predictionLoss,
// with the pipeline's default optimizer settings from parseStudentConfig). Loads the package from
// dist/ (npx tsc first); bench/gpu/prepare.sh bundles both scripts with it for the GPU machine.
'use strict';
const tf = require('@tensorflow/tfjs');
const fd = require('../../dist');

/** The tfjs flag of the 'cuda' backend that turns TF32 tensor-core matmuls on (cuBLAS math mode). */
const TF32_FLAG = 'FUSED_DISTILL_CUDA_TF32';

const bert = (layers, hidden, heads, intermediate, vocabSize = 30522) => ({
  vocabSize,
  hidden,
  layers,
  heads,
  intermediate,
  maxPosition: 512,
  typeVocab: 2,
  layerNormEps: 1e-12,
  initStd: 0.02,
});

/**
 * The GPU benchmark's shapes: 64 query-passage pairs (8 queries x 1 positive + 7 negatives, the pipeline's
 * default group) x 256 tokens; teacher BERT-base size, students 6L/768 and BERT-mini size. --tiny:
 * the same code paths at sizes a CPU runs in seconds (a dry run, not a measurement).
 */
const SIZES = {
  full: {
    B: 8,
    G: 8,
    len: 256,
    teacher: bert(12, 768, 12, 3072),
    students: { student6: bert(6, 768, 12, 3072), student4: bert(4, 256, 4, 1024) },
  },
  tiny: {
    B: 2,
    G: 4,
    len: 16,
    teacher: bert(2, 64, 2, 128, 1000),
    students: { student6: bert(1, 64, 2, 128, 1000), student4: bert(1, 32, 2, 64, 1000) },
  },
};

const sizeLabel = (c) => `${c.layers}L/${c.hidden}/${c.heads}h/${c.intermediate}`;

/**
 * Makes `name` tfjs's backend. A backend this package adds is registered by its register<Name>Backend
 * export when importing dist/ has not registered it already.
 */
async function useBackend(name) {
  if (!tf.findBackendFactory(name)) {
    const register = fd[`register${name[0].toUpperCase()}${name.slice(1)}Backend`];
    if (typeof register === 'function') register();
  }
  if (!tf.findBackendFactory(name))
    throw new Error(
      `backend '${name}' is not registered: this build of fused-distill (dist/) has no '${name}' backend`,
    );
  let ok = false;
  let why = '';
  try {
    ok = await tf.setBackend(name);
  } catch (e) {
    why = e.message;
  }
  if (!ok || tf.getBackend() !== name) {
    const device = name === 'cuda' ? ` (device: ${fd.cuda.lastError()})` : '';
    throw new Error(`backend '${name}' did not initialise${why ? `: ${why}` : ''}${device}`);
  }
}

/** TF32 on or off on the 'cuda' backend (its flag must be registered: an error names it otherwise). */
function setTF32(on) {
  try {
    tf.env().set(TF32_FLAG, on);
  } catch (e) {
    throw new Error(`cannot set tfjs flag ${TF32_FLAG}=${on} on backend '${tf.getBackend()}': ${e.message}`);
  }
}

/** The device's name and timers when the addon has one (CUDA or FUSED_DISTILL_EMULATE_DEVICE=1). */
function device() {
  const c = fd.cuda;
  const available = typeof c.isAvailable === 'function' && c.isAvailable();
  return { available, name: available ? c.deviceName() : null, why: available ? null : c.lastError() };
}

/**
 * A TrainBatch (src/distill/batches.ts) of B groups x G pairs x len tokens from a seeded PRNG:
 * random token ids, segment B from a quarter of the way (as bench/bert_step.js and its PyTorch
 * peer), no padding, candidate 0 the positive (label 1).
 */
function syntheticBatch({ B, G, len }, vocabSize, seed = 1) {
  let state = seed >>> 0;
  const rand = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 4294967296;
  const n = B * G;
  const ids = new Int32Array(n * len).map(() => Math.floor(rand() * vocabSize));
  const types = new Int32Array(n * len).map((_, i) => (i % len >= len / 4 ? 1 : 0));
  const labels = new Float32Array(n).map((_, i) => (i % G === 0 ? 1 : 0));
  return {
    groups: [],
    pairs: [],
    inputs: {
      inputIds: tf.tensor2d(ids, [n, len], 'int32'),
      tokenTypeIds: tf.tensor2d(types, [n, len], 'int32'),
      attentionMask: tf.ones([n, len], 'int32'),
    },
    tokenMask: tf.ones([n, len], 'float32'),
    labels: tf.tensor2d(labels, [B, G]),
    mask: tf.ones([B, G], 'float32'),
    B,
    G,
  };
}

/** The pipeline's student run config (parseStudentConfig's defaults; loss undefined: its default objective), one pass per step. */
function studentConfig(loss, { B }) {
  return fd.distill.parseStudentConfig({
    output: '/nonexistent/bench',
    teacher: { checkpoint: '/nonexistent/teacher' },
    ...(loss ? { loss } : {}),
    train: { batch: B, microBatch: B },
  });
}

/** Teacher scoring without gradient: [B, G] scores (forward, then a read: the sync point). */
function teacherScores(teacher, batch) {
  const scores = teacher.forward(batch.inputs).scores;
  const values = scores.dataSync();
  scores.dispose();
  return values;
}

/**
 * A student's training step as the pipeline takes it: trainStep over one micro-batch whose loss is
 * the prediction-layer objective (predictionLoss: one fused rankingObjectiveParts call) on the
 * student's scores against the teacher's, then AdamW (runOptimizer of the config's train section).
 * Returns step() -> StepResult and dispose().
 */
function studentStep(student, batch, teacherValues, config) {
  const t = tf.tensor2d(teacherValues, [batch.B, batch.G]);
  const weights = fd.distill.objectiveWeights(config.loss);
  const optimizer = fd.distill.runOptimizer(student.params, config.train);
  const micro = {
    share: 1,
    loss: () => {
      const s = tf.reshape(student.forward(batch.inputs).scores, [batch.B, batch.G]);
      return fd.distill.predictionLoss(s, t, batch, weights, config.loss);
    },
    dispose: () => undefined, // the batch and the teacher's scores serve every step
  };
  return {
    step: () => fd.distill.trainStep([micro], student.params, optimizer),
    dispose: () => {
      optimizer.dispose();
      t.dispose();
    },
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Writes JSON atomically (a timeout mid-write leaves the previous version). */
function writeJson(file, value) {
  const fs = require('fs');
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 1) + '\n');
  fs.renameSync(`${file}.tmp`, file);
}

/** --name=value or --name value; flags: --name. */
function argParser(argv) {
  const get = (name, def) => {
    const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
    if (i < 0) return def;
    return argv[i].includes('=') ? argv[i].slice(argv[i].indexOf('=') + 1) : argv[i + 1];
  };
  return { get, flag: (name) => argv.includes(`--${name}`) };
}

module.exports = {
  tf,
  fd,
  TF32_FLAG,
  SIZES,
  sizeLabel,
  useBackend,
  setTF32,
  device,
  syntheticBatch,
  studentConfig,
  teacherScores,
  studentStep,
  median,
  writeJson,
  argParser,
};
