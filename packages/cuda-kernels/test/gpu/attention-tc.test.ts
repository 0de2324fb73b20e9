// The tensor-core attention kernels (bfloat16 / float16, head dims 64 and 128), forced through
// setAttentionPath('tensorcore'): o, lse, dq, dk, dv against a float64 plain-loop reference on
// seeded inputs, with causal and sliding-window masks, grouped heads (group 4), odd sequence
// lengths (1 to 257, T != S), batch 2, strided views that still take the tensor cores
// ([B, T, H, D] permuted to [B, H, T, D], padded rows) and views that must fall back to the SIMT
// kernels (transposed, unaligned, rows not a multiple of 8 elements), and run-to-run bitwise
// equality of the backward.
//
// Tolerances (|x - ref| <= atol + rtol |ref|, ref rounded once to the output dtype): the kernels
// round P and dS to the input dtype before their second product (as FlashAttention does) and
// accumulate in float32, so bfloat16 gets rtol 2e-2 / atol 1e-2 on o and 2e-2 / 2e-2 on the
// gradients, float16 4e-3 / 2e-3 and 4e-3 / 4e-3; lse (float32, from float32 scores) gets
// rtol 1e-4 / atol 1e-4.
import { execute, narrow, permute, reshape, statsDTypeOf, tensor, tidy, type DType, type Tensor } from '@blora/tensor';
import { assertClose, type Tolerance } from '@blora/tensor/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { tensorArg } from '../../src/descriptor.js';
import { native } from '../../src/native.js';
import { makeTensor, roundTo, sizeOf, valuesFor } from './helpers.js';

interface Problem {
  b: number;
  h: number;
  hkv: number;
  t: number;
  s: number;
  d: number;
  causal: boolean;
  window: number | null;
  scale: number;
}

/**
 * How an input [B, heads, rows, D] is stored: dense; 'heads': [B, rows, heads, D] permuted;
 * 'padded': rows of D + 8 elements; the fallbacks: 'transposed' (last two dims swapped),
 * 'unaligned' (first element one past a 16-byte boundary), 'oddRows' (rows of D + 4 elements).
 */
type Layout = 'contiguous' | 'heads' | 'padded' | 'transposed' | 'unaligned' | 'oddRows';

function make(values: Float64Array, shape: number[], dtype: DType, layout: Layout): Tensor {
  const [b, h, t, d] = shape as [number, number, number, number];
  if (layout === 'contiguous' || layout === 'transposed') return makeTensor(values, shape, dtype, 'cuda', layout);
  return tidy(() => {
    if (layout === 'heads') {
      const physical = new Float64Array(values.length);
      for (let i = 0; i < b; i++) for (let j = 0; j < h; j++) for (let p = 0; p < t; p++) for (let c = 0; c < d; c++) {
        physical[((i * t + p) * h + j) * d + c] = values[((i * h + j) * t + p) * d + c]!;
      }
      return permute(tensor(physical, { shape: [b, t, h, d], dtype, device: 'cuda' }), [0, 2, 1, 3]);
    }
    if (layout === 'unaligned') {
      const flat = new Float64Array(values.length + 1);
      flat.set(values, 1);
      return reshape(narrow(tensor(flat, { dtype, device: 'cuda' }), 0, 1, values.length), shape);
    }
    const width = d + (layout === 'padded' ? 8 : 4);
    const wide = new Float64Array(b * h * t * width).fill(NaN);
    for (let r = 0; r < b * h * t; r++) for (let c = 0; c < d; c++) wide[r * width + c] = values[r * d + c]!;
    return narrow(tensor(wide, { shape: [b, h, t, width], dtype, device: 'cuda' }), 3, 0, d);
  });
}

/** Keys [lo, hi) visible to query t (the mask is aligned to the end). */
function keyRange(p: Problem, t: number): [number, number] {
  const last = t + p.s - p.t;
  const hi = p.causal ? Math.min(p.s, last + 1) : p.s;
  const lo = p.window === null ? 0 : Math.max(0, last - p.window + 1);
  return [lo, hi];
}

