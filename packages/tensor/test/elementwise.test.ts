import { afterEach, describe, expect, it } from 'vitest';
import {
  abs, add, cos, div, exp, gelu, geluBackward, isFinite, log, maximum, minimum, mul, neg, pow, reciprocal, relu, rsqrt,
  setOpObserver, sigmoid, silu, siluBackward, siluMul, sin, sqrt, square, sub, tanh, tensor, transpose, zeros,
  type DType, type OpRecord, type Tensor,
} from '../src/index.js';
import { erf, erfc } from '../src/cpu/erf.js';
import { assertClose, nonContiguousTensor, randomValues } from '../src/testing.js';
import {
  binaryRef, count, FLOAT_DTYPES, INT_DTYPES, INT_RANGE, inputCases, TOL, valuesFor, wrapInt,
} from './elementwise-helpers.js';

const SHAPES: number[][] = [[3, 5, 7], [17], [1], [], [0, 4], [2, 1, 3], [4, 0]];

/** erf by its Maclaurin series (accurate to a few 1e-15 for |x| <= 2.5; an independent reference). */
function erfTaylor(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-18 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

interface UnaryCase {
  name: string;
  fn: (x: Tensor) => Tensor;
  ref: (v: number) => number;
  low: number;
  high: number;
  /** Extra relative tolerance for float64 when the reference itself is less accurate. */
  rtol64?: number;
}

const UNARY: UnaryCase[] = [
  { name: 'neg', fn: neg, ref: (v) => -v, low: -3, high: 3 },
  { name: 'abs', fn: abs, ref: (v) => Math.abs(v), low: -3, high: 3 },
  { name: 'exp', fn: exp, ref: (v) => Math.exp(v), low: -5, high: 5 },
  { name: 'log', fn: log, ref: (v) => Math.log(v), low: 0.05, high: 4 },
  { name: 'sqrt', fn: sqrt, ref: (v) => Math.sqrt(v), low: 0, high: 4 },
  { name: 'rsqrt', fn: rsqrt, ref: (v) => 1 / Math.sqrt(v), low: 0.05, high: 4 },
  { name: 'tanh', fn: tanh, ref: (v) => Math.tanh(v), low: -4, high: 4 },
  { name: 'sigmoid', fn: sigmoid, ref: (v) => 1 / (1 + Math.exp(-v)), low: -8, high: 8, rtol64: 1e-14 },
  { name: 'silu', fn: silu, ref: (v) => v / (1 + Math.exp(-v)), low: -8, high: 8, rtol64: 1e-14 },
  { name: 'relu', fn: relu, ref: (v) => (v > 0 ? v : 0), low: -3, high: 3 },
  { name: 'square', fn: square, ref: (v) => v * v, low: -3, high: 3 },
  { name: 'reciprocal', fn: reciprocal, ref: (v) => 1 / v, low: 0.1, high: 3 },
  { name: 'sin', fn: sin, ref: (v) => Math.sin(v), low: -4, high: 4 },
  { name: 'cos', fn: cos, ref: (v) => Math.cos(v), low: -4, high: 4 },
  {
    name: 'gelu', fn: (x) => gelu(x), ref: (v) => 0.5 * v * (1 + erfTaylor(v * Math.SQRT1_2)),
    low: -3.5, high: 3.5, rtol64: 1e-11,
  },
  {
    name: 'gelu-tanh', fn: (x) => gelu(x, 'tanh'),
    ref: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
    low: -4, high: 4, rtol64: 1e-9,
  },
];

describe('unary float ops match float64 references', () => {
  for (const op of UNARY) {
    it(op.name, () => {
      for (const dtype of FLOAT_DTYPES) {
        for (const [s, shape] of SHAPES.entries()) {
          const raw = valuesFor(count(shape), dtype, 100 + s, op.low, op.high);
          for (const { layout, x, values } of inputCases(shape, dtype, raw)) {
            const y = op.fn(x);
            expect(y.shape, `${op.name} ${dtype} ${layout}`).toEqual(shape);
            expect(y.dtype).toBe(dtype);
            expect(y.isContiguous).toBe(true);
            const tol = dtype === 'float64' && op.rtol64 ? { rtol: op.rtol64, atol: 1e-15 } : TOL[dtype];
            try {
              assertClose(y, values.map(op.ref), tol);
            } catch (e) {
              throw new Error(`${op.name} ${dtype} ${JSON.stringify(shape)} ${layout}: ${(e as Error).message}`);
            }
          }
        }
      }
    });
  }

  it('special values: zeros, infinities, NaN, domain edges', () => {
    const x = tensor([0, -0, -1, 4, Infinity, -Infinity, NaN, 1e-300], { dtype: 'float64' });
    assertClose(log(x), [-Infinity, -Infinity, NaN, Math.log(4), Infinity, NaN, NaN, Math.log(1e-300)]);
    assertClose(sqrt(x), [0, -0, NaN, 2, Infinity, NaN, NaN, 1e-150], { rtol: 1e-15 });
    assertClose(rsqrt(x), [Infinity, -Infinity, NaN, 0.5, 0, NaN, NaN, 1e150], { rtol: 1e-15 });
    assertClose(reciprocal(x), [Infinity, -Infinity, -1, 0.25, 0, -0, NaN, 1e300], { rtol: 1e-15 });
    assertClose(exp(x), [1, 1, Math.exp(-1), Math.exp(4), Infinity, 0, NaN, 1]);
    assertClose(relu(x), [0, 0, 0, 4, Infinity, 0, NaN, 1e-300]);
    assertClose(abs(x), [0, 0, 1, 4, Infinity, Infinity, NaN, 1e-300]);
  });

  it('sigmoid, silu and gelu are stable and reach their limits for large |x|', () => {
    for (const dtype of FLOAT_DTYPES) {
      const big = dtype === 'float16' ? 60000 : 1e30;
      const x = tensor([-Infinity, -big, -1000, -100, 100, 1000, big, Infinity, NaN], { dtype });
      const v = x.toFloat64Array();
      assertClose(sigmoid(x), [0, 0, 0, Math.exp(-100), 1, 1, 1, 1, NaN], { rtol: TOL[dtype].rtol!, atol: TOL[dtype].atol! });
      assertClose(silu(x), [0, 0, 0, -100 * Math.exp(-100), 100, 1000, v[6]!, Infinity, NaN], TOL[dtype]);
      for (const approx of ['none', 'tanh'] as const) {
        const g = gelu(x, approx).toFloat64Array();
        expect(g.slice(0, 4).every((e) => e === 0), `${dtype} ${approx} left tail ${g}`).toBe(true);
        expect(g[7]).toBe(Infinity);
        expect(Number.isNaN(g[8])).toBe(true);
        assertClose(g.slice(4, 7), v.slice(4, 7), TOL[dtype]);
      }
    }
  });

  it('gelu matches high-precision values, tails included', () => {
    // [x, x * Phi(x), tanh form], 17 significant digits from an arbitrary-precision evaluation.
    const table: [number, number, number][] = [
      [-40, -1.4623574163660119e-348, -3.8416811163009239e-2010],
      [-20, -5.5072482372124674e-88, -3.3754509563109673e-261],
      [-10, -7.6198530241605261e-23, -1.204092348209806e-37],
      [-7, -8.958687807200845e-12, -2.315442262072549e-15],
      [-5, -1.4332578593959696e-6, -2.291796196629506e-7],
      [-3, -0.0040496940948902836, -0.0036373920817730188],
      [-1.5, -0.1002108019032871, -0.10042842301976708],
      [-1, -0.15865525393145705, -0.1588080093917233],
      [-0.5, -0.15426876936299345, -0.15428599017485608],
      [-0.125, -0.056282721896235888, -0.056282801375776612],
      [0, 0, 0],
      [0.25, 0.14967658142073093, 0.149675350701685],
      [1, 0.84134474606854295, 0.8411919906082767],
      [2, 1.9544997361036416, 1.954597694087775],
      [3.5, 3.4991857982233757, 3.4993838023446263],
      [6, 5.9999999940804741, 5.9999999999156035],
      [10, 10, 10],
    ];
    const x = tensor(table.map((r) => r[0]), { dtype: 'float64' });
    // Error grows with |x| through e^(-x^2/2): a few ulps times x^2.
    assertClose(gelu(x), table.map((r) => r[1]), { rtol: 5e-14, atol: 0 });
    assertClose(gelu(x, 'tanh'), table.map((r) => r[2]), { rtol: 5e-13, atol: 0 });
    const x32 = tensor(table.map((r) => r[0]), { dtype: 'float32' });
    assertClose(gelu(x32), table.map((r) => Math.fround(r[1])), { rtol: 2 ** -23, atol: 2 ** -149 });
  });

  it('isFinite marks NaN and infinities with 0, as uint8, for every dtype', () => {
    for (const dtype of FLOAT_DTYPES) {
      for (const { layout, x, values } of inputCases([7], dtype, [0, -1.5, Infinity, -Infinity, NaN, 3, 65504])) {
        const y = isFinite(x);
        expect(y.dtype, layout).toBe('uint8');
        const expected = Array.from(values, (v) => (Number.isFinite(v) ? 1 : 0));
        expect(Array.from(y.toTypedArray()), `${dtype} ${layout}`).toEqual(expected);
      }
    }
    const ints = isFinite(tensor([-128, 0, 127], { dtype: 'int8' }));
    expect(ints.dtype).toBe('uint8');
    expect(Array.from(ints.toTypedArray())).toEqual([1, 1, 1]);
    expect(isFinite(zeros([0, 3])).shape).toEqual([0, 3]);
  });
});

describe('unary ops on integer dtypes wrap like two\'s complement storage', () => {
  const cases: { name: string; fn: (x: Tensor) => Tensor; exact: (v: bigint) => bigint }[] = [
    { name: 'neg', fn: neg, exact: (v) => -v },
    { name: 'abs', fn: abs, exact: (v) => (v < 0n ? -v : v) },
    { name: 'square', fn: square, exact: (v) => v * v },
    { name: 'relu', fn: relu, exact: (v) => (v > 0n ? v : 0n) },
  ];
  for (const op of cases) {
    it(op.name, () => {
      for (const dtype of INT_DTYPES) {
        const [lo, hi] = INT_RANGE[dtype];
        const raw = [...valuesFor(33, dtype, 5, lo, hi + 1), lo, hi, 0, 1];
        for (const { layout, x, values } of inputCases([37], dtype, raw)) {
          const y = op.fn(x);
          expect(y.dtype).toBe(dtype);
          const expected = Array.from(values, (v) => wrapInt(op.exact(BigInt(v)), dtype));
          expect(Array.from(y.toFloat64Array()), `${op.name} ${dtype} ${layout}`).toEqual(expected);
        }
      }
    });
  }

  it('float-only ops reject integer tensors with a hint to cast', () => {
    const x = tensor([1, 2], { dtype: 'int32' });
    const floatOnly: [string, (t: Tensor) => Tensor][] = [
      ['exp', exp], ['log', log], ['sqrt', sqrt], ['rsqrt', rsqrt], ['tanh', tanh], ['sigmoid', sigmoid], ['silu', silu],
      ['reciprocal', reciprocal], ['sin', sin], ['cos', cos], ['gelu', (t) => gelu(t)],
    ];
    for (const [name, fn] of floatOnly) {
      expect(() => fn(x)).toThrow(new RegExp(`^${name}: expected a floating-point tensor, got int32\\[2\\] on cpu; cast`));
    }
  });
});

interface BinaryCase {
  name: string;
  fn: (a: Tensor | number, b: Tensor | number) => Tensor;
  ref: (x: number, y: number) => number;
  /** Input ranges of a and b. */
  a: [number, number];
  b: [number, number];
  ints: boolean;
  exact?: (x: bigint, y: bigint) => bigint;
  /** float64 relative tolerance where the reference computes the same value another way. */
  rtol64?: number;
}

/** The tolerance of `op` in `dtype`. */
function binaryTol(op: BinaryCase, dtype: DType): { rtol?: number; atol?: number } {
  return dtype === 'float64' && op.rtol64 ? { rtol: op.rtol64, atol: 1e-13 } : TOL[dtype];
}

/** dy times the derivative of exact gelu x Phi(x) at x, in float64 (Phi from an independent series for erf). */
function geluGradRef(x: number, dy: number): number {
  // erf by its Taylor series (|x| / sqrt 2 <= 6 here: 80 terms are plenty in float64).
  const z = x / Math.SQRT2;
  let term = z;
  let sum = z;
  for (let k = 1; k < 200; k++) {
    term *= (-z * z) / k;
    sum += term / (2 * k + 1);
  }
  const cdf = 0.5 * (1 + (2 / Math.sqrt(Math.PI)) * sum);
  return dy * (cdf + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI));
}

