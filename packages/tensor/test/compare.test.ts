import { afterEach, describe, expect, it } from 'vitest';
import {
  cast, clamp, eq, ge, gt, le, lt, ne, setOpObserver, tensor, where, zeros,
  type DType, type OpRecord, type Tensor,
} from '../src/index.js';
import { assertClose, nonContiguousTensor } from '../src/testing.js';
import {
  binaryRef, broadcastIndex, broadcastShapeRef, count, FLOAT_DTYPES, INT_DTYPES, INT_RANGE, inputCases, valuesFor,
} from './elementwise-helpers.js';

const ALL_DTYPES: DType[] = [...FLOAT_DTYPES, ...INT_DTYPES];

const COMPARISONS: { name: string; fn: (a: Tensor | number, b: Tensor | number) => Tensor; ref: (x: number, y: number) => boolean }[] = [
  { name: 'eq', fn: eq, ref: (x, y) => x === y },
  { name: 'ne', fn: ne, ref: (x, y) => x !== y },
  { name: 'lt', fn: lt, ref: (x, y) => x < y },
  { name: 'le', fn: le, ref: (x, y) => x <= y },
  { name: 'gt', fn: gt, ref: (x, y) => x > y },
  { name: 'ge', fn: ge, ref: (x, y) => x >= y },
];

const SHAPE_PAIRS: [number[], number[]][] = [
  [[3, 5, 7], [3, 5, 7]],
  [[3, 1, 5], [4, 5]],
  [[], [2, 3]],
  [[6], []],
  [[1], [7]],
  [[0, 3], [1, 3]],
];

/** Small integer-valued inputs, so equal pairs occur often, in the range of `dtype`. */
function smallValues(n: number, dtype: DType, seed: number): Float64Array {
  const lo = dtype === 'uint8' ? 0 : -3;
  return valuesFor(n, 'int32', seed, lo, lo + 6).map((v) => (FLOAT_DTYPES.includes(dtype as never) ? v / 2 : v));
}

function bits(t: Tensor): number[] {
  return Array.from(t.toTypedArray());
}

describe('comparisons', () => {
  for (const op of COMPARISONS) {
    it(`${op.name}: every dtype and layout, broadcasting, uint8 output`, () => {
      for (const dtype of ALL_DTYPES) {
        for (const [p, [sa, sb]] of SHAPE_PAIRS.entries()) {
          const casesA = inputCases(sa, dtype, smallValues(count(sa), dtype, 10 + p));
          const casesB = inputCases(sb, dtype, smallValues(count(sb), dtype, 20 + p));
          for (let i = 0; i < Math.max(casesA.length, casesB.length); i++) {
            const A = casesA[i % casesA.length]!;
            const B = casesB[(i + p) % casesB.length]!;
            const want = binaryRef(A.values, sa, B.values, sb, (x, y) => (op.ref(x, y) ? 1 : 0));
            const y = op.fn(A.x, B.x);
            const where = `${op.name} ${dtype} ${JSON.stringify(sa)}(${A.layout}) ${JSON.stringify(sb)}(${B.layout})`;
            expect(y.dtype, where).toBe('uint8');
            expect(y.shape, where).toEqual(want.shape);
            expect(bits(y), where).toEqual(Array.from(want.values));
          }
        }
      }
    });
  }

  it('numbers on either side; NaN compares unequal to everything', () => {
    const x = tensor([NaN, -1, 0, 1, Infinity], { dtype: 'float32' });
    expect(bits(eq(x, 0))).toEqual([0, 0, 1, 0, 0]);
    expect(bits(ne(x, x))).toEqual([1, 0, 0, 0, 0]);
    expect(bits(eq(x, x))).toEqual([0, 1, 1, 1, 1]);
    expect(bits(lt(0, x))).toEqual([0, 0, 0, 1, 1]);
    expect(bits(ge(x, -1))).toEqual([0, 1, 1, 1, 1]);
    expect(bits(gt(x, NaN))).toEqual([0, 0, 0, 0, 0]);
    expect(bits(le(-Infinity, x))).toEqual([0, 1, 1, 1, 1]);
  });

  it('compare half-precision values after rounding the number to the same dtype', () => {
    // 1 + 2^-9 rounds to 1 in bfloat16 (ties to even), so it compares equal to 1.
    const x = tensor([1, 1.0078125], { dtype: 'bfloat16' });
    expect(bits(eq(x, 1 + 2 ** -9))).toEqual([1, 0]);
    expect(bits(gt(x, 1))).toEqual([0, 1]);
  });

  it('errors name the op, the shapes and the dtypes', () => {
    expect(() => lt(zeros([2, 3]), zeros([2]))).toThrow('lt: shapes [2, 3] and [2] do not broadcast (dim 1: 3 vs 2)');
    expect(() => eq(zeros([2]), zeros([2], { dtype: 'int32' }))).toThrow('eq: dtypes differ (float32[2] on cpu and int32[2] on cpu)');
    expect(() => ge(zeros([1], { dtype: 'uint8' }), -1)).toThrow(/^ge \(number operand for uint8\): -1 is outside/);
    const d = zeros([2]);
    d.dispose();
    expect(() => ne(d, 1)).toThrow('ne: tensor float32[2] on cpu was disposed');
  });
});

