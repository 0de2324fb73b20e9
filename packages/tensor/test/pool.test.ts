import { describe, expect, it } from 'vitest';
import { avgPool1d, avgPool1dBackward, bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits, div, expand, sumRuns, permute, repeatInterleave, setOpObserver, slice, tensor, transpose, type DType, type OpRecord, type Tensor } from '../src/index.js';
import { assertClose, randomTensor } from '../src/testing.js';

function refAvgPool(x: Tensor, kernel: number): Float64Array {
  const v = x.toFloat64Array();
  const out = new Float64Array(v.length / kernel);
  for (let o = 0; o < out.length; o++) {
    let s = 0;
    for (let j = 0; j < kernel; j++) s += v[o * kernel + j]!;
    out[o] = s / kernel;
  }
  return out;
}

function refRepeatInterleave(x: Tensor, repeats: number, axis: number): Float64Array {
  const v = x.toFloat64Array();
  const outer = x.shape.slice(0, axis).reduce((p, d) => p * d, 1);
  const size = x.shape[axis]!;
  const inner = x.shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const out = new Float64Array(v.length * repeats);
  for (let o = 0; o < outer; o++) {
    for (let a = 0; a < size * repeats; a++) {
      const from = Math.floor(a / repeats);
      for (let i = 0; i < inner; i++) out[(o * size * repeats + a) * inner + i] = v[(o * size + from) * inner + i]!;
    }
  }
  return out;
}

/** `v` rounded to nearest even in `dtype`. */
function roundTo(v: number, dtype: DType): number {
  if (dtype === 'float32') return Math.fround(v);
  if (dtype === 'bfloat16') return bfloat16BitsToFloat32(float32ToBfloat16Bits(v));
  if (dtype === 'float16') return float16BitsToFloat32(float32ToFloat16Bits(v));
  return v;
}

const tol: Record<string, { rtol: number; atol: number }> = {
  float32: { rtol: 1e-6, atol: 1e-6 },
  float64: { rtol: 1e-14, atol: 1e-14 },
  bfloat16: { rtol: 8e-3, atol: 1e-2 },
  float16: { rtol: 1e-3, atol: 1e-3 },
};

let seed = 500;
const rand = (shape: number[], dtype: DType = 'float32', nonContiguous = false) =>
  randomTensor(shape, { seed: seed++, dtype, nonContiguous, low: -3, high: 3 });

