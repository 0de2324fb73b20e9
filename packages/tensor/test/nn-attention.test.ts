import { describe, expect, it } from 'vitest';
import { attention, attentionBackward, expand, permute, tensor, type AttentionOptions, type DType, type Tensor } from '../src/index.js';
import { assertClose, nonContiguousTensor, randomValues } from '../src/testing.js';
import { buildTensor, dotProduct, lastRecord, numericGradient, recordOps, toleranceFor } from './nn-fixtures.js';

interface Dims { b: number; h: number; hkv: number; t: number; s: number; d: number; dv: number }

/** Whether query t may see key s: the causal mask and the window are aligned to the end. */
function visible(t: number, s: number, dims: Dims, options: AttentionOptions): boolean {
  const aligned = t + dims.s - dims.t;
  if (options.causal && s > aligned) return false;
  if (options.window != null && s <= aligned - options.window) return false;
  return true;
}

/** Float64 reference: full score rows, masked softmax, weighted sum; zeros for rows that see nothing. */
function referenceAttention(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dims: Dims, options: AttentionOptions) {
  const { b, h, hkv, t, s, d, dv } = dims;
  const scale = options.scale ?? 1 / Math.sqrt(d);
  const o = new Float64Array(b * h * t * dv);
  const lse = new Float64Array(b * h * t).fill(-Infinity);
  for (let bi = 0; bi < b; bi++) for (let hi = 0; hi < h; hi++) for (let ti = 0; ti < t; ti++) {
    const g = Math.floor(hi / (h / hkv));
    const scores: number[] = [];
    const keys: number[] = [];
    for (let si = 0; si < s; si++) {
      if (!visible(ti, si, dims, options)) continue;
      let dot = 0;
      for (let c = 0; c < d; c++) dot += q[((bi * h + hi) * t + ti) * d + c]! * k[((bi * hkv + g) * s + si) * d + c]!;
      scores.push(dot * scale);
      keys.push(si);
    }
    if (keys.length === 0) continue;
    const max = Math.max(...scores);
    const weights = scores.map((x) => Math.exp(x - max));
    const total = weights.reduce((a, w) => a + w, 0);
    const row = (bi * h + hi) * t + ti;
    lse[row] = max + Math.log(total);
    keys.forEach((si, j) => {
      for (let c = 0; c < dv; c++) o[row * dv + c]! += (weights[j]! / total) * v[((bi * hkv + g) * s + si) * dv + c]!;
    });
  }
  return { o, lse };
}

/** [B, H, T, D] values as the permuted view of a contiguous [B, T, H, D] tensor (how projections produce q). */
function headsView(values: ArrayLike<number>, [b, h, t, d]: number[], dtype: DType): Tensor {
  const bthd = new Float64Array(values.length);
  for (let bi = 0; bi < b!; bi++) for (let hi = 0; hi < h!; hi++) for (let ti = 0; ti < t!; ti++) for (let c = 0; c < d!; c++) {
    bthd[((bi * t! + ti) * h! + hi) * d! + c] = values[((bi * h! + hi) * t! + ti) * d! + c]!;
  }
  return permute(tensor(bthd, { shape: [b!, t!, h!, d!], dtype }), [0, 2, 1, 3]);
}

type QkvLayout = 'contiguous' | 'mixed';

/** q, k, v holding the given values; 'mixed' makes q a permuted view, k strided and v transposed. */
function buildQkv(values: { q: ArrayLike<number>; k: ArrayLike<number>; v: ArrayLike<number> }, dims: Dims, dtype: DType, layout: QkvLayout) {
  const { b, h, hkv, t, s, d, dv } = dims;
  if (layout === 'contiguous') {
    return {
      q: buildTensor(values.q, [b, h, t, d], dtype, 'contiguous'),
      k: buildTensor(values.k, [b, hkv, s, d], dtype, 'contiguous'),
      v: buildTensor(values.v, [b, hkv, s, dv], dtype, 'contiguous'),
    };
  }
  return {
    q: headsView(values.q, [b, h, t, d], dtype),
    k: nonContiguousTensor(values.k, [b, hkv, s, d], dtype),
    v: buildTensor(values.v, [b, hkv, s, dv], dtype, 'transposed'),
  };
}

function randomQkv(dims: Dims, seed: number) {
  const { b, h, hkv, t, s, d, dv } = dims;
  return {
    q: randomValues(b * h * t * d, seed, -1.5, 1.5),
    k: randomValues(b * hkv * s * d, seed + 1, -1.5, 1.5),
    v: randomValues(b * hkv * s * dv, seed + 2),
  };
}

function runAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions) {
  const { result, records } = recordOps(() => attention(q, k, v, options));
  const record = lastRecord(records, 'attention');
  expect(record.inputs).toEqual(options.keyLength ? [q, k, v, options.keyLength] : [q, k, v]);
  expect(record.outputs[0]).toBe(result);
  expect(record.attrs).toEqual({ causal: options.causal ?? false, window: options.window ?? null, scale: options.scale ?? 1 / Math.sqrt(q.shape[3]!) });
  return { o: result, lse: record.outputs[1]! };
}

const CASES: { name: string; dims: Dims; options: AttentionOptions }[] = [
  { name: 'no mask, T != S, GQA', dims: { b: 2, h: 6, hkv: 2, t: 7, s: 9, d: 12, dv: 5 }, options: {} },
  { name: 'causal, T = S, MHA', dims: { b: 1, h: 3, hkv: 3, t: 7, s: 7, d: 12, dv: 12 }, options: { causal: true } },
  { name: 'causal with a KV cache (S > T), MQA', dims: { b: 2, h: 6, hkv: 1, t: 3, s: 10, d: 8, dv: 7 }, options: { causal: true } },
  { name: 'causal with T > S (first rows see nothing)', dims: { b: 1, h: 6, hkv: 2, t: 9, s: 5, d: 4, dv: 3 }, options: { causal: true } },
  { name: 'causal sliding window', dims: { b: 2, h: 6, hkv: 2, t: 7, s: 7, d: 12, dv: 12 }, options: { causal: true, window: 3 } },
  { name: 'causal window with a KV cache', dims: { b: 1, h: 4, hkv: 2, t: 5, s: 11, d: 6, dv: 6 }, options: { causal: true, window: 4 } },
  { name: 'window without causal, custom scale', dims: { b: 1, h: 6, hkv: 3, t: 7, s: 9, d: 12, dv: 5 }, options: { window: 4, scale: 0.45 } },
];