/** dy times the derivative of 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), in float64. */
function geluTanhGradRef(x: number, dy: number): number {
  const k = Math.sqrt(2 / Math.PI);
  const t = Math.tanh(k * (x + 0.044715 * x ** 3));
  return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x));
}

/** dy times the derivative of silu at x, in float64. */
function siluGradRef(x: number, dy: number): number {
  const s = 1 / (1 + Math.exp(-x));
  return dy * s * (1 + x * (1 - s));
}

const BINARY: BinaryCase[] = [
  { name: 'add', fn: add, ref: (x, y) => x + y, a: [-3, 3], b: [-3, 3], ints: true, exact: (x, y) => x + y },
  { name: 'sub', fn: sub, ref: (x, y) => x - y, a: [-3, 3], b: [-3, 3], ints: true, exact: (x, y) => x - y },
  { name: 'mul', fn: mul, ref: (x, y) => x * y, a: [-3, 3], b: [-3, 3], ints: true, exact: (x, y) => x * y },
  { name: 'div', fn: div, ref: (x, y) => x / y, a: [-3, 3], b: [0.25, 3], ints: false },
  { name: 'pow', fn: pow, ref: (x, y) => x ** y, a: [0.1, 3], b: [-2.5, 2.5], ints: false },
  { name: 'maximum', fn: maximum, ref: (x, y) => (x > y ? x : y), a: [-3, 3], b: [-3, 3], ints: true, exact: (x, y) => (x > y ? x : y) },
  { name: 'minimum', fn: minimum, ref: (x, y) => (x < y ? x : y), a: [-3, 3], b: [-3, 3], ints: true, exact: (x, y) => (x < y ? x : y) },
  { name: 'siluBackward', fn: siluBackward, ref: siluGradRef, a: [-8, 8], b: [-3, 3], ints: false },
  // Within |x| <= 4 the references keep about 1e-12 of their value (the erf series; 1 + tanh in the left tail).
  { name: 'geluBackward', fn: (a, b) => geluBackward(a, b), ref: geluGradRef, a: [-4, 4], b: [-3, 3], ints: false, rtol64: 1e-10 },
  { name: 'geluTanhBackward', fn: (a, b) => geluBackward(a, b, 'tanh'), ref: geluTanhGradRef, a: [-4, 4], b: [-3, 3], ints: false, rtol64: 1e-10 },
  { name: 'siluMul', fn: siluMul, ref: (x, y) => (x / (1 + Math.exp(-x))) * y, a: [-8, 8], b: [-3, 3], ints: false },
];