describe('where', () => {
  it('selects elementwise with three-way broadcasting, every dtype and layout', () => {
    const shapes: [number[], number[], number[]][] = [
      [[3, 5, 7], [3, 5, 7], [3, 5, 7]],
      [[3, 1, 5], [4, 5], [1]],
      [[4, 1], [], [3]],
      [[], [2, 3], [2, 1]],
      [[2, 0], [1, 1], [2, 1]],
    ];
    for (const dtype of ALL_DTYPES) {
      for (const [p, [sc, sa, sb]] of shapes.entries()) {
        const cc = inputCases(sc, 'uint8', valuesFor(count(sc), 'uint8', 60 + p, 0, 3)); // 0, 1, 2: nonzero is true
        const ca = inputCases(sa, dtype, smallValues(count(sa), dtype, 70 + p));
        const cb = inputCases(sb, dtype, smallValues(count(sb), dtype, 80 + p));
        for (let i = 0; i < 5; i++) {
          const C = cc[i % cc.length]!;
          const A = ca[(i + 1) % ca.length]!;
          const B = cb[(i + 2) % cb.length]!;
          const shape = broadcastShapeRef(broadcastShapeRef(sc, sa), sb);
          const [ic, ia, ib] = [broadcastIndex(sc, shape), broadcastIndex(sa, shape), broadcastIndex(sb, shape)];
          const want = ic.map((k, j) => (C.values[k] !== 0 ? A.values[ia[j]!]! : B.values[ib[j]!]!));
          const y = where(C.x, A.x, B.x);
          const label = `${dtype} ${JSON.stringify([sc, sa, sb])} ${C.layout}/${A.layout}/${B.layout}`;
          expect(y.shape, label).toEqual(shape);
          expect(y.dtype, label).toBe(dtype);
          expect(Array.from(y.toFloat64Array()), label).toEqual(want);
        }
      }
    }
  });

  it('takes numbers for a and b, in the other operand\'s dtype (float32 when both are numbers)', () => {
    const cond = tensor([1, 0, 1], { dtype: 'uint8' });
    const x = tensor([10, 20, 30], { dtype: 'int8' });
    const y1 = where(cond, x, -5);
    expect(y1.dtype).toBe('int8');
    expect(y1.toArray()).toEqual([10, -5, 30]);
    expect(where(cond, 7, x).toArray()).toEqual([7, 20, 7]);
    const y2 = where(cond, 0.5, -1);
    expect(y2.dtype).toBe('float32');
    expect(y2.toArray()).toEqual([0.5, -1, 0.5]);
    expect(where(tensor(1, { dtype: 'uint8' }), 2, 3).shape).toEqual([]);
  });

  it('keeps half-precision bit patterns, NaN included', () => {
    const a = tensor(new Uint16Array([0x3f81, 0xffc1, 0x0001]), { dtype: 'bfloat16' });
    const b = tensor(new Uint16Array([0x7c00, 0x0001, 0xfe01]), { dtype: 'float16' });
    const pick = tensor([1, 1, 1], { dtype: 'uint8' });
    expect(Array.from(where(pick, a, zeros([3], { dtype: 'bfloat16' })).toTypedArray())).toEqual([0x3f81, 0xffc1, 0x0001]);
    expect(Array.from(where(pick, b, zeros([3], { dtype: 'float16' })).toTypedArray())).toEqual([0x7c00, 0x0001, 0xfe01]);
  });

  it('errors: condition dtype, operand dtypes, shapes, disposed', () => {
    const c = tensor([1, 0], { dtype: 'uint8' });
    expect(() => where(zeros([2]), 1, 2)).toThrow('where: condition must be a uint8 tensor (as comparisons return), got float32[2] on cpu');
    expect(() => where(c, zeros([2]), zeros([2], { dtype: 'float64' }))).toThrow(
      'where: a and b have different dtypes (float32[2] on cpu and float64[2] on cpu); cast one first',
    );
    expect(() => where(c, zeros([3]), 0)).toThrow('where: shapes [2] (condition), [3] (a), [] (b) do not broadcast');
    expect(() => where(c, tensor([1, 2], { dtype: 'int32' }), 0.5)).toThrow(/^where \(number operand for int32\): 0.5 is not an integer/);
    expect(() => where(1 as unknown as Tensor, 1, 2)).toThrow('where: condition must be a Tensor, got number');
    const d = zeros([2]);
    d.dispose();
    expect(() => where(c, d, 0)).toThrow('where: tensor float32[2] on cpu was disposed');
  });
});