describe('avgPool1d', () => {
  it('averages runs of the last dim for every float dtype and layout', () => {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'float16'] as const) {
      const cases: [Tensor, number][] = [
        [rand([3, 12], dtype), 4],
        [rand([2, 3, 6], dtype, true), 3],
        [transpose(rand([10, 3], dtype)), 5], // last dim strided
        [permute(rand([4, 2, 3], dtype), [1, 2, 0]), 2],
        [rand([7], dtype), 7],
        [rand([5, 3], dtype), 1],
        [expand(rand([1, 6], dtype), [3, 6]), 2],
      ];
      for (const [x, k] of cases) {
        const out = avgPool1d(x, k);
        expect(out.shape).toEqual([...x.shape.slice(0, -1), x.shape[x.rank - 1]! / k]);
        expect(out.dtype).toBe(dtype);
        assertClose(out, refAvgPool(x, k), tol[dtype]);
      }
    }
    expect(avgPool1d(rand([0, 4]), 2).shape).toEqual([0, 2]);
    expect(avgPool1d(rand([3, 0]), 4).shape).toEqual([3, 0]);
    expect(avgPool1d(tensor([1, 2, 3, 5], { dtype: 'float64' }), 2).toArray()).toEqual([1.5, 4]);
  });

  it('rounds once into another float dtype when asked (the cast rides along)', () => {
    const pairs: [DType, DType][] = [
      ['bfloat16', 'float32'], ['float16', 'float64'], ['float64', 'float32'], ['float32', 'bfloat16'], ['bfloat16', 'float16'],
    ];
    for (const [from, to] of pairs) {
      for (const [x, k] of [[rand([3, 12], from), 4], [transpose(rand([9, 2], from)), 3], [rand([5, 7], from, true), 1]] as [Tensor, number][]) {
        const out = avgPool1d(x, k, { dtype: to });
        expect(out.dtype).toBe(to);
        expect(out.shape).toEqual([...x.shape.slice(0, -1), x.shape[x.rank - 1]! / k]);
        // The float64 means of the exact inputs, rounded once to `to`.
        expect(Array.from(out.toFloat64Array())).toEqual(Array.from(refAvgPool(x, k), (v) => roundTo(v, to)));
      }
    }
    expect(() => avgPool1d(rand([4]), 2, { dtype: 'int32' })).toThrow('avgPool1d: the output dtype must be a float dtype, got int32');
  });

  it('records its contract', () => {
    const records: OpRecord[] = [];
    const prev = setOpObserver((r) => records.push(r));
    try {
      avgPool1d(rand([2, 8]), 4);
    } finally {
      setOpObserver(prev);
    }
    expect(records.map((r) => [r.op, r.attrs])).toEqual([['avgPool1d', { kernel: 4 }]]);
  });

  it('rejects bad kernels, sizes and dtypes', () => {
    expect(() => avgPool1d(rand([2, 10]), 4)).toThrow('avgPool1d: last dim 10 of [2, 10] is not divisible by kernel 4');
    expect(() => avgPool1d(rand([4]), 0)).toThrow('avgPool1d: kernel must be a positive integer, got 0');
    expect(() => avgPool1d(rand([4]), 1.5)).toThrow('avgPool1d: kernel must be a positive integer, got 1.5');
    expect(() => avgPool1d(rand([4], 'int32'), 2)).toThrow('avgPool1d: expected a floating-point tensor, got int32[4]');
    expect(() => avgPool1d(tensor(3), 1)).toThrow('avgPool1d: needs at least one dimension');
  });
});

describe('repeatInterleave', () => {
  it('repeats each element in place along any axis for every dtype and layout', () => {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int8', 'uint8'] as const) {
      const sources = [rand([2, 3, 4], dtype), rand([2, 3, 4], dtype, true), permute(rand([4, 2, 3], dtype), [1, 2, 0])];
      for (const x of sources) {
        for (const [repeats, axis] of [[2, -1], [3, 0], [1, 1], [2, 1], [3, 2]] as const) {
          const ax = axis < 0 ? axis + 3 : axis;
          const out = repeatInterleave(x, repeats, axis);
          const shape = [...x.shape];
          shape[ax]! *= repeats;
          expect(out.shape).toEqual(shape);
          expect(out.dtype).toBe(dtype);
          expect(Array.from(out.toFloat64Array())).toEqual(Array.from(refRepeatInterleave(x, repeats, ax)));
        }
      }
    }
  });

  it('is an element repeat, not tiling, and handles empty results', () => {
    expect(repeatInterleave(tensor([1, 2]), 2).toArray()).toEqual([1, 1, 2, 2]);
    expect(repeatInterleave(tensor([[1, 2], [3, 4]]), 2, 0).toArray()).toEqual([[1, 2], [1, 2], [3, 4], [3, 4]]);
    expect(repeatInterleave(rand([2, 3]), 0).shape).toEqual([2, 0]);
    expect(repeatInterleave(rand([0, 3]), 2, 1).shape).toEqual([0, 6]);
    const b = expand(tensor([[5], [6]]), [2, 2]);
    expect(repeatInterleave(b, 2).toArray()).toEqual([[5, 5, 5, 5], [6, 6, 6, 6]]);
  });

  it('records its contract', () => {
    const records: OpRecord[] = [];
    const prev = setOpObserver((r) => records.push(r));
    try {
      repeatInterleave(rand([2, 3]), 2, -2);
    } finally {
      setOpObserver(prev);
    }
    expect(records.map((r) => [r.op, r.attrs])).toEqual([['repeatInterleave', { repeats: 2, axis: 0 }]]);
  });

  it('rejects bad repeats and axes', () => {
    expect(() => repeatInterleave(rand([3]), -1)).toThrow('repeatInterleave: repeats must be a non-negative integer, got -1');
    expect(() => repeatInterleave(rand([3]), 2.5)).toThrow('repeatInterleave: repeats must be a non-negative integer, got 2.5');
    expect(() => repeatInterleave(rand([3]), 2, 1)).toThrow('repeatInterleave: axis 1 is out of range for a tensor of rank 1');
    expect(() => repeatInterleave(tensor(1), 2)).toThrow('repeatInterleave: axis -1 is out of range for a tensor of rank 0');
  });
});