/** Operand shape pairs: equal, broadcast both ways, scalars, size-1 and empty dims, odd sizes. */
const SHAPE_PAIRS: [number[], number[]][] = [
  [[3, 5, 7], [3, 5, 7]],
  [[3, 1, 5], [4, 5]],
  [[4, 5], [3, 1, 5]],
  [[], [2, 3]],
  [[6], []],
  [[], []],
  [[1], [7]],
  [[2, 1, 3], [1, 4, 1]],
  [[0, 3], [1, 3]],
  [[2, 0], [2, 1]],
];

describe('binary ops match float64 references with broadcasting', () => {
  for (const op of BINARY) {
    it(`${op.name} (float dtypes, all layouts)`, () => {
      for (const dtype of FLOAT_DTYPES) {
        for (const [p, [sa, sb]] of SHAPE_PAIRS.entries()) {
          const rawA = valuesFor(count(sa), dtype, 200 + p, ...op.a);
          const rawB = valuesFor(count(sb), dtype, 300 + p, ...op.b);
          const casesA = inputCases(sa, dtype, rawA);
          const casesB = inputCases(sb, dtype, rawB);
          // Pair each layout of a with a layout of b (rotating so all combinations of kinds occur).
          for (let i = 0; i < Math.max(casesA.length, casesB.length); i++) {
            const A = casesA[i % casesA.length]!;
            const B = casesB[(i + p) % casesB.length]!;
            const want = binaryRef(A.values, sa, B.values, sb, op.ref);
            const y = op.fn(A.x, B.x);
            const where = `${op.name} ${dtype} ${JSON.stringify(sa)}(${A.layout}) ${JSON.stringify(sb)}(${B.layout})`;
            expect(y.shape, where).toEqual(want.shape);
            expect(y.dtype).toBe(dtype);
            try {
              assertClose(y, want.values, binaryTol(op, dtype));
            } catch (e) {
              throw new Error(`${where}: ${(e as Error).message}`);
            }
          }
        }
      }
    });

    it(`${op.name} with a number operand on either side`, () => {
      for (const dtype of FLOAT_DTYPES) {
        const x = nonContiguousTensor(valuesFor(15, dtype, 9, ...op.a), [3, 5], dtype);
        const xv = x.toFloat64Array();
        const k = op.name === 'div' ? 1.25 : op.name === 'pow' ? 2 : -1.5; // exact in every float dtype
        assertClose(op.fn(x, k), xv.map((v) => op.ref(v, k)), binaryTol(op, dtype));
        if (op.name !== 'pow') assertClose(op.fn(k, x), xv.map((v) => op.ref(k, v)), binaryTol(op, dtype));
        expect(op.fn(x, k).shape).toEqual([3, 5]);
      }
    });

    if (op.ints) {
      it(`${op.name} on integer dtypes wraps exactly`, () => {
        for (const dtype of INT_DTYPES) {
          const [lo, hi] = INT_RANGE[dtype];
          for (const [p, [sa, sb]] of SHAPE_PAIRS.slice(0, 5).entries()) {
            const casesA = inputCases(sa, dtype, valuesFor(count(sa), dtype, 40 + p, lo, hi + 1));
            const casesB = inputCases(sb, dtype, valuesFor(count(sb), dtype, 50 + p, lo, hi + 1));
            for (let i = 0; i < Math.max(casesA.length, casesB.length); i++) {
              const A = casesA[i % casesA.length]!;
              const B = casesB[(i + 1) % casesB.length]!;
              const want = binaryRef(A.values, sa, B.values, sb, (x, y) => wrapInt(op.exact!(BigInt(x), BigInt(y)), dtype));
              expect(Array.from(op.fn(A.x, B.x).toFloat64Array()), `${op.name} ${dtype} ${A.layout} ${B.layout}`).toEqual(Array.from(want.values));
            }
          }
          // A number operand takes the tensor's integer dtype.
          const x = tensor([lo, hi, 0], { dtype });
          const want = [lo, hi, 0].map((v) => wrapInt(op.exact!(BigInt(v), 3n), dtype));
          expect(Array.from(op.fn(x, 3).toFloat64Array())).toEqual(want);
        }
      });
    }
  }

  it('maximum and minimum propagate NaN from either side', () => {
    for (const dtype of FLOAT_DTYPES) {
      const a = tensor([NaN, 1, NaN, -Infinity, 2], { dtype });
      const b = tensor([1, NaN, NaN, 5, Infinity], { dtype });
      assertClose(maximum(a, b), [NaN, NaN, NaN, 5, Infinity]);
      assertClose(minimum(a, b), [NaN, NaN, NaN, -Infinity, 2]);
      assertClose(maximum(a, 0), [NaN, 1, NaN, 0, 2]);
    }
  });

  it('pow follows the IEEE / C special cases', () => {
    const base = tensor([1, 1, -1, -1, NaN, 0, 0, -8, -2, 2, 0.5], { dtype: 'float64' });
    const expo = tensor([NaN, Infinity, Infinity, -Infinity, 0, -1, 0, 1 / 3, 3, -Infinity, -Infinity], { dtype: 'float64' });
    assertClose(pow(base, expo), [1, 1, 1, 1, 1, Infinity, 1, NaN, -8, 0, Infinity]);
  });

  it('div by zero gives signed infinities and NaN', () => {
    const a = tensor([1, -1, 0, -0], { dtype: 'float32' });
    assertClose(div(a, 0), [Infinity, -Infinity, NaN, NaN]);
    expect(Object.is(div(tensor([1]), tensor([-Infinity])).item(), -0)).toBe(true);
  });

  it('computes on transposed operands of a non-square matrix', () => {
    const values = randomValues(12, 77);
    const m = tensor(values, { shape: [3, 4], dtype: 'float64' });
    const t = transpose(m);
    const want: number[] = [];
    for (let i = 0; i < 4; i++) for (let j = 0; j < 3; j++) want.push(values[j * 4 + i]! * 2 - values[j * 4 + i]!);
    assertClose(sub(mul(t, 2), t), want, TOL.float64);
  });
});

