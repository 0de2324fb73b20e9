import { describe, expect, it } from 'vitest';
import {
  expand, logSoftmax, permute, setOpObserver, slice, softmax, tensor, transpose,
  type DType, type OpRecord, type Tensor,
} from '../src/index.js';
import { assertClose, nonContiguousTensor, randomValues, type Tolerance } from '../src/testing.js';

/**
 * Float64 reference with plain loops: the tensor is seen as [outer, n, inner] around `axis`;
 * exp(x) / sum(exp(x)) computed directly (fine for the moderate values it is used on).
 */
function refSoftmax(values: Float64Array, shape: readonly number[], axis: number, log: boolean): Float64Array {
  const n = shape.length === 0 ? 1 : shape[axis]!;
  let outer = 1;
  let inner = 1;
  for (let d = 0; d < axis; d++) outer *= shape[d]!;
  for (let d = axis + 1; d < shape.length; d++) inner *= shape[d]!;
  const out = new Float64Array(values.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += Math.exp(values[(o * n + j) * inner + i]!);
      for (let j = 0; j < n; j++) {
        const k = (o * n + j) * inner + i;
        out[k] = log ? values[k]! - Math.log(s) : Math.exp(values[k]!) / s;
      }
    }
  }
  return out;
}

/** Tensors of `shape` in several layouts; all but 'expanded' hold `values` (row-major). */
function layouts(values: Float64Array, shape: number[], dtype: DType): Array<[string, Tensor]> {
  const out: Array<[string, Tensor]> = [['contiguous', tensor(values, { shape, dtype })]];
  const rank = shape.length;
  if (rank === 0) return out;
  out.push(['strided', nonContiguousTensor(values, shape, dtype)]);
  if (rank >= 2) {
    // Stored with the last two dims swapped, then transposed back.
    const [r, c] = [shape[rank - 2]!, shape[rank - 1]!];
    const swapped = new Float64Array(values.length);
    for (let b = 0; b < values.length / (r * c); b++) {
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) swapped[b * r * c + j * r + i] = values[b * r * c + i * c + j]!;
    }
    out.push(['transposed', transpose(tensor(swapped, { shape: [...shape.slice(0, -2), c, r], dtype }))]);
  }
  // A slice with a non-zero offset out of a larger tensor padded with NaN.
  const block = values.length / Math.max(shape[0]!, 1);
  const padded = new Float64Array(values.length + 2 * block).fill(NaN);
  padded.set(values, block);
  out.push(['offset', slice(tensor(padded, { shape: [shape[0]! + 2, ...shape.slice(1)], dtype }), 0, 1, -1)]);
  // The last dim broadcast from size 1 and the first from size 1.
  const lastOne = [...shape.slice(0, -1), 1];
  out.push(['expanded-last', expand(tensor(randomValues(lastOne.reduce((a, b) => a * b, 1), 77, -3, 3), { shape: lastOne, dtype }), shape)]);
  const firstOne = [1, ...shape.slice(1)];
  out.push(['expanded-first', expand(tensor(randomValues(firstOne.reduce((a, b) => a * b, 1), 78, -3, 3), { shape: firstOne, dtype }), shape)]);
  return out;
}

const tolerances: Partial<Record<DType, Tolerance>> = {
  float64: { rtol: 1e-12, atol: 1e-14 },
  float32: { rtol: 1e-6, atol: 1e-7 },
  float16: { rtol: 1e-3, atol: 1e-6 },
  bfloat16: { rtol: 4e-3, atol: 1e-6 },
};

const ops = [
  { name: 'softmax', run: softmax, log: false },
  { name: 'logSoftmax', run: logSoftmax, log: true },
];

