import { describe, expect, it } from 'vitest';
import {
  argmax, argmin, expand, max, mean, min, logsumexp, permute, setOpObserver, slice, sum, tensor, variance,
  type DType, type OpRecord, type ReductionAxes, type Tensor,
} from '../src/index.js';
import { assertClose, nonContiguousTensor, randomValues, type Tolerance } from '../src/testing.js';

// ---- float64 references, written with plain loops ----

/** Normalized, sorted axes as the tests expect them (undefined = all). */
function normalize(axes: ReductionAxes, rank: number): number[] {
  if (axes === undefined) return Array.from({ length: rank }, (_, i) => i);
  if (rank === 0) return [];
  const list = typeof axes === 'number' ? [axes] : [...axes];
  return list.map((a) => (a < 0 ? a + rank : a)).sort((a, b) => a - b);
}

/** The input values grouped by output position (row-major), each group in increasing index order. */
function groups(values: Float64Array, shape: readonly number[], axes: number[]): number[][] {
  const rank = shape.length;
  const kept: number[] = [];
  for (let d = 0; d < rank; d++) if (!axes.includes(d)) kept.push(d);
  let outCount = 1;
  for (const d of kept) outCount *= shape[d]!;
  const out: number[][] = [];
  for (let o = 0; o < outCount; o++) out.push([]);
  const idx = new Array<number>(rank).fill(0);
  for (let i = 0; i < values.length; i++) {
    let o = 0;
    for (const d of kept) o = o * shape[d]! + idx[d]!;
    out[o]!.push(values[i]!);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]! += 1;
      if (idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

function expectedShape(shape: readonly number[], axes: number[], keepdim: boolean): number[] {
  const out: number[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (!axes.includes(d)) out.push(shape[d]!);
    else if (keepdim) out.push(1);
  }
  return out;
}

function refSum(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

function refMean(xs: number[]): number {
  return refSum(xs) / xs.length;
}

function refMax(xs: number[]): number {
  let m = -Infinity;
  for (const x of xs) {
    if (Number.isNaN(x)) return NaN;
    if (x > m) m = x;
  }
  return m;
}

function refMin(xs: number[]): number {
  let m = Infinity;
  for (const x of xs) {
    if (Number.isNaN(x)) return NaN;
    if (x < m) m = x;
  }
  return m;
}

function refArg(xs: number[], better: (a: number, b: number) => boolean): number {
  const firstNaN = xs.findIndex((x) => Number.isNaN(x));
  if (firstNaN >= 0) return firstNaN;
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (better(xs[i]!, xs[best]!)) best = i;
  return best;
}

function refVar(xs: number[], correction: number): number {
  const mu = refMean(xs);
  let ss = 0;
  for (const x of xs) ss += (x - mu) * (x - mu);
  return ss / Math.max(0, xs.length - correction);
}

/** Direct log(sum(exp(x))); fine for the moderate values it is used on. */
function refLogsumexp(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += Math.exp(x);
  return Math.log(s);
}

// ---- inputs in several memory layouts ----

/** Tensors of `shape` in different layouts. All but 'expanded' hold `values` (row-major). */
function layouts(values: Float64Array, shape: number[], dtype: DType): Array<[string, Tensor]> {
  const out: Array<[string, Tensor]> = [['contiguous', tensor(values, { shape, dtype })]];
  const rank = shape.length;
  if (rank === 0) return out;
  out.push(['strided', nonContiguousTensor(values, shape, dtype)]);
  // Stored with the dims reversed, then permuted back: every stride differs from row-major.
  const reversedData = new Float64Array(values.length);
  const idx = new Array<number>(rank).fill(0);
  for (let i = 0; i < values.length; i++) {
    let off = 0;
    let stride = 1;
    for (let d = 0; d < rank; d++) {
      off += idx[d]! * stride;
      stride *= shape[d]!;
    }
    reversedData[off] = values[i]!;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]! += 1;
      if (idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
  const reversedDims = shape.map((_, d) => rank - 1 - d);
  out.push(['permuted', permute(tensor(reversedData, { shape: [...shape].reverse(), dtype }), reversedDims)]);
  // One extra leading block of NaN (99 for integers) before the values: a non-zero offset.
  const block = values.length / Math.max(shape[0]!, 1);
  const padded = new Float64Array(values.length + block).fill(dtype.startsWith('float') || dtype === 'bfloat16' ? NaN : 99);
  padded.set(values, block);
  out.push(['offset', slice(tensor(padded, { shape: [shape[0]! + 1, ...shape.slice(1)], dtype }), 0, 1)]);
  // The first dim of size > 1 broadcast from size 1 (stride 0).
  const k = shape.findIndex((d) => d > 1);
  if (k >= 0) {
    const baseShape = shape.map((d, i) => (i === k ? 1 : d));
    let inner = 1;
    for (let d = k + 1; d < rank; d++) inner *= shape[d]!;
    const base: number[] = [];
    for (let i = 0; i < values.length; i++) if (Math.floor(i / inner) % shape[k]! === 0) base.push(values[i]!);
    out.push(['expanded', expand(tensor(base, { shape: baseShape, dtype }), shape)]);
  }
  return out;
}

type ReduceFn = (x: Tensor, axes: ReductionAxes, keepdim: boolean) => Tensor;

interface OpCase {
  name: string;
  run: ReduceFn;
  ref: (xs: number[]) => number;
}

const floatOps: OpCase[] = [
  { name: 'sum', run: sum, ref: refSum },
  { name: 'mean', run: mean, ref: refMean },
  { name: 'max', run: max, ref: refMax },
  { name: 'min', run: min, ref: refMin },
  { name: 'var', run: (x, a, k) => variance(x, a, { keepdim: k }), ref: (xs) => refVar(xs, 1) },
  { name: 'var(correction 0)', run: (x, a, k) => variance(x, a, { correction: 0, keepdim: k }), ref: (xs) => refVar(xs, 0) },
  { name: 'logsumexp', run: logsumexp, ref: refLogsumexp },
];

const tolerances: Record<DType, Tolerance> = {
  float64: { rtol: 1e-12, atol: 1e-12 },
  float32: { rtol: 1e-6, atol: 1e-6 },
  float16: { rtol: 1e-3, atol: 1e-6 },
  bfloat16: { rtol: 4e-3, atol: 1e-6 },
  int32: { rtol: 0, atol: 0 },
  int8: { rtol: 0, atol: 0 },
  uint8: { rtol: 0, atol: 0 },
};

/** Runs one reduction and compares values, shape and dtype with the reference. */
function check(op: OpCase, x: Tensor, axes: ReductionAxes, keepdim: boolean, label: string, outDType = x.dtype): void {
  const norm = normalize(axes, x.rank);
  const expected = groups(x.toFloat64Array(), x.shape, norm).map(op.ref);
  const y = op.run(x, axes, keepdim);
  const where = `${op.name} ${label} ${x.describe()} axes ${JSON.stringify(axes)} keepdim ${keepdim}`;
  expect(y.shape, where).toEqual(expectedShape(x.shape, norm, keepdim));
  expect(y.dtype, where).toBe(outDType);
  try {
    assertClose(y, expected, tolerances[outDType]);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
}

/** Every subset of the axes of a rank-`rank` tensor, as axis lists. */
function axisSubsets(rank: number): number[][] {
  const out: number[][] = [];
  for (let mask = 0; mask < 1 << rank; mask++) out.push([...Array(rank).keys()].filter((d) => mask & (1 << d)));
  return out;
}

describe('float reductions', () => {
  it('match the reference for every axis subset of a rank-3 tensor, keepdim both ways, in every layout', () => {
    const shape = [3, 5, 7];
    const values = randomValues(105, 11, -2, 2);
    for (const [label, x] of layouts(values, shape, 'float32')) {
      for (const axes of [undefined, ...axisSubsets(3)]) {
        for (const keepdim of [false, true]) for (const op of floatOps) check(op, x, axes, keepdim, label);
      }
    }
  });

  it('match the reference for ranks 0..4 with single, negative and non-adjacent axes', () => {
    const shapes = [[], [1], [7], [3, 5], [1, 4], [2, 1, 3], [2, 3, 1, 5], [3, 2, 4, 3]];
    shapes.forEach((shape, s) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const r = shape.length;
      const axesList: ReductionAxes[] = [undefined, []];
      for (let d = 0; d < r; d++) axesList.push(d, d - r);
      if (r === 0) axesList.push(0, -1, [0]);
      if (r >= 3) axesList.push([0, 2], [-1, 0]);
      if (r === 4) axesList.push([1, 3], [0, -1], [3, 1, 0]);
      for (const [label, x] of layouts(randomValues(n, 100 + s, -3, 3), shape, 'float64')) {
        for (const axes of axesList) for (const keepdim of [false, true]) for (const op of floatOps) check(op, x, axes, keepdim, label);
      }
    });
  });

  it('support float64, float32, float16 and bfloat16', () => {
    const shape = [4, 3, 5];
    for (const dtype of ['float64', 'float32', 'float16', 'bfloat16'] as DType[]) {
      for (const [label, x] of layouts(randomValues(60, 7, -4, 4), shape, dtype)) {
        for (const axes of [undefined, 1, [0, 2], -1]) for (const op of floatOps) check(op, x, axes, false, label);
      }
    }
  });

  it('handle empty dims: sum 0, mean/var NaN, logsumexp -Infinity', () => {
    const x = tensor(new Float64Array(0), { shape: [3, 0, 2] });
    expect(sum(x, 1).toArray()).toEqual([[0, 0], [0, 0], [0, 0]]);
    expect(sum(x).item()).toBe(0);
    expect(sum(x, 0).shape).toEqual([0, 2]);
    expect(sum(x, 0, true).shape).toEqual([1, 0, 2]);
    expect(mean(x, [1, 2]).toArray()).toEqual([NaN, NaN, NaN]);
    expect(variance(x, 1).toArray()).toEqual([[NaN, NaN], [NaN, NaN], [NaN, NaN]]);
    expect(logsumexp(x, 1, true).toArray()).toEqual([[[-Infinity, -Infinity]], [[-Infinity, -Infinity]], [[-Infinity, -Infinity]]]);
    // Reducing a non-empty dim of an empty tensor is fine for max/min: the result is empty.
    expect(max(x, 0).shape).toEqual([0, 2]);
    expect(min(x, 2, true).shape).toEqual([3, 0, 1]);
    for (const op of floatOps) check(op, x, 2, false, 'empty');
  });

  it('propagate NaN through max and min', () => {
    const x = tensor([[1, NaN, 3], [4, 5, 6], [NaN, -Infinity, 0]]);
    expect(max(x, 1).toArray()).toEqual([NaN, 6, NaN]);
    expect(min(x, 1).toArray()).toEqual([NaN, 4, NaN]);
    expect(max(x, 0).toArray()).toEqual([NaN, NaN, 6]);
    expect(min(x).item()).toBeNaN();
  });

  it('compute the variance like torch.var, including small counts', () => {
    const x = tensor([[1, 2, 4], [3, 3, 3]], { dtype: 'float64' });
    assertClose(variance(x, 1), [7 / 3, 0], { rtol: 1e-15, atol: 0 });
    assertClose(variance(x, 1, { correction: 0 }), [14 / 9, 0], { rtol: 1e-15, atol: 0 });
    expect(variance(x, 0, { keepdim: true }).toArray()).toEqual([[2, 0.5, 0.5]]);
    // One element with correction 1: 0 / 0. Correction above the count: divisor clamps to 0.
    expect(variance(tensor([5]), 0).item()).toBeNaN();
    expect(variance(tensor([1, 2]), 0, { correction: 3 }).item()).toBe(Infinity);
    // Large offsets do not lose the spread (two-pass in float64).
    expect(variance(tensor([1e8 + 1, 1e8 + 2, 1e8 + 3], { dtype: 'float64' })).item()).toBeCloseTo(1, 6);
  });
});

describe('logsumexp stability', () => {
  it('handles large magnitudes without overflow', () => {
    const x = tensor([[1000, 1000, 1000], [-1000, -1000, -1000], [1000, -1000, 0], [-Infinity, 0, -Infinity]], { dtype: 'float64' });
    assertClose(logsumexp(x, 1), [1000 + Math.log(3), -1000 + Math.log(3), 1000, 0], { rtol: 1e-14, atol: 1e-12 });
    // Column 0 holds 1000 twice; exp(-2000) vanishes next to 1.
    assertClose(logsumexp(x, 0), [1000 + Math.log(2), 1000, 1000], { rtol: 1e-14 });
    const f = tensor([[710, 709], [-750, -751]]);
    assertClose(logsumexp(f, -1), [710 + Math.log(1 + Math.exp(-1)), -750 + Math.log(1 + Math.exp(-1))], { rtol: 1e-6 });
  });

  it('gives -Infinity for all -Infinity slices and follows +Infinity and NaN', () => {
    const x = tensor([[-Infinity, -Infinity], [Infinity, 1], [NaN, 1], [Infinity, NaN], [-Infinity, 2]]);
    expect(logsumexp(x, 1).toArray()).toEqual([-Infinity, Infinity, NaN, NaN, 2]);
  });

  it('matches a shifted reference on random values in [-1000, 1000] in every layout', () => {
    const shape = [3, 4, 5];
    const shifted = (xs: number[]): number => {
      const m = refMax(xs);
      let s = 0;
      for (const v of xs) s += Math.exp(v - m);
      return m + Math.log(s);
    };
    const op: OpCase = { name: 'logsumexp', run: logsumexp, ref: shifted };
    for (const dtype of ['float32', 'float64', 'bfloat16'] as DType[]) {
      for (const [label, x] of layouts(randomValues(60, 3, -1000, 1000), shape, dtype)) {
        for (const axes of [undefined, 0, [0, 2], -1]) check(op, x, axes, true, label);
      }
    }
  });
});

describe('integer reductions', () => {
  it('sum int8/uint8/int32 into int32 and keep max/min in the input dtype', () => {
    const intOps: Array<[OpCase, boolean]> = [
      [{ name: 'sum', run: sum, ref: refSum }, true],
      [{ name: 'max', run: max, ref: refMax }, false],
      [{ name: 'min', run: min, ref: refMin }, false],
    ];
    const ranges: Array<[DType, number, number]> = [['int8', -128, 128], ['uint8', 0, 256], ['int32', -1e6, 1e6]];
    for (const [dtype, low, high] of ranges) {
      const values = randomValues(60, 5, low, high).map(Math.floor);
      for (const [label, x] of layouts(values, [5, 3, 4], dtype)) {
        for (const axes of [undefined, 0, [0, 2], -1, []]) {
          for (const [op, widens] of intOps) check(op, x, axes, false, label, widens ? 'int32' : dtype);
        }
      }
    }
  });

  it('does not wrap uint8 sums at 8 bits; int32 sums wrap at 32 bits', () => {
    expect(sum(tensor(new Array(300).fill(255), { dtype: 'uint8' })).item()).toBe(76500);
    expect(sum(tensor([2147483647, 1], { dtype: 'int32' })).item()).toBe(-2147483648);
  });
});

describe('argmax and argmin', () => {
  const gt = (a: number, b: number) => a > b;
  const lt = (a: number, b: number) => a < b;

  function checkArg(x: Tensor, axis: number, keepdim: boolean, label: string): void {
    const norm = x.rank === 0 ? [] : [axis < 0 ? axis + x.rank : axis];
    const g = groups(x.toFloat64Array(), x.shape, norm);
    for (const [fn, better, name] of [[argmax, gt, 'argmax'], [argmin, lt, 'argmin']] as const) {
      const y = fn(x, axis, keepdim);
      const where = `${name} ${label} ${x.describe()} axis ${axis} keepdim ${keepdim}`;
      expect(y.dtype, where).toBe('int32');
      expect(y.shape, where).toEqual(expectedShape(x.shape, norm, keepdim));
      expect(Array.from(y.toFloat64Array()), where).toEqual(g.map((xs) => refArg(xs, better)));
    }
  }

  it('return the first index on ties and the first NaN, along every axis, in every layout and dtype', () => {
    const shape = [3, 5, 4];
    // Few distinct values so ties are common; some NaN.
    const values = randomValues(60, 9, 0, 4).map(Math.floor);
    const withNaN = values.map((v, i) => (i % 17 === 3 ? NaN : v));
    for (const dtype of ['float32', 'float64', 'bfloat16', 'int32', 'int8', 'uint8'] as DType[]) {
      const data = dtype.startsWith('int') || dtype === 'uint8' ? values : withNaN;
      for (const [label, x] of layouts(data, shape, dtype)) {
        for (const axis of [0, 1, 2, -1, -3]) for (const keepdim of [false, true]) checkArg(x, axis, keepdim, label);
      }
    }
  });

  it('handle ranks 0..4, size-1 dims and infinities', () => {
    const shapes = [[], [1], [6], [2, 1], [1, 3, 2], [2, 3, 1, 4]];
    shapes.forEach((shape, s) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const values = randomValues(n, 20 + s, -2, 2).map((v, i) => (i % 5 === 1 ? -Infinity : i % 7 === 2 ? Infinity : v));
      for (const [label, x] of layouts(values, shape, 'float64')) {
        const axes = shape.length === 0 ? [0, -1] : shape.map((_, d) => d);
        for (const axis of axes) for (const keepdim of [false, true]) checkArg(x, axis, keepdim, label);
      }
    });
    expect(argmax(tensor([-Infinity, -Infinity]), 0).item()).toBe(0);
    expect(argmin(tensor([Infinity, Infinity, -Infinity]), 0).item()).toBe(2);
  });

  it('reduce a non-empty dim of an empty tensor and refuse an empty dim', () => {
    const x = tensor(new Float32Array(0), { shape: [3, 0] });
    expect(argmax(x, 0).shape).toEqual([0]);
    expect(() => argmax(x, 1)).toThrow(/argmax: cannot reduce over dim 1 of size 0 of float32\[3, 0\] on cpu/);
    expect(() => argmin(x, -1)).toThrow(/argmin: cannot reduce over dim 1 of size 0/);
  });
});

describe('op contract and errors', () => {
  function recordOps(fn: () => void): OpRecord[] {
    const records: OpRecord[] = [];
    const prev = setOpObserver((r) => records.push(r));
    try {
      fn();
    } finally {
      setOpObserver(prev);
    }
    return records;
  }

  it('records op names with normalized, sorted axes', () => {
    const x = tensor(randomValues(24, 1), { shape: [2, 3, 4] });
    const records = recordOps(() => {
      sum(x, [-1, 0]);
      mean(x, undefined, true);
      max(x, -2);
      min(x, []);
      variance(x, [2, 1], { correction: 0, keepdim: true });
      logsumexp(x, -1);
      argmax(x, -1);
      argmin(x, 0, true);
    });
    expect(records.map((r) => [r.op, r.attrs])).toEqual([
      ['sum', { axes: [0, 2], keepdim: false }],
      ['mean', { axes: [0, 1, 2], keepdim: true }],
      ['max', { axes: [1], keepdim: false }],
      ['min', { axes: [], keepdim: false }],
      ['var', { axes: [1, 2], correction: 0, keepdim: true }],
      ['logsumexp', { axes: [2], keepdim: false }],
      ['argmax', { axis: 2, keepdim: false }],
      ['argmin', { axis: 0, keepdim: true }],
    ]);
    for (const r of records) expect(r.inputs).toEqual([x]);
  });

  it('rejects bad axes with the op, the tensor and the valid range', () => {
    const x = tensor(randomValues(24, 1), { shape: [2, 3, 4] });
    expect(() => sum(x, 3)).toThrow('sum: axis 3 is out of range for float32[2, 3, 4] on cpu (expected an integer in [-3, 2])');
    expect(() => mean(x, [0, -4])).toThrow(/mean: axis -4 is out of range/);
    expect(() => max(x, 1.5)).toThrow(/max: axis 1.5 is out of range/);
    expect(() => min(x, [0, -3])).toThrow('min: axis -3 is repeated in [0, -3] for float32[2, 3, 4] on cpu');
    expect(() => variance(x, [5])).toThrow(/var: axis 5 is out of range/);
    expect(() => logsumexp(x, 'a' as never)).toThrow(/logsumexp: axes must be a number, an array of numbers or undefined/);
    expect(() => argmax(x, 3)).toThrow(/argmax: axis 3 is out of range for float32\[2, 3, 4\]/);
    expect(() => argmin(x, undefined as never)).toThrow(/argmin: axis must be a number, got undefined/);
    expect(() => sum(tensor(1), 1)).toThrow(/sum: axis 1 is out of range for float32\[\] on cpu \(expected an integer in \[-1, 0\]\)/);
  });

  it('rejects integer inputs where a float is needed, and other bad arguments', () => {
    const i = tensor([[1, 2], [3, 4]], { dtype: 'int32' });
    expect(() => mean(i)).toThrow('mean: expected a floating-point tensor (float32, float64, float16 or bfloat16), got int32[2, 2] on cpu; cast it first');
    expect(() => variance(tensor([1], { dtype: 'uint8' }))).toThrow(/var: expected a floating-point tensor .* got uint8\[1\]/);
    expect(() => logsumexp(tensor([1], { dtype: 'int8' }), 0)).toThrow(/logsumexp: expected a floating-point tensor .* got int8\[1\]/);
    const x = tensor([[1, 2], [3, 4]]);
    expect(() => variance(x, 0, { correction: -1 })).toThrow('var: correction must be a finite number >= 0, got -1');
    expect(() => sum(x, 0, 1 as never)).toThrow('sum: keepdim must be a boolean, got 1');
    expect(() => sum([1, 2] as never)).toThrow(/sum: expected a tensor/);
    const gone = tensor([1, 2]);
    gone.dispose();
    expect(() => max(gone)).toThrow(/max: tensor float32\[2\] on cpu was disposed/);
  });

  it('refuses max/min/argmax over empty dims', () => {
    const x = tensor(new Float32Array(0), { shape: [2, 0, 3] });
    expect(() => max(x, 1)).toThrow('max: cannot reduce over dim 1 of size 0 of float32[2, 0, 3] on cpu (max of no elements is undefined)');
    expect(() => min(x)).toThrow(/min: cannot reduce over dim 1 of size 0/);
    expect(() => max(tensor(new Int32Array(0), { dtype: 'int32' }))).toThrow(/max: cannot reduce over dim 0 of size 0 of int32\[0\]/);
  });
});