describe('siluBackward', () => {
  it('is the gradient of silu: its limits at the infinities, NaN through, large |x| without overflow', () => {
    const x = tensor([Infinity, -Infinity, NaN, 100, -100, 0, 2], { dtype: 'float64' });
    const dy = tensor([3, 3, 1, 2, 2, 5, -1], { dtype: 'float64' });
    assertClose(siluBackward(x, dy), [3, 0, NaN, 2, siluGradRef(-100, 2), 2.5, -siluGradRef(2, 1)], TOL.float64);
    for (const dtype of FLOAT_DTYPES) {
      const xs = tensor([Infinity, -Infinity, 30, -30], { dtype });
      assertClose(siluBackward(xs, tensor([2, 2, 2, 2], { dtype })), [2, 0, siluGradRef(30, 2), siluGradRef(-30, 2)], TOL[dtype]);
    }
    expect(() => siluBackward(zeros([2], { dtype: 'int32' }), zeros([2], { dtype: 'int32' }))).toThrow(/^siluBackward: integer tensors are not supported/);
  });
});

describe('geluBackward', () => {
  it('is the gradient of gelu, exact and tanh: the limits at the infinities, NaN through, the far tails', () => {
    const x = tensor([Infinity, -Infinity, NaN, 40, -40, 0, 1.5, -2], { dtype: 'float64' });
    const dy = tensor([3, 3, 1, 2, 2, 5, -1, 0.5], { dtype: 'float64' });
    for (const [approximate, ref] of [['none', geluGradRef], ['tanh', geluTanhGradRef]] as const) {
      assertClose(geluBackward(x, dy, approximate), [3, 0, NaN, 2, 0, 2.5, ref(1.5, -1), ref(-2, 0.5)], { rtol: 1e-10, atol: 0 });
    }
    expect(() => geluBackward(x, dy, 'fast' as 'tanh')).toThrow(/^geluBackward: approximate must be 'none' or 'tanh', got "fast"/);
    expect(() => geluBackward(zeros([2], { dtype: 'int32' }), zeros([2], { dtype: 'int32' }))).toThrow(/^geluBackward: integer tensors are not supported/);
  });
});