function check(x: Tensor, axis: number | undefined, label: string): void {
  const values = x.toFloat64Array();
  const rank = Math.max(x.rank, 1);
  const ax = axis === undefined ? rank - 1 : axis < 0 ? axis + rank : axis;
  for (const op of ops) {
    const y = axis === undefined ? op.run(x) : op.run(x, axis);
    const where = `${op.name} ${label} ${x.describe()} axis ${axis}`;
    expect(y.shape, where).toEqual(x.shape);
    expect(y.dtype, where).toBe(x.dtype);
    try {
      assertClose(y, refSoftmax(values, x.shape, ax, op.log), tolerances[x.dtype]);
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
  }
}

describe('softmax and logSoftmax', () => {
  it('match the reference along every axis of a rank-3 tensor, in every layout', () => {
    const shape = [3, 5, 7];
    for (const [label, x] of layouts(randomValues(105, 4, -3, 3), shape, 'float32')) {
      for (const axis of [undefined, 0, 1, 2, -1, -2, -3]) check(x, axis, label);
    }
  });

  it('handle ranks 0..4 and size-1 dims', () => {
    const shapes = [[], [1], [6], [1, 5], [4, 1], [2, 1, 3], [2, 3, 1, 4], [3, 2, 2, 5]];
    shapes.forEach((shape, s) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const axes = shape.length === 0 ? [0, -1] : shape.map((_, d) => d);
      for (const [label, x] of layouts(randomValues(n, 30 + s, -3, 3), shape, 'float64')) {
        for (const axis of axes) check(x, axis, label);
      }
    });
    expect(softmax(tensor(2.5)).item()).toBe(1);
    expect(logSoftmax(tensor([[7], [8]]), 1).toArray()).toEqual([[0], [0]]);
  });

  it('support float64, float32, float16 and bfloat16', () => {
    for (const dtype of ['float64', 'float32', 'float16', 'bfloat16'] as DType[]) {
      for (const [label, x] of layouts(randomValues(60, 8, -4, 4), [4, 3, 5], dtype)) {
        for (const axis of [0, 1, -1]) check(x, axis, label);
      }
    }
  });

  it('keep rows summing to 1', () => {
    const x = tensor(randomValues(6 * 33, 12, -10, 10), { shape: [6, 33] });
    for (const axis of [0, 1]) {
      const p = softmax(x, axis).toFloat64Array();
      const sums = new Float64Array(axis === 1 ? 6 : 33);
      for (let i = 0; i < 6; i++) for (let j = 0; j < 33; j++) sums[axis === 1 ? i : j] += p[i * 33 + j]!;
      assertClose(sums, new Float64Array(sums.length).fill(1), { rtol: 1e-6 });
    }
  });

  it('leave empty tensors empty', () => {
    const x = tensor(new Float32Array(0), { shape: [3, 0, 2] });
    for (const axis of [0, 1, 2]) {
      expect(softmax(x, axis).shape).toEqual([3, 0, 2]);
      expect(logSoftmax(x, axis).shape).toEqual([3, 0, 2]);
    }
  });
});