/** Float64 forward and backward: [o, lse, dq, dk, dv]. */
function reference(p: Problem, q: Float64Array, k: Float64Array, v: Float64Array, dO: Float64Array): Float64Array[] {
  const { d } = p;
  const o = new Float64Array(p.b * p.h * p.t * d);
  const lse = new Float64Array(p.b * p.h * p.t).fill(-Infinity);
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  const group = p.h / p.hkv;
  for (let bi = 0; bi < p.b; bi++) for (let hi = 0; hi < p.h; hi++) {
    const kv = bi * p.hkv + Math.floor(hi / group);
    for (let ti = 0; ti < p.t; ti++) {
      const row = (bi * p.h + hi) * p.t + ti;
      const [lo, end] = keyRange(p, ti);
      if (lo >= end) continue;
      const probs = new Float64Array(end - lo);
      let max = -Infinity;
      for (let si = lo; si < end; si++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[row * d + c]! * k[(kv * p.s + si) * d + c]!;
        probs[si - lo] = dot * p.scale;
        max = Math.max(max, dot * p.scale);
      }
      let sum = 0;
      for (let i = 0; i < probs.length; i++) sum += Math.exp(probs[i]! - max);
      for (let i = 0; i < probs.length; i++) probs[i] = Math.exp(probs[i]! - max) / sum;
      lse[row] = max + Math.log(sum);
      for (let i = 0; i < probs.length; i++) {
        for (let c = 0; c < d; c++) o[row * d + c]! += probs[i]! * v[(kv * p.s + lo + i) * d + c]!;
      }
      let delta = 0;
      for (let c = 0; c < d; c++) delta += dO[row * d + c]! * o[row * d + c]!;
      for (let i = 0; i < probs.length; i++) {
        const key = kv * p.s + lo + i;
        let dp = 0;
        for (let c = 0; c < d; c++) {
          dp += dO[row * d + c]! * v[key * d + c]!;
          dv[key * d + c]! += probs[i]! * dO[row * d + c]!;
        }
        const ds = probs[i]! * (dp - delta) * p.scale;
        for (let c = 0; c < d; c++) {
          dq[row * d + c]! += ds * k[key * d + c]!;
          dk[key * d + c]! += ds * q[row * d + c]!;
        }
      }
    }
  }
  return [o, lse, dq, dk, dv];
}

function tolerances(dtype: DType): Tolerance[] {
  const stats = { rtol: 1e-4, atol: 1e-4 };
  if (dtype === 'bfloat16') return [{ rtol: 2e-2, atol: 1e-2 }, stats, ...new Array<Tolerance>(3).fill({ rtol: 2e-2, atol: 2e-2 })];
  return [{ rtol: 4e-3, atol: 2e-3 }, stats, ...new Array<Tolerance>(3).fill({ rtol: 4e-3, atol: 4e-3 })];
}

interface Run {
  outputs: Float64Array[];
  kernels: [string, string];
}

/** Runs attention and attentionBackward on cuda (the backward from the reference's o and lse). */
function run(p: Problem, dtype: DType, layouts: [Layout, Layout, Layout, Layout], values: Float64Array[],
  saved: [Float64Array, Float64Array]): Run {
  const shapes = [[p.b, p.h, p.t, p.d], [p.b, p.hkv, p.s, p.d], [p.b, p.hkv, p.s, p.d], [p.b, p.h, p.t, p.d]];
  const [q, k, v, dO] = values.map((x, i) => make(x, shapes[i]!, dtype, layouts[i]!)) as [Tensor, Tensor, Tensor, Tensor];
  const kernels: [string, string] = [
    native().attentionKernel(tensorArg(q), tensorArg(k), tensorArg(v), null),
    native().attentionKernel(tensorArg(q), tensorArg(k), tensorArg(v), tensorArg(dO)),
  ];
  const stats = statsDTypeOf(dtype);
  const attrs = { causal: p.causal, window: p.window, scale: p.scale };
  const [o, lse] = execute('attention', [q, k, v], [{ shape: shapes[0]!, dtype }, { shape: [p.b, p.h, p.t], dtype: stats }], attrs);
  const oSaved = tensor(saved[0], { shape: shapes[0]!, dtype, device: 'cuda' });
  const lseSaved = tensor(saved[1], { shape: [p.b, p.h, p.t], dtype: stats, device: 'cuda' });
  const grads = execute('attentionBackward', [dO, q, k, v, oSaved, lseSaved],
    [{ shape: q.shape, dtype }, { shape: k.shape, dtype }, { shape: v.shape, dtype }], attrs);
  const outputs = [o!, lse!, ...grads].map((x) => x.toFloat64Array());
  for (const x of [q, k, v, dO, o!, lse!, oSaved, lseSaved, ...grads]) x.dispose();
  return { outputs, kernels };
}