describe('siluMul', () => {
  it('is silu(gate) * up rounded once: its limits at the infinities, NaN through, large |gate| without overflow', () => {
    const gate = tensor([Infinity, -Infinity, NaN, 100, -100, 0, 2, 1], { dtype: 'float64' });
    const up = tensor([3, 3, 1, 2, 2, 5, -1, NaN], { dtype: 'float64' });
    const silu2 = 2 / (1 + Math.exp(-2));
    assertClose(siluMul(gate, up), [Infinity, 0, NaN, 200, 2 * (-100 / (1 + Math.exp(100))), 0, -silu2, NaN], TOL.float64);
    for (const dtype of FLOAT_DTYPES.filter((d) => d !== 'float64')) {
      // The one rounding: silu(gate) * up in float64, rounded to the dtype once.
      const g = tensor([0.7, -1.3, 30, -30, 5], { dtype });
      const u = tensor([1.9, 2.1, -0.5, 4, 3], { dtype });
      const want = g.toFloat64Array().map((x, i) => (x / (1 + Math.exp(-x))) * u.toFloat64Array()[i]!);
      expect(siluMul(g, u).toFloat64Array()).toEqual(tensor(want, { dtype }).toFloat64Array());
    }
    expect(() => siluMul(zeros([2], { dtype: 'int32' }), zeros([2], { dtype: 'int32' }))).toThrow(/^siluMul: integer tensors are not supported/);
  });
});