describe('clamp', () => {
  function clampRef(v: number, lo: number | null, hi: number | null): number {
    let r = v;
    if (lo !== null && r < lo) r = lo;
    if (hi !== null && r > hi) r = hi;
    return r;
  }

  it('limits to [min, max], min only, max only, for float dtypes in every layout', () => {
    const bounds: [number | null, number | null][] = [[-0.5, 0.75], [-0.25, null], [null, 0.5], [1, -1]];
    for (const dtype of FLOAT_DTYPES) {
      for (const shape of [[3, 5, 7], [1], [], [0, 2]]) {
        for (const { layout, x, values } of inputCases(shape, dtype, valuesFor(count(shape), dtype, 3, -2, 2))) {
          for (const [lo, hi] of bounds) {
            const y = clamp(x, lo, hi);
            expect(y.dtype).toBe(dtype);
            expect(y.shape).toEqual(shape);
            const want = Array.from(values, (v) => clampRef(v, lo, hi));
            // Bounds are exact in every float dtype here, so results are exact.
            expect(Array.from(y.toFloat64Array()), `${dtype} ${layout} [${lo}, ${hi}]`).toEqual(want);
          }
        }
      }
    }
  });

  it('keeps NaN, rounds bounds into half dtypes, and takes undefined as no bound', () => {
    const x = tensor([NaN, -Infinity, Infinity, 0.3], { dtype: 'float64' });
    assertClose(clamp(x, -1, 1), [NaN, -1, 1, 0.3]);
    assertClose(clamp(x, undefined, 0), [NaN, -Infinity, 0, 0]);
    const h = clamp(tensor([0, 1], { dtype: 'bfloat16' }), 0.1);
    expect(Array.from(h.toTypedArray())).toEqual([0x3dcd, 0x3f80]); // 0.1 rounded to bfloat16
  });

  it('integers: exact bounds, saturated when beyond the dtype range', () => {
    for (const dtype of INT_DTYPES) {
      const [lo, hi] = INT_RANGE[dtype];
      const values = valuesFor(37, dtype, 8, lo, hi + 1);
      const x = nonContiguousTensor(values, [37], dtype);
      const a = dtype === 'uint8' ? 10 : -10;
      expect(Array.from(clamp(x, a, 100).toFloat64Array()), dtype).toEqual(Array.from(values, (v) => clampRef(v, a, 100)));
      expect(Array.from(clamp(x, lo - 1000, hi + 1000).toFloat64Array())).toEqual(Array.from(values));
      expect(Array.from(clamp(x, hi + 5).toFloat64Array())).toEqual(Array.from(values, () => hi));
      expect(Array.from(clamp(x, -Infinity, Infinity).toFloat64Array())).toEqual(Array.from(values));
    }
  });

  it('errors', () => {
    expect(() => clamp(zeros([2]))).toThrow('clamp: give at least one of min and max');
    expect(() => clamp(zeros([2]), NaN)).toThrow('clamp: min must be a number or null, got NaN');
    expect(() => clamp(zeros([2]), 0, '1' as unknown as number)).toThrow('clamp: max must be a number or null, got 1');
    expect(() => clamp(zeros([2], { dtype: 'int32' }), 0.5)).toThrow(/^clamp: min 0.5 is not an integer but the tensor is int32\[2\] on cpu/);
    const d = zeros([1]);
    d.dispose();
    expect(() => clamp(d, 0)).toThrow('clamp: tensor float32[1] on cpu was disposed');
  });
});

describe('op records', () => {
  const records: OpRecord[] = [];
  afterEach(() => {
    setOpObserver(null);
    records.length = 0;
  });

  it('comparisons, where and clamp follow the op contract', () => {
    const x = tensor([1, 2, 3]);
    const c = cast(tensor([1, 0, 1]), 'uint8');
    setOpObserver((r) => records.push(r));
    for (const [name, fn] of COMPARISONS.map((o) => [o.name, o.fn] as const)) {
      records.length = 0;
      const y = fn(x, x);
      expect(records.map((r) => r.op)).toEqual([name]);
      expect(records[0]!.outputs[0]).toBe(y);
    }
    records.length = 0;
    where(c, x, tensor(0));
    expect(records.map((r) => r.op)).toEqual(['expand', 'where']);
    expect(records[1]!.inputs.map((t) => t.dtype)).toEqual(['uint8', 'float32', 'float32']);
    expect(records[1]!.inputs.map((t) => t.shape)).toEqual([[3], [3], [3]]);
    records.length = 0;
    clamp(x, null, 2);
    clamp(x, -1);
    expect(records.map((r) => [r.op, r.attrs])).toEqual([['clamp', { min: null, max: 2 }], ['clamp', { min: -1, max: null }]]);
  });
});