/** Checks one problem against the reference; returns the run for further checks. */
function check(p: Problem, dtype: DType, layouts: [Layout, Layout, Layout, Layout] = ['contiguous', 'contiguous', 'contiguous', 'contiguous'],
  expectedKernel = 'tensorcore', seed = 7): Run {
  const shapes = [[p.b, p.h, p.t, p.d], [p.b, p.hkv, p.s, p.d], [p.b, p.hkv, p.s, p.d], [p.b, p.h, p.t, p.d]];
  const values = shapes.map((s, i) => roundTo(valuesFor(dtype, sizeOf(s), seed * 10 + i, -1.5, 1.5), dtype));
  const expected = reference(p, values[0]!, values[1]!, values[2]!, values[3]!);
  const stats = statsDTypeOf(dtype);
  const saved: [Float64Array, Float64Array] = [roundTo(expected[0]!, dtype), roundTo(expected[1]!, stats)];
  const result = run(p, dtype, layouts, values, saved);
  expect(result.kernels).toEqual([expectedKernel, expectedKernel]);
  const tols = tolerances(dtype);
  const names = ['o', 'lse', 'dq', 'dk', 'dv'];
  result.outputs.forEach((actual, i) => {
    const want = roundTo(expected[i]!, i === 1 ? stats : dtype);
    try {
      assertClose(actual, want, tols[i]!);
    } catch (e) {
      throw new Error(`${names[i]} of ${JSON.stringify(p)} ${dtype} ${layouts.join('/')}: ${(e as Error).message}`);
    }
  });
  return result;
}

const HALF: readonly DType[] = ['bfloat16', 'float16'];

