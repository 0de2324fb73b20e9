// Attention forward and backward against float64 references written from the definitions
// (full masked score matrix, softmax, products), with every mask combination, grouped-query
// heads, strided operands and the TypeScript fallback.
import { describe, expect, it } from 'vitest';
import { attention, attentionBackward, execute, permute, tensor, type Tensor } from '@blora/tensor';
import { nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import { cpuKernelsInfo } from '../src/index.js';
import { loadAddon } from '../src/native.js';
import { expectClose, inEveryMode, NATIVE } from './helpers.js';

interface Dims {
  b: number;
  h: number;
  t: number;
  d: number;
  hkv: number;
  s: number;
  dv: number;
}

interface Mask {
  causal: boolean;
  window: number | null;
}

/** True when query t of T may see key j of S: end-aligned causal mask and sliding window. */
function visible(t: number, j: number, dims: Dims, mask: Mask): boolean {
  const aligned = t + dims.s - dims.t;
  if (mask.causal && j > aligned) return false;
  if (mask.window !== null && j <= aligned - mask.window) return false;
  return true;
}

/** Row-major index of (b, h, t, c) in a [B, heads, rows, cols] array. */
function at(b: number, h: number, t: number, c: number, heads: number, rows: number, cols: number): number {
  return ((b * heads + h) * rows + t) * cols + c;
}

/** Float64 forward and backward from the definitions, for every (batch, head). */
function reference(dims: Dims, mask: Mask, scale: number, q: Float64Array, k: Float64Array, v: Float64Array, dO: Float64Array) {
  const { b: B, h: H, t: T, d: D, hkv: Hkv, s: S, dv: Dv } = dims;
  const o = new Float64Array(B * H * T * Dv);
  const lse = new Float64Array(B * H * T);
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      for (let t = 0; t < T; t++) {
        // Probabilities of the visible keys.
        const p = new Float64Array(S);
        let max = -Infinity;
        for (let j = 0; j < S; j++) {
          if (!visible(t, j, dims, mask)) continue;
          let dot = 0;
          for (let c = 0; c < D; c++) dot += q[at(b, h, t, c, H, T, D)]! * k[at(b, g, j, c, Hkv, S, D)]!;
          p[j] = scale * dot;
          max = Math.max(max, p[j]!);
        }
        if (max === -Infinity) {
          lse[(b * H + h) * T + t] = -Infinity;
          continue; // o and the gradients of this row stay zero
        }
        let sum = 0;
        for (let j = 0; j < S; j++) sum += visible(t, j, dims, mask) ? Math.exp(p[j]! - max) : 0;
        for (let j = 0; j < S; j++) p[j] = visible(t, j, dims, mask) ? Math.exp(p[j]! - max) / sum : 0;
        lse[(b * H + h) * T + t] = max + Math.log(sum);
        for (let c = 0; c < Dv; c++) {
          let acc = 0;
          for (let j = 0; j < S; j++) acc += p[j]! * v[at(b, g, j, c, Hkv, S, Dv)]!;
          o[at(b, h, t, c, H, T, Dv)] = acc;
        }
        // dP = dO v^T, dS = P (dP - sum_j P dP), dq = scale dS k, dk += scale dS^T q, dv += P^T dO.
        const dp = new Float64Array(S);
        let rowDot = 0;
        for (let j = 0; j < S; j++) {
          for (let c = 0; c < Dv; c++) dp[j]! += dO[at(b, h, t, c, H, T, Dv)]! * v[at(b, g, j, c, Hkv, S, Dv)]!;
          rowDot += p[j]! * dp[j]!;
        }
        for (let j = 0; j < S; j++) {
          const ds = p[j]! * (dp[j]! - rowDot);
          for (let c = 0; c < D; c++) {
            dq[at(b, h, t, c, H, T, D)]! += scale * ds * k[at(b, g, j, c, Hkv, S, D)]!;
            dk[at(b, g, j, c, Hkv, S, D)]! += scale * ds * q[at(b, h, t, c, H, T, D)]!;
          }
          for (let c = 0; c < Dv; c++) dv[at(b, g, j, c, Hkv, S, Dv)]! += p[j]! * dO[at(b, h, t, c, H, T, Dv)]!;
        }
      }
    }
  }
  return { o, lse, dq, dk, dv };
}

/** How q, k, v, dO are laid out; each layout holds the same row-major values. */
type Layout = 'dense' | 'tokens-major' | 'strided' | 'float64';