describe('elementwise errors name the op and what was wrong', () => {
  it('shape mismatch names op and both shapes', () => {
    for (const [name, fn] of [['add', add], ['sub', sub], ['mul', mul], ['div', div], ['pow', pow], ['maximum', maximum], ['minimum', minimum], ['siluBackward', siluBackward], ['siluMul', siluMul]] as const) {
      expect(() => fn(zeros([2, 3]), zeros([4]))).toThrow(`${name}: shapes [2, 3] and [4] do not broadcast (dim 1: 3 vs 4)`);
    }
  });

  it('dtype and device mismatches, integer division, unrepresentable numbers', () => {
    expect(() => add(zeros([2]), zeros([2], { dtype: 'float64' }))).toThrow(
      'add: dtypes differ (float32[2] on cpu and float64[2] on cpu); cast one operand first',
    );
    expect(() => div(zeros([2], { dtype: 'int32' }), 2)).toThrow(/^div: integer tensors are not supported \(got int32\[2\] on cpu\); cast/);
    expect(() => pow(2, zeros([2], { dtype: 'int8' }))).toThrow(/^pow: integer tensors are not supported/);
    expect(() => add(zeros([2], { dtype: 'int32' }), 1.5)).toThrow(/^add \(number operand for int32\): 1.5 is not an integer/);
    expect(() => mul(zeros([2], { dtype: 'uint8' }), 256)).toThrow(/^mul \(number operand for uint8\): 256 is outside the uint8 range \[0, 255\]/);
    expect(() => add(zeros([2], { dtype: 'int8' }), -129)).toThrow(RangeError);
    expect(() => add(1, 2)).toThrow('add: at least one operand must be a tensor');
  });

  it('non-tensor inputs and bad attributes', () => {
    expect(() => exp(3 as unknown as Tensor)).toThrow('exp: input must be a Tensor, got number');
    expect(() => add([1, 2] as unknown as Tensor, 1)).toThrow(/^add: first operand must be a Tensor or a number, got an array/);
    expect(() => sub(zeros([1]), undefined as unknown as Tensor)).toThrow('sub: second operand must be a Tensor or a number, got undefined');
    expect(() => gelu(zeros([1]), 'erf' as 'none')).toThrow(`gelu: approximate must be 'none' or 'tanh', got "erf"`);
  });

  it('disposed tensors are rejected by name', () => {
    const a = zeros([2]);
    const b = zeros([2]);
    b.dispose();
    expect(() => exp(b)).toThrow('exp: tensor float32[2] on cpu was disposed');
    expect(() => add(a, b)).toThrow('add: tensor float32[2] on cpu was disposed');
    expect(() => mul(b, 2)).toThrow('mul: tensor float32[2] on cpu was disposed');
  });
});