describe.skipIf(!cudaAvailable())('attention on tensor cores', () => {
  let previous: 'auto' | 'tensorcore' | 'simt' = 'auto';
  beforeAll(() => {
    previous = native().setAttentionPath('tensorcore');
  });
  afterAll(() => {
    native().setAttentionPath(previous);
  });

  it('head dims 64 and 128, causal or not, grouped heads (group 4), odd lengths, batch 2', () => {
    for (const dtype of HALF) {
      for (const d of [64, 128]) {
        for (const causal of [false, true]) {
          check({ b: 2, h: 4, hkv: 1, t: 100, s: 100, d, causal, window: null, scale: 1 / Math.sqrt(d) }, dtype);
        }
      }
    }
  });

  it('sequence lengths 1, 17, 129 and 257, fewer queries than keys and more, sliding windows', () => {
    for (const dtype of HALF) {
      check({ b: 2, h: 4, hkv: 1, t: 1, s: 1, d: 64, causal: true, window: null, scale: 0.125 }, dtype);
      check({ b: 2, h: 4, hkv: 1, t: 17, s: 17, d: 128, causal: false, window: null, scale: 0.09 }, dtype);
      check({ b: 1, h: 8, hkv: 2, t: 257, s: 257, d: 64, causal: true, window: null, scale: 0.125 }, dtype);
      check({ b: 1, h: 4, hkv: 1, t: 129, s: 257, d: 64, causal: true, window: 70, scale: 0.125 }, dtype);
      check({ b: 2, h: 4, hkv: 2, t: 129, s: 129, d: 128, causal: false, window: 40, scale: 0.1 }, dtype);
      // More queries than keys: the first T - S queries see nothing (o = 0, lse = -Infinity).
      check({ b: 1, h: 4, hkv: 1, t: 100, s: 17, d: 64, causal: true, window: null, scale: 0.125 }, dtype);
    }
  });

  it('strided views that still take the tensor cores', () => {
    for (const dtype of HALF) {
      const p: Problem = { b: 2, h: 4, hkv: 1, t: 70, s: 70, d: 64, causal: true, window: null, scale: 0.125 };
      check(p, dtype, ['heads', 'heads', 'heads', 'heads']);
      check({ ...p, d: 128, hkv: 2, window: 33 }, dtype, ['padded', 'contiguous', 'padded', 'heads']);
    }
  });

  it('falls back to the SIMT kernels for views the copy engine cannot read', () => {
    const p: Problem = { b: 2, h: 4, hkv: 1, t: 33, s: 33, d: 64, causal: true, window: null, scale: 0.125 };
    check(p, 'bfloat16', ['contiguous', 'transposed', 'contiguous', 'contiguous'], 'simt');
    check(p, 'bfloat16', ['unaligned', 'contiguous', 'contiguous', 'contiguous'], 'simt');
    check(p, 'float16', ['contiguous', 'contiguous', 'oddRows', 'contiguous'], 'simt');
    // dO alone decides only the backward.
    const shapes = [[2, 4, 33, 64], [2, 1, 33, 64], [2, 1, 33, 64], [2, 4, 33, 64]];
    const [q, k, v, dO] = shapes.map((s, i) => make(new Float64Array(sizeOf(s)), s, 'bfloat16', i === 3 ? 'transposed' : 'contiguous'));
    expect(native().attentionKernel(tensorArg(q!), tensorArg(k!), tensorArg(v!), null)).toBe('tensorcore');
    expect(native().attentionKernel(tensorArg(q!), tensorArg(k!), tensorArg(v!), tensorArg(dO!))).toBe('simt');
    // Other head dims and dtypes keep the SIMT kernels.
    const f32 = makeTensor(new Float64Array(2 * 64), [1, 1, 2, 64], 'float32', 'cuda', 'contiguous');
    const d96 = makeTensor(new Float64Array(2 * 96), [1, 1, 2, 96], 'bfloat16', 'cuda', 'contiguous');
    expect(native().attentionKernel(tensorArg(f32), tensorArg(f32), tensorArg(f32), null)).toBe('simt');
    expect(native().attentionKernel(tensorArg(d96), tensorArg(d96), tensorArg(d96), null)).toBe('simt');
    for (const x of [q!, k!, v!, dO!, f32, d96]) x.dispose();
  });

  it('gives bitwise identical gradients run to run', () => {
    const p: Problem = { b: 2, h: 8, hkv: 2, t: 150, s: 150, d: 64, causal: true, window: null, scale: 0.125 };
    const first = check(p, 'bfloat16');
    const second = check(p, 'bfloat16');
    first.outputs.forEach((x, i) => expect(Array.from(second.outputs[i]!)).toEqual(Array.from(x)));
  });

  it('simt and auto paths: the setting switches kernels, bad names throw', () => {
    const shape = [1, 4, 5, 64];
    const q = makeTensor(new Float64Array(sizeOf(shape)), shape, 'bfloat16', 'cuda', 'contiguous');
    expect(native().setAttentionPath('simt')).toBe('tensorcore');
    expect(native().attentionKernel(tensorArg(q), tensorArg(q), tensorArg(q), null)).toBe('simt');
    expect(native().setAttentionPath('auto')).toBe('simt');
    expect(native().attentionKernel(tensorArg(q), tensorArg(q), tensorArg(q), null)).toBe('tensorcore');
    expect(() => native().setAttentionPath('fast' as 'auto')).toThrow(/must be 'auto', 'tensorcore' or 'simt', got 'fast'/);
    native().setAttentionPath('tensorcore');
    q.dispose();
  });
});