describe('attention forward', () => {
  for (const { name, dims, options } of CASES) {
    for (const dtype of ['float64', 'float32'] as const) {
      for (const layout of ['contiguous', 'mixed'] as const) {
        it(`matches the float64 reference: ${name} (${dtype}, ${layout})`, () => {
          const values = randomQkv(dims, 71);
          const { q, k, v } = buildQkv(values, dims, dtype, layout);
          const { o, lse } = runAttention(q, k, v, options);
          expect(o.shape).toEqual([dims.b, dims.h, dims.t, dims.dv]);
          expect(o.dtype).toBe(dtype);
          expect(lse.shape).toEqual([dims.b, dims.h, dims.t]);
          expect(lse.dtype).toBe(dtype);
          const ref = referenceAttention(values.q, values.k, values.v, dims, options);
          assertClose(o, ref.o, toleranceFor(dtype));
          assertClose(lse, ref.lse, toleranceFor(dtype));
        });
      }
    }
  }

  for (const dtype of ['float16', 'bfloat16'] as const) {
    it(`works in ${dtype} within its precision (lse in float32)`, () => {
      const { dims, options } = CASES[4]!;
      const { q, k, v } = buildQkv(randomQkv(dims, 72), dims, dtype, 'mixed');
      const { o, lse } = runAttention(q, k, v, options);
      expect(o.dtype).toBe(dtype);
      expect(lse.dtype).toBe('float32');
      const ref = referenceAttention(q.toFloat64Array(), k.toFloat64Array(), v.toFloat64Array(), dims, options);
      assertClose(o, ref.o, toleranceFor(dtype));
      assertClose(lse, ref.lse, toleranceFor(dtype));
    });
  }

  it('with keyLength, attends only the leading keys of larger buffers (the mask aligned to them), clamped to S', () => {
    const full: Dims = { b: 2, h: 4, hkv: 2, t: 3, s: 9, d: 5, dv: 6 };
    const values = randomQkv(full, 73);
    // The first `live` keys (and values) of every head, as the reference takes them.
    const leading = (x: ArrayLike<number>, width: number, live: number) => {
      const out: number[] = [];
      for (let head = 0; head < full.b * full.hkv; head++) for (let si = 0; si < live; si++) {
        for (let c = 0; c < width; c++) out.push(x[(head * full.s + si) * width + c]!);
      }
      return out;
    };
    for (const options of [{ causal: true }, { causal: true, window: 2 }, {}] as AttentionOptions[]) {
      for (const [given, live] of [[0, 0], [1, 1], [4, 4], [9, 9], [12, 9], [-3, 0]]) {
        const { q, k, v } = buildQkv(values, full, 'float64', 'mixed');
        const keyLength = tensor([given!], { dtype: 'int32' });
        const { o, lse } = runAttention(q, k, v, { ...options, keyLength });
        const dims = { ...full, s: live! };
        const ref = referenceAttention(values.q, leading(values.k, full.d, live!), leading(values.v, full.dv, live!), dims, options);
        assertClose(o, ref.o, toleranceFor('float64'));
        assertClose(lse, ref.lse, toleranceFor('float64'));
      }
    }
    const { q, k, v } = buildQkv(values, full, 'float64', 'contiguous');
    expect(() => attention(q, k, v, { keyLength: tensor([1, 2], { dtype: 'int32' }) })).toThrow(/keyLength must be an int32 tensor of one element/);
    expect(() => attention(q, k, v, { keyLength: tensor([1]) })).toThrow(/keyLength must be an int32 tensor/);
    q.requiresGrad = true;
    expect(() => attention(q, k, v, { keyLength: tensor([1], { dtype: 'int32' }) })).toThrow(/keyLength is for inference/);
  });

  it('reads keys and values broadcast over the batch (stride-0 views)', () => {
    const dims: Dims = { b: 3, h: 4, hkv: 2, t: 5, s: 6, d: 4, dv: 3 };
    const kOne = randomValues(2 * 6 * 4, 74);
    const vOne = randomValues(2 * 6 * 3, 75);
    const k = expand(tensor(kOne, { shape: [1, 2, 6, 4], dtype: 'float64' }), [3, 2, 6, 4]);
    const v = expand(tensor(vOne, { shape: [1, 2, 6, 3], dtype: 'float64' }), [3, 2, 6, 3]);
    const qValues = randomValues(3 * 4 * 5 * 4, 76);
    const q = tensor(qValues, { shape: [3, 4, 5, 4], dtype: 'float64' });
    const { o } = runAttention(q, k, v, { causal: true });
    const ref = referenceAttention(qValues, k.toFloat64Array(), v.toFloat64Array(), dims, { causal: true });
    assertClose(o, ref.o, toleranceFor('float64'));
  });

  it('handles empty and size-1 dims', () => {
    const make = (shape: number[]) => tensor(randomValues(shape.reduce((a, x) => a * x, 1), 73), { shape });
    const noKeys = runAttention(make([1, 2, 3, 4]), make([1, 2, 0, 4]), make([1, 2, 0, 5]), {});
    expect(noKeys.o.shape).toEqual([1, 2, 3, 5]);
    expect(Array.from(noKeys.o.toFloat64Array()).every((x) => x === 0)).toBe(true);
    expect(Array.from(noKeys.lse.toFloat64Array()).every((x) => x === -Infinity)).toBe(true);
    expect(runAttention(make([1, 2, 0, 4]), make([1, 1, 3, 4]), make([1, 1, 3, 5]), { causal: true }).o.shape).toEqual([1, 2, 0, 5]);
    expect(runAttention(make([0, 2, 3, 4]), make([0, 1, 3, 4]), make([0, 1, 3, 5]), {}).o.shape).toEqual([0, 2, 3, 5]);
    // A single key: the output is that key's value whatever the scores.
    const single = runAttention(make([1, 1, 1, 4]), make([1, 1, 1, 4]), tensor([[[[0.5, -2]]]]), {});
    assertClose(single.o, [0.5, -2]);
  });

  it('rejects bad inputs with messages naming the problem', () => {
    const q = tensor(new Float32Array(2 * 6 * 7 * 12), { shape: [2, 6, 7, 12] });
    const k = tensor(new Float32Array(2 * 4 * 9 * 12), { shape: [2, 4, 9, 12] });
    const v = tensor(new Float32Array(2 * 4 * 9 * 5), { shape: [2, 4, 9, 5] });
    expect(() => attention(q, k, v)).toThrow(/attention: the number of query heads \(6\) must be a multiple of the number of key\/value heads \(4\)/);
    const k2 = tensor(new Float32Array(2 * 2 * 9 * 10), { shape: [2, 2, 9, 10] });
    expect(() => attention(q, k2, v)).toThrow(/attention: k must have shape \[2, Hkv, S, 12\] to match q float32\[2, 6, 7, 12\] on cpu, got float32\[2, 2, 9, 10\]/);
    const k3 = tensor(new Float32Array(2 * 2 * 9 * 12), { shape: [2, 2, 9, 12] });
    const v3 = tensor(new Float32Array(2 * 2 * 8 * 5), { shape: [2, 2, 8, 5] });
    expect(() => attention(q, k3, v3)).toThrow(/attention: v must have shape \[2, 2, 9, Dv\]/);
    expect(() => attention(tensor(new Float32Array(12), { shape: [1, 12] }), k3, v3)).toThrow(/attention: q must have rank 4, got float32\[1, 12\]/);
    const v4 = tensor(new Float64Array(2 * 2 * 9 * 5), { shape: [2, 2, 9, 5], dtype: 'float64' });
    expect(() => attention(q, k3, v4)).toThrow(/attention: v must be float32, got float64/);
    const good = tensor(new Float32Array(2 * 2 * 9 * 5), { shape: [2, 2, 9, 5] });
    expect(() => attention(q, k3, good, { window: 0 })).toThrow(/attention: window must be a positive integer or null, got 0/);
    expect(() => attention(q, k3, good, { scale: Number.POSITIVE_INFINITY })).toThrow(/attention: scale must be a finite number/);
    const { o, lse } = runAttention(q, k3, good, {});
    expect(() => attentionBackward(o, q, k3, good, o, tensor(new Float32Array(2), { shape: [2] }))).toThrow(/attentionBackward: lse must have shape \[2, 6, 7\], got float32\[2\]/);
    expect(() => attentionBackward(q, q, k3, good, o, lse)).toThrow(/attentionBackward: dO must have shape \[2, 6, 7, 5\]/);
  });
});