describe('sumRuns and avgPool1dBackward (the gradients of repeatInterleave and avgPool1d)', () => {
  const layouts = (dtype: DType): Tensor[] => [
    rand([3, 12], dtype), rand([2, 3, 6], dtype, true), transpose(rand([6, 3], dtype)), expand(rand([1, 6], dtype), [3, 6]), rand([6], dtype),
  ];

  it('sumRuns adds runs of the last dim in float64, every float dtype and layout', () => {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'float16'] as const) {
      for (const x of layouts(dtype)) {
        for (const k of [1, 2, 3]) {
          const out = sumRuns(x, k);
          expect(out.shape).toEqual([...x.shape.slice(0, -1), x.shape[x.rank - 1]! / k]);
          expect(out.dtype).toBe(dtype);
          assertClose(out, refAvgPool(x, k).map((v) => v * k), tol[dtype]);
        }
      }
    }
    expect(sumRuns(tensor([1, 2, 3, 5.5], { dtype: 'float64' }), 2).toArray()).toEqual([3, 8.5]);
  });

  it('avgPool1dBackward repeats each value divided by the kernel, exactly div(repeatInterleave(dy, k), k)', () => {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'float16'] as const) {
      for (const dy of layouts(dtype)) {
        for (const k of [1, 2, 3]) {
          const out = avgPool1dBackward(dy, k);
          expect(out.shape).toEqual([...dy.shape.slice(0, -1), dy.shape[dy.rank - 1]! * k]);
          const expected = refRepeatInterleave(dy, k, dy.rank - 1).map((v) => v / k);
          assertClose(out, expected, tol[dtype]);
          expect(Array.from(out.toFloat64Array())).toEqual(Array.from(div(repeatInterleave(dy, k), k).toFloat64Array()));
        }
      }
    }
  });

  it('record their contracts and reject bad input', () => {
    const records: OpRecord[] = [];
    const prev = setOpObserver((r) => records.push(r));
    try {
      sumRuns(rand([2, 8]), 4);
      avgPool1dBackward(rand([2, 2]), 4);
    } finally {
      setOpObserver(prev);
    }
    expect(records.map((r) => [r.op, r.attrs, r.outputs[0]!.shape])).toEqual([['sumRuns', { kernel: 4 }, [2, 2]], ['avgPool1dBackward', { kernel: 4 }, [2, 8]]]);
    expect(() => sumRuns(rand([2, 10]), 4)).toThrow('sumRuns: last dim 10 of [2, 10] is not divisible by kernel 4');
    expect(() => sumRuns(rand([4], 'int32'), 2)).toThrow('sumRuns: expected a floating-point tensor, got int32[4]');
    expect(() => avgPool1dBackward(rand([4]), 0)).toThrow('avgPool1dBackward: kernel must be a positive integer, got 0');
    expect(() => avgPool1dBackward(tensor(3), 1)).toThrow('avgPool1dBackward: needs at least one dimension');
  });
});

describe('avgPool1d inverts repeatInterleave', () => {
  it('avgPool1d(repeatInterleave(x, k), k) equals x exactly', () => {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'float16'] as const) {
      for (const k of [1, 2, 3, 7, 8]) {
        const x = seed % 2 === 0 ? rand([3, 5], dtype) : slice(rand([3, 10], dtype), 1, 0, 10, 2);
        const back = avgPool1d(repeatInterleave(x, k), k);
        expect(back.shape).toEqual(x.shape);
        expect(Array.from(back.toFloat64Array())).toEqual(Array.from(x.toFloat64Array()));
      }
    }
  });
});
