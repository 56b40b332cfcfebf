// The tests' smallest cross-encoder: BERT's vocabulary, hidden 16, 1 layer (override any field).
import type { CrossEncoderConfig } from '../../src/models/cross_encoder';

export function tinyEncoderConfig(overrides: Partial<CrossEncoderConfig> = {}): CrossEncoderConfig {
  return {
    vocabSize: 30522,
    hidden: 16,
    layers: 1,
    heads: 2,
    intermediate: 32,
    maxPosition: 64,
    typeVocab: 2,
    layerNormEps: 1e-12,
    initStd: 0.02,
    ...overrides,
  };
}