/** A [B, heads, rows, cols] tensor of row-major `values` in `layout`. */
function operand(values: Float64Array, shape: [number, number, number, number], layout: Layout): Tensor {
  const [b, h, t, c] = shape;
  switch (layout) {
    case 'dense':
      return tensor(values, { shape, dtype: 'float32' });
    case 'tokens-major': {
      // Stored [B, T, H, C] (as a projection produces it), viewed [B, H, T, C].
      const stored = new Float64Array(values.length);
      for (let bi = 0; bi < b; bi++)
        for (let hi = 0; hi < h; hi++)
          for (let ti = 0; ti < t; ti++)
            for (let ci = 0; ci < c; ci++) stored[((bi * t + ti) * h + hi) * c + ci] = values[at(bi, hi, ti, ci, h, t, c)]!;
      return permute(tensor(stored, { shape: [b, t, h, c], dtype: 'float32' }), [0, 2, 1, 3]);
    }
    case 'strided':
      return nonContiguousTensor(values, shape);
    case 'float64':
      return tensor(values, { shape, dtype: 'float64' });
  }
}

const TOL = { rtol: 2e-4, atol: 2e-5 };
let seed = 500;

/** Checks forward and backward of one configuration against the reference in every mode. */
function check(dims: Dims, mask: Mask, layout: Layout = 'dense', scale?: number): void {
  const { b, h, t, d, hkv, s, dv } = dims;
  const qv = randomValues(b * h * t * d, seed++);
  const kv = randomValues(b * hkv * s * d, seed++);
  const vv = randomValues(b * hkv * s * dv, seed++);
  const dov = randomValues(b * h * t * dv, seed++);
  const used = scale ?? (d > 0 ? 1 / Math.sqrt(d) : 1);
  const ref = reference(dims, mask, used, qv, kv, vv, dov);
  const q = operand(qv, [b, h, t, d], layout);
  const k = operand(kv, [b, hkv, s, d], layout);
  const v = operand(vv, [b, hkv, s, dv], layout);
  const dO = operand(dov, [b, h, t, dv], layout);
  const dtype = layout === 'float64' ? 'float64' : 'float32';
  // The saved forward results the backward starts from.
  const o = tensor(ref.o, { shape: [b, h, t, dv], dtype });
  const lse = tensor(ref.lse, { shape: [b, h, t], dtype });
  const options = { causal: mask.causal, window: mask.window, ...(scale === undefined ? {} : { scale }) };
  const where = `dims ${JSON.stringify(dims)} mask ${JSON.stringify(mask)} layout ${layout}`;
  inEveryMode(() => {
    try {
      const [out, outLse] = execute('attention', [q, k, v], [
        { shape: [b, h, t, dv], dtype },
        { shape: [b, h, t], dtype },
      ], { causal: mask.causal, window: mask.window, scale: used });
      expectClose(out!, ref.o, TOL);
      expectClose(outLse!, ref.lse, TOL);
      const [dq, dk, dvOut] = attentionBackward(dO, q, k, v, o, lse, options);
      expectClose(dq, ref.dq, TOL);
      expectClose(dk, ref.dk, TOL);
      expectClose(dvOut, ref.dv, TOL);
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
  });
  for (const x of [q, k, v, dO, o, lse]) x.dispose();
}

const MASKS: Mask[] = [
  { causal: false, window: null },
  { causal: true, window: null },
  { causal: false, window: 3 },
  { causal: true, window: 3 },
  { causal: true, window: 1 },
  { causal: false, window: 100 },
];

describe('attention float32', () => {
  it('every mask combination with T < S, T = S and T > S (queries that see no key)', () => {
    for (const mask of MASKS) {
      for (const [t, s] of [[5, 9], [7, 7], [9, 4]]) check({ b: 2, h: 2, t, d: 5, hkv: 2, s, dv: 3 }, mask);
    }
  });

  it('grouped-query heads, odd and vector-wide head sizes, a custom scale', () => {
    check({ b: 1, h: 4, t: 6, d: 17, hkv: 2, s: 11, dv: 9 }, { causal: true, window: null });
    check({ b: 2, h: 6, t: 5, d: 8, hkv: 1, s: 5, dv: 16 }, { causal: false, window: 2 });
    check({ b: 1, h: 3, t: 4, d: 33, hkv: 3, s: 6, dv: 1 }, { causal: false, window: null }, 'dense', 0.7);
    check({ b: 1, h: 2, t: 3, d: 1, hkv: 1, s: 3, dv: 2 }, { causal: true, window: null }, 'dense', -1.5);
  });

  it('sizes that spread over threads', () => {
    check({ b: 2, h: 4, t: 40, d: 64, hkv: 2, s: 40, dv: 64 }, { causal: true, window: null });
    check({ b: 1, h: 2, t: 37, d: 24, hkv: 2, s: 70, dv: 20 }, { causal: false, window: 30 });
  });

  it('reads head-major views of token-major tensors in place; strided last dims and float64 run the TypeScript kernel', () => {
    for (const layout of ['tokens-major', 'strided', 'float64'] as const) {
      check({ b: 2, h: 4, t: 6, d: 7, hkv: 2, s: 8, dv: 5 }, { causal: true, window: 4 }, layout);
    }
  });

  it('empty sizes: no keys, no queries, zero-width heads', () => {
    check({ b: 1, h: 2, t: 3, d: 4, hkv: 1, s: 0, dv: 4 }, { causal: false, window: null });
    check({ b: 1, h: 2, t: 0, d: 4, hkv: 2, s: 5, dv: 4 }, { causal: true, window: null });
    check({ b: 1, h: 1, t: 3, d: 4, hkv: 1, s: 3, dv: 0 }, { causal: true, window: null });
    check({ b: 0, h: 2, t: 3, d: 4, hkv: 2, s: 3, dv: 4 }, { causal: true, window: null });
  });

  it('through the front end with default options', () => {
    const dims = { b: 1, h: 2, t: 4, d: 6, hkv: 1, s: 4, dv: 6 };
    const qv = randomValues(48, seed++);
    const kv = randomValues(24, seed++);
    const vv = randomValues(24, seed++);
    const ref = reference(dims, { causal: false, window: null }, 1 / Math.sqrt(6), qv, kv, vv, new Float64Array(48));
    const [q, k, v] = [tensor(qv, { shape: [1, 2, 4, 6] }), tensor(kv, { shape: [1, 1, 4, 6] }), tensor(vv, { shape: [1, 1, 4, 6] })];
    inEveryMode(() => expectClose(attention(q, k, v), ref.o, TOL));
  });
});

describe.skipIf(!NATIVE)('native attention kernels', () => {
  it('are registered, and reject arguments that reach outside the storage or inconsistent sizes', () => {
    const info = cpuKernelsInfo();
    expect(info.native && info.ops).toEqual(expect.arrayContaining(['attention', 'attentionBackward']));
    const result = loadAddon();
    if (!result.addon) throw new Error(result.reason);
    const addon = result.addon;
    // B = 1, H = 2, T = 3, D = 4, Hkv = 1, S = 3, Dv = 4; every operand dense.
    const buf = (n: number) => new Float32Array(n);
    const dense = (h: number, t: number, c: number) => [0, h * t * c, t * c, c];
    const geometry = Float64Array.from([...dense(2, 3, 4), ...dense(1, 3, 4), ...dense(1, 3, 4), ...dense(2, 3, 4), ...dense(2, 3, 1)]);
    const dims = Float64Array.of(1, 2, 3, 4, 1, 3, 4);
    const run = (q: Float32Array, g = geometry, d = dims) => addon.attentionF32(q, buf(12), buf(12), buf(24), buf(6), g, d, 0.5, true, 0);
    expect(() => run(buf(24))).not.toThrow();
    expect(() => run(buf(23))).toThrow(/attentionF32: q reaches elements \[0, 23\] outside its storage of 23/);
    expect(() => run(buf(24), geometry, Float64Array.of(1, 3, 3, 4, 2, 3, 4))).toThrow(/query heads \(3\) must be a multiple of the key\/value heads \(2\)/);
    expect(() => run(buf(24), geometry.subarray(0, 19))).toThrow(/geometry must hold 20 numbers/);
    expect(() => run(buf(24), geometry, Float64Array.of(1, 2, 3, 4.5, 1, 3, 4))).toThrow(/dims\[3\] must be an integer/);
    expect(() => addon.attentionF32(buf(24), buf(12), buf(12), buf(24), buf(6), geometry, dims, Number.NaN, true, 0)).toThrow(/scale must be finite/);
    expect(() => addon.attentionBackwardF32(buf(24), buf(24), buf(12), buf(12), buf(24), buf(6), buf(24), buf(12), buf(11),
      Float64Array.from([...geometry.subarray(12, 16), ...geometry.subarray(0, 12), ...geometry.subarray(12, 20), ...geometry.subarray(0, 12)]),
      dims, 0.5, false, 2)).toThrow(/attentionBackwardF32: dv reaches elements \[0, 11\] outside its storage of 11/);
  });
});