describe('op records follow the op contract', () => {
  let records: OpRecord[] = [];
  afterEach(() => {
    setOpObserver(null);
    records = [];
  });

  it('each unary function announces its op name, inputs, outputs and attrs', () => {
    setOpObserver((r) => records.push(r));
    const x = tensor([0.5, -0.5]);
    const named: [string, Tensor][] = [
      ['neg', neg(x)], ['abs', abs(x)], ['exp', exp(x)], ['log', log(x)], ['sqrt', sqrt(x)], ['rsqrt', rsqrt(x)],
      ['tanh', tanh(x)], ['sigmoid', sigmoid(x)], ['silu', silu(x)], ['relu', relu(x)], ['square', square(x)],
      ['reciprocal', reciprocal(x)], ['sin', sin(x)], ['cos', cos(x)], ['isFinite', isFinite(x)],
    ];
    expect(records.map((r) => r.op)).toEqual(named.map(([n]) => n));
    records.forEach((r, i) => {
      expect(r.inputs.length).toBe(1);
      expect(r.inputs[0]).toBe(x);
      expect(r.outputs.length).toBe(1);
      expect(r.outputs[0]).toBe(named[i]![1]);
      expect(r.attrs).toEqual({});
    });
    records = [];
    gelu(x);
    gelu(x, 'tanh');
    expect(records.map((r) => [r.op, r.attrs])).toEqual([['gelu', { approximate: 'none' }], ['gelu', { approximate: 'tanh' }]]);
  });

  it('binary ops record inputs already broadcast to the output shape', () => {
    const a = zeros([3, 1]);
    const b = zeros([4]);
    setOpObserver((r) => records.push(r));
    const y = sub(a, b);
    const last = records[records.length - 1]!;
    expect(last.op).toBe('sub');
    expect(last.inputs.map((t) => t.shape)).toEqual([[3, 4], [3, 4]]);
    expect(last.outputs[0]).toBe(y);
    expect(records.filter((r) => r.op === 'expand').length).toBe(2);
    records = [];
    mul(a, 2);
    expect(records.map((r) => r.op)).toEqual(['expand', 'mul']);
    expect(records[1]!.inputs[1]!.shape).toEqual([3, 1]);
  });
});