describe('stability', () => {
  it('handles large magnitudes without overflow', () => {
    const e = Math.E;
    const x = tensor([[1000, 1000], [-1000, -999], [1000, -1000], [-Infinity, 3]], { dtype: 'float64' });
    assertClose(softmax(x), [0.5, 0.5, 1 / (1 + e), e / (1 + e), 1, Math.exp(-2000), 0, 1], { rtol: 1e-14, atol: 1e-300 });
    assertClose(logSoftmax(x), [-Math.log(2), -Math.log(2), -Math.log(1 + e), -Math.log(1 + 1 / e), 0, -2000, -Infinity, 0], { rtol: 1e-14, atol: 1e-14 });
    // Along the first axis of a transposed view, in float32.
    // t = [[1000, -1000], [999, -998]]: slices along axis 0 are [1000, 999] and [-1000, -998].
    const t = transpose(tensor([[1000, 999], [-1000, -998]]));
    const e2 = e * e;
    assertClose(softmax(t, 0), [e / (1 + e), 1 / (1 + e2), 1 / (1 + e), e2 / (1 + e2)], { rtol: 1e-6 });
    assertClose(logSoftmax(t, 0), [-Math.log(1 + 1 / e), -Math.log(1 + e2), -Math.log(1 + e), -Math.log(1 + 1 / e2)], { rtol: 1e-6 });
  });

  it('matches a shifted reference on random values in [-1000, 1000]', () => {
    const shape = [4, 3, 6];
    const values = randomValues(72, 21, -1000, 1000);
    for (const dtype of ['float32', 'float64', 'bfloat16'] as DType[]) {
      for (const [label, x] of layouts(values, shape, dtype)) {
        if (label.startsWith('expanded')) continue; // those hold small values
        const v = x.toFloat64Array();
        for (const axis of [0, 1, 2]) {
          // Shift each slice by its max before the plain reference (softmax is shift-invariant).
          const n = shape[axis]!;
          const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
          const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
          const shifted = Float64Array.from(v);
          for (let o = 0; o < outer; o++) {
            for (let i = 0; i < inner; i++) {
              let m = -Infinity;
              for (let j = 0; j < n; j++) m = Math.max(m, v[(o * n + j) * inner + i]!);
              for (let j = 0; j < n; j++) shifted[(o * n + j) * inner + i]! -= m;
            }
          }
          assertClose(softmax(x, axis), refSoftmax(shifted, shape, axis, false), tolerances[dtype]);
          assertClose(logSoftmax(x, axis), refSoftmax(shifted, shape, axis, true), tolerances[dtype]);
        }
      }
    }
  });

  it('gives NaN for a slice of all -Infinity or one holding NaN, like torch', () => {
    const x = tensor([[-Infinity, -Infinity], [NaN, 1], [-Infinity, 0]]);
    expect(softmax(x).toArray()).toEqual([[NaN, NaN], [NaN, NaN], [0, 1]]);
    expect(logSoftmax(x).toArray()).toEqual([[NaN, NaN], [NaN, NaN], [-Infinity, 0]]);
  });
});

describe('op contract and errors', () => {
  it('records the normalized axis', () => {
    const x = tensor(randomValues(6, 1), { shape: [2, 3] });
    const records: OpRecord[] = [];
    const prev = setOpObserver((r) => records.push(r));
    try {
      softmax(x);
      logSoftmax(x, -2);
      softmax(permute(x, [1, 0]), 0);
    } finally {
      setOpObserver(prev);
    }
    const ops = records.filter((r) => r.op !== 'permute').map((r) => [r.op, r.attrs]);
    expect(ops).toEqual([['softmax', { axis: 1 }], ['logSoftmax', { axis: 0 }], ['softmax', { axis: 0 }]]);
    expect(records[0]!.inputs).toEqual([x]);
  });

  it('rejects bad axes, integer inputs and non-tensors', () => {
    const x = tensor([[1, 2], [3, 4]]);
    expect(() => softmax(x, 2)).toThrow('softmax: axis 2 is out of range for float32[2, 2] on cpu (expected an integer in [-2, 1])');
    expect(() => logSoftmax(x, -3)).toThrow(/logSoftmax: axis -3 is out of range/);
    expect(() => softmax(x, 0.5)).toThrow(/softmax: axis 0.5 is out of range/);
    expect(() => softmax(tensor(1), 1)).toThrow(/softmax: axis 1 is out of range for float32\[\] on cpu/);
    const i = tensor([1, 2], { dtype: 'int32' });
    expect(() => softmax(i)).toThrow('softmax: expected a floating-point tensor (float32, float64, float16 or bfloat16), got int32[2] on cpu; cast it first');
    expect(() => logSoftmax(tensor([1], { dtype: 'uint8' }))).toThrow(/logSoftmax: expected a floating-point tensor .* got uint8\[1\]/);
    expect(() => softmax(3 as never)).toThrow(/softmax: expected a tensor, got 3/);
  });
});
