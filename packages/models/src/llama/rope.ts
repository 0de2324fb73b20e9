// Rotary embedding tables for the `rope` op, with the frequency scalings of config.json.
import { tensor, type DType, type Tensor } from '@blora/tensor';
import type { LlamaConfig } from './config.js';

/**
 * The inverse frequencies `theta^(-2i/headDim)` for `i < headDim/2`, adjusted by
 * `rope_scaling` as transformers does ('linear' divides every frequency by the factor;
 * 'llama3' divides the low frequencies, keeps the high ones and blends in between).
 * Computed in float64.
 */
export function ropeInverseFrequencies(config: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float64Array {
  const half = config.headDim / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) out[i] = Math.pow(config.ropeTheta, (-2 * i) / config.headDim);
  const s = config.ropeScaling;
  if (s?.type === 'linear') {
    for (let i = 0; i < half; i++) out[i]! /= s.factor;
  } else if (s?.type === 'llama3') {
    const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = out[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowFreqWavelen) {
        out[i] = f / s.factor;
      } else if (wavelen >= highFreqWavelen) {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        out[i] = (1 - smooth) * (f / s.factor) + smooth * f;
      }
    }
  }
  return out;
}

/** Cos/sin tables for positions `offset .. offset + length - 1`. */
export interface RopeTables {
  /** `[length, headDim/2]`. */
  cos: Tensor;
  /** `[length, headDim/2]`. */
  sin: Tensor;
}

/**
 * Tables for the `rope` op: row p holds `cos/sin((offset + p) * invFreq[i])`, computed in
 * float64 and stored as float32 (float64 when the model computes in float64).
 */
export function ropeTablesFor(invFreq: Float64Array, length: number, offset: number, computeDType: DType, device: string): RopeTables {
  const half = invFreq.length;
  const cos = new Float64Array(length * half);
  const sin = new Float64Array(length * half);
  for (let p = 0; p < length; p++) {
    for (let i = 0; i < half; i++) {
      const angle = (offset + p) * invFreq[i]!;
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  const options = { shape: [length, half], dtype: computeDType === 'float64' ? 'float64' as const : 'float32' as const, device };
  return { cos: tensor(cos, options), sin: tensor(sin, options) };
}