describe('erf and erfc', () => {
  // Values to 17 significant digits from an arbitrary-precision evaluation.
  const erfTable: [number, number][] = [
    [-6.5, -1], [-4, -0.9999999845827421], [-2.75, -0.99989937807788036], [-2, -0.99532226501895273],
    [-1.5, -0.96610514647531073], [-1, -0.84270079294971487], [-0.8, -0.74210096470766051],
    [-0.5, -0.52049987781304654], [-0.001, -0.0011283787909692364], [0, 0], [1e-8, 1.1283791670955126e-8],
    [0.25, 0.27632639016823693], [0.5, 0.52049987781304654], [0.79, 0.73610345382069111],
    [0.81, 0.74800328059778959], [1, 0.84270079294971487], [1.25, 0.92290012825645823],
    [1.9, 0.99279042923525747], [2.1, 0.99702053334366702], [3, 0.99997790950300141],
    [4.5, 0.99999999980338396], [5.9, 0.99999999999999993], [6.1, 0.99999999999999999],
  ];
  const erfcTable: [number, number][] = [
    [-3, 1.9999779095030014], [-1, 1.8427007929497149], [0, 1], [0.5, 0.47950012218695346],
    [0.79, 0.26389654617930889], [0.81, 0.25199671940221041], [1, 0.15729920705028513],
    [1.5, 0.033894853524689273], [2, 0.0046777349810472658], [3, 2.2090496998585441e-5],
    [5, 1.5374597944280349e-12], [8, 1.1224297172982927e-29], [12, 1.3562611692059042e-64],
    [20, 5.3958656116079009e-176], [26, 5.6631924088561428e-296],
  ];

  it('are accurate to ~1e-15 relative, erfc also deep in its tail', () => {
    for (const [x, want] of erfTable) expect(Math.abs(erf(x) - want), `erf(${x})`).toBeLessThanOrEqual(2e-15 * Math.abs(want));
    // erfc(x) depends on e^(-x^2): its relative error grows like x^2 ulps beyond x ~ 4.
    for (const [x, want] of erfcTable) {
      expect(Math.abs(erfc(x) - want), `erfc(${x})`).toBeLessThanOrEqual(Math.max(2e-15, x * x * 2e-16) * Math.abs(want));
    }
  });

  it('agree with an independent series on a dense grid, are odd, and sum to one', () => {
    for (let i = -300; i <= 300; i++) {
      const x = i / 100;
      // The alternating series loses digits to cancellation beyond |x| = 2; the table covers that range.
      if (Math.abs(x) <= 2) expect(Math.abs(erf(x) - erfTaylor(x)), `erf(${x})`).toBeLessThanOrEqual(3e-15 * Math.abs(erfTaylor(x)));
      expect(erf(-x)).toBe(-erf(x));
      expect(Math.abs(erf(x) + erfc(x) - 1)).toBeLessThanOrEqual(1e-15);
    }
    expect(erf(Infinity)).toBe(1);
    expect(erf(-Infinity)).toBe(-1);
    expect(erfc(Infinity)).toBe(0);
    expect(erfc(-Infinity)).toBe(2);
    expect(erf(NaN)).toBeNaN();
    expect(erfc(NaN)).toBeNaN();
    expect(erfc(27.5)).toBe(0);
  });
});