describe('attention backward', () => {
  const BACKWARD_CASES: { name: string; dims: Dims; options: AttentionOptions }[] = [
    { name: 'no mask, T != S, GQA', dims: { b: 1, h: 6, hkv: 2, t: 5, s: 7, d: 4, dv: 3 }, options: {} },
    { name: 'causal with T > S', dims: { b: 2, h: 2, hkv: 1, t: 5, s: 3, d: 3, dv: 2 }, options: { causal: true } },
    { name: 'causal window with a KV cache', dims: { b: 1, h: 4, hkv: 2, t: 4, s: 7, d: 5, dv: 3 }, options: { causal: true, window: 3, scale: 0.8 } },
  ];
  for (const { name, dims, options } of BACKWARD_CASES) {
    const values = randomQkv(dims, 81);
    const dO = randomValues(dims.b * dims.h * dims.t * dims.dv, 84);
    // Finite differences of L = sum(dO * o) in float64 for each input.
    const loss = (q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>) => dotProduct(dO, referenceAttention(q, k, v, dims, options).o);
    const expected = {
      q: numericGradient((x) => loss(x, values.k, values.v), values.q),
      k: numericGradient((x) => loss(values.q, x, values.v), values.k),
      v: numericGradient((x) => loss(values.q, values.k, x), values.v),
    };
    for (const dtype of ['float64', 'float32'] as const) {
      for (const layout of ['contiguous', 'mixed'] as const) {
        it(`matches finite differences: ${name} (${dtype}, ${layout})`, () => {
          const { q, k, v } = buildQkv(values, dims, dtype, layout);
          const { o, lse } = runAttention(q, k, v, options);
          const gradOut = layout === 'mixed' ? headsView(dO, [dims.b, dims.h, dims.t, dims.dv], dtype) : tensor(dO, { shape: o.shape, dtype });
          const { result: [dq, dk, dv], records } = recordOps(() => attentionBackward(gradOut, q, k, v, o, lse, options));
          const record = lastRecord(records, 'attentionBackward');
          expect(record.inputs).toEqual([gradOut, q, k, v, o, lse]);
          expect(dq.shape).toEqual(q.shape);
          expect(dk.shape).toEqual(k.shape);
          expect(dv.shape).toEqual(v.shape);
          const tol = dtype === 'float64' ? { rtol: 1e-6, atol: 1e-8 } : { rtol: 1e-3, atol: 1e-5 };
          assertClose(dq, expected.q, tol);
          assertClose(dk, expected.k, tol);
          assertClose(dv, expected.v, tol);
        });
      }
    }
  }

  it('works in bfloat16 within its precision', () => {
    const { dims, options } = BACKWARD_CASES[0]!;
    const { q, k, v } = buildQkv(randomQkv(dims, 91), dims, 'bfloat16', 'mixed');
    const { o, lse } = runAttention(q, k, v, options);
    const dO = tensor(randomValues(o.numel, 92), { shape: o.shape, dtype: 'bfloat16' });
    const [dq, dk, dv] = attentionBackward(dO, q, k, v, o, lse, options);
    const [qr, kr, vr, dOr] = [q, k, v, dO].map((t) => t.toFloat64Array()) as [Float64Array, Float64Array, Float64Array, Float64Array];
    const loss = (a: ArrayLike<number>, b: ArrayLike<number>, c: ArrayLike<number>) => dotProduct(dOr, referenceAttention(a, b, c, dims, options).o);
    assertClose(dq, numericGradient((x) => loss(x, kr, vr), qr), toleranceFor('bfloat16'));
    assertClose(dk, numericGradient((x) => loss(qr, x, vr), kr), toleranceFor('bfloat16'));
    assertClose(dv, numericGradient((x) => loss(qr, kr, x), vr), toleranceFor('bfloat16'));
  });
});
