// Unary and binary elementwise kernels on cuda: every op, every dtype it takes, dense,
// strided, transposed and broadcast inputs, against float64 references and the CPU.
import { expand, isFloatDType, type DType, type Tensor } from '@blora/tensor';
import { describe, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { checkOp, erf, FLOAT_DTYPES, INT_DTYPES, LAYOUTS, makeTensor, roundTo, toleranceFor, valuesFor, wrapInt, type Layout } from './helpers.js';

function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

function gelu(x: number): number {
  if (!Number.isFinite(x)) return x === -Infinity ? -0 : x;
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

function geluTanh(x: number): number {
  if (!Number.isFinite(x)) return x === -Infinity ? -0 : x;
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** Float64 references of the unary ops, with the input range that exercises them. */
const UNARY: Record<string, { f: (x: number) => number; low: number; high: number }> = {
  neg: { f: (x) => -x, low: -3, high: 3 },
  abs: { f: Math.abs, low: -3, high: 3 },
  exp: { f: Math.exp, low: -5, high: 5 },
  log: { f: Math.log, low: 0.01, high: 5 },
  sqrt: { f: Math.sqrt, low: 0, high: 9 },
  rsqrt: { f: (x) => 1 / Math.sqrt(x), low: 0.05, high: 9 },
  tanh: { f: Math.tanh, low: -4, high: 4 },
  sigmoid: { f: sigmoid, low: -12, high: 12 },
  silu: { f: (x) => (x === -Infinity ? -0 : x * sigmoid(x)), low: -8, high: 8 },
  relu: { f: (x) => (x <= 0 ? 0 : x), low: -3, high: 3 },
  square: { f: (x) => x * x, low: -3, high: 3 },
  reciprocal: { f: (x) => 1 / x, low: 0.1, high: 4 },
  sin: { f: Math.sin, low: -6, high: 6 },
  cos: { f: Math.cos, low: -6, high: 6 },
};

const SPECIALS = [NaN, Infinity, -Infinity, 0, -0, 1, -1];

describe.skipIf(!cudaAvailable())('unary kernels on cuda', () => {
  it('match float64 references for every float dtype and layout', () => {
    for (const [op, { f, low, high }] of Object.entries(UNARY)) {
      for (const dtype of FLOAT_DTYPES) {
        for (const layout of LAYOUTS) {
          const x = roundTo(valuesFor(dtype, 5 * 37, op.length, low, high), dtype);
          checkOp({ op, inputs: (d) => [makeTensor(x, [5, 37], dtype, d, layout)], shape: [5, 37], dtype, expected: Array.from(x, f) });
        }
      }
    }
  });

  it('handle NaN, infinities and signed zeros like the references', () => {
    for (const [op, { f }] of Object.entries(UNARY)) {
      for (const dtype of FLOAT_DTYPES) {
        checkOp({ op, inputs: (d) => [makeTensor(SPECIALS, [7], dtype, d, 'contiguous')], shape: [7], dtype, expected: SPECIALS.map(f) });
      }
    }
  });

  it('gelu: exact and tanh forms, on every float dtype', () => {
    for (const [approximate, f] of [['none', gelu], ['tanh', geluTanh]] as const) {
      for (const dtype of FLOAT_DTYPES) {
        for (const layout of LAYOUTS) {
          const x = [...roundTo(valuesFor(dtype, 3 * 41, 9, -3, 3), dtype), ...SPECIALS];
          const tol = dtype === 'float64' ? { rtol: 1e-10, atol: 1e-12 } : toleranceFor(dtype);
          checkOp({
            op: 'gelu', inputs: (d) => [makeTensor(x, [x.length], dtype, d, layout === 'transposed' ? 'strided' : layout)],
            shape: [x.length], dtype, attrs: { approximate }, expected: x.map(f), tolerance: tol,
          });
        }
      }
    }
  });

  it('neg, abs, relu and square take integers and wrap like the dtype', () => {
    const edges: Record<string, number[]> = {
      int32: [0, 1, -1, 2147483647, -2147483648, 46341, -65536, 100000],
      int8: [0, 1, -1, 127, -128, 12, -12, 16],
      uint8: [0, 1, 255, 128, 16, 17, 200, 3],
    };
    const ops: Record<string, (x: number, dtype: DType) => number> = {
      neg: (x, t) => wrapInt(-x, t),
      abs: (x, t) => wrapInt(Math.abs(x), t),
      relu: (x) => (x <= 0 ? 0 : x),
      square: (x, t) => (t === 'int32' ? Math.imul(x, x) : wrapInt(x * x, t)),
    };
    for (const [op, f] of Object.entries(ops)) {
      for (const dtype of INT_DTYPES) {
        const x = [...edges[dtype]!, ...valuesFor(dtype, 29, 3)];
        for (const layout of ['contiguous', 'strided'] as Layout[]) {
          checkOp({ op, inputs: (d) => [makeTensor(x, [x.length], dtype, d, layout)], shape: [x.length], dtype, expected: x.map((v) => f(v, dtype)) });
        }
      }
    }
  });
});

/** pow with C99's special cases, which the CPU and CUDA share. */
function powC(x: number, y: number): number {
  if (x === 1 || (x === -1 && Math.abs(y) === Infinity)) return 1;
  return Math.pow(x, y);
}

/** dy times the exact gelu's derivative at x, Phi(x) + x phi(x) (its limits at the infinities). */
function geluGrad(x: number, dy: number): number {
  if (x === Infinity) return dy;
  if (x === -Infinity) return dy * 0;
  return dy * (0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI));
}

/** dy times the tanh gelu's derivative at x, 0.5 (1 + t) + 0.5 x (1 - t^2) u' (its limits at the infinities). */
function geluTanhGrad(x: number, dy: number): number {
  if (x === Infinity) return dy;
  if (x === -Infinity) return dy * 0;
  const k = Math.sqrt(2 / Math.PI);
  const t = Math.tanh(k * (x + 0.044715 * x ** 3));
  return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x));
}

/** dy times silu's derivative at x (its limits at the infinities), as the CPU computes it. */
function siluGrad(x: number, dy: number): number {
  if (x === Infinity) return dy;
  if (x === -Infinity) return dy * 0;
  const s = 1 / (1 + Math.exp(-x));
  return dy * s * (1 + x * (1 - s));
}

const BINARY: Record<string, { f: (a: number, b: number) => number; a: [number, number]; b: [number, number] }> = {
  add: { f: (a, b) => a + b, a: [-3, 3], b: [-3, 3] },
  sub: { f: (a, b) => a - b, a: [-3, 3], b: [-3, 3] },
  mul: { f: (a, b) => a * b, a: [-3, 3], b: [-3, 3] },
  div: { f: (a, b) => a / b, a: [-3, 3], b: [0.25, 3] },
  pow: { f: powC, a: [0.1, 3], b: [-2.5, 2.5] },
  maximum: { f: Math.max, a: [-3, 3], b: [-3, 3] },
  minimum: { f: Math.min, a: [-3, 3], b: [-3, 3] },
  siluBackward: { f: siluGrad, a: [-8, 8], b: [-3, 3] },
  siluMul: { f: (a, b) => (a === -Infinity ? -0 : a / (1 + Math.exp(-a))) * b, a: [-8, 8], b: [-3, 3] },
  geluBackward: { f: geluGrad, a: [-3, 3], b: [-3, 3] },
  geluTanhBackward: { f: geluTanhGrad, a: [-3, 3], b: [-3, 3] },
};

/** Operand pairs [a, b] of shape [m, n]: layouts and broadcasts (from [1, n], [m, 1] or a scalar). */
type Pairing = { a: Layout | 'row' | 'column' | 'scalar'; b: Layout | 'row' | 'column' | 'scalar' };
const PAIRINGS: Pairing[] = [
  { a: 'contiguous', b: 'contiguous' },
  { a: 'strided', b: 'transposed' },
  { a: 'transposed', b: 'row' },
  { a: 'column', b: 'strided' },
  { a: 'scalar', b: 'contiguous' },
  { a: 'contiguous', b: 'scalar' },
];

/** An [m, n] operand: its full row-major values and a builder of the (possibly broadcast) tensor. */
function operand(kind: Pairing['a'], m: number, n: number, dtype: DType, seed: number, range: [number, number]) {
  const shape = kind === 'row' ? [1, n] : kind === 'column' ? [m, 1] : kind === 'scalar' ? [] : [m, n];
  const own = roundTo(valuesFor(dtype, shape.reduce((p, d) => p * d, 1), seed, range[0], range[1]), dtype);
  const full = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) full[i * n + j] = own[kind === 'row' ? j : kind === 'column' ? i : kind === 'scalar' ? 0 : i * n + j]!;
  }
  const build = (device: string): Tensor => {
    if (kind === 'row' || kind === 'column' || kind === 'scalar') return expand(makeTensor(own, shape, dtype, device, 'contiguous'), [m, n]);
    return makeTensor(own, shape, dtype, device, kind);
  };
  return { full, build };
}

describe.skipIf(!cudaAvailable())('binary kernels on cuda', () => {
  it('match float64 references for every float dtype, layout and broadcast', () => {
    const [m, n] = [6, 19];
    for (const [op, { f, a: ra, b: rb }] of Object.entries(BINARY)) {
      for (const dtype of FLOAT_DTYPES) {
        PAIRINGS.forEach((p, k) => {
          const a = operand(p.a, m, n, dtype, 3 + k, ra);
          const b = operand(p.b, m, n, dtype, 50 + k, rb);
          const expected = Array.from(a.full, (x, i) => f(x, b.full[i]!));
          checkOp({ op, inputs: (d) => [a.build(d), b.build(d)], shape: [m, n], dtype, expected });
        });
      }
    }
  });

  it('follow the CPU on NaN, infinities, signed zeros and pow special cases', () => {
    const xs = [NaN, 1, -1, Infinity, -Infinity, 0, -0, 2, -2, 0.5];
    const a: number[] = [];
    const b: number[] = [];
    for (const x of xs) for (const y of xs) { a.push(x); b.push(y); }
    for (const [op, { f }] of Object.entries(BINARY)) {
      for (const dtype of FLOAT_DTYPES) {
        checkOp({
          op, inputs: (d) => [makeTensor(a, [a.length], dtype, d, 'contiguous'), makeTensor(b, [b.length], dtype, d, 'strided')],
          shape: [a.length], dtype, expected: a.map((x, i) => f(x, b[i]!)),
        });
      }
    }
  });

  it('add, sub, mul, maximum and minimum wrap on integer dtypes', () => {
    const ops: Record<string, (x: number, y: number, t: DType) => number> = {
      add: (x, y, t) => wrapInt(x + y, t),
      sub: (x, y, t) => wrapInt(x - y, t),
      mul: (x, y, t) => (t === 'int32' ? Math.imul(x, y) : wrapInt(x * y, t)),
      maximum: (x, y) => Math.max(x, y),
      minimum: (x, y) => Math.min(x, y),
    };
    const edges: Record<string, number[]> = {
      int32: [2147483647, -2147483648, 123456789, -987654321, 65536, 46341],
      int8: [127, -128, 100, -100, 16, -3],
      uint8: [255, 0, 128, 200, 16, 3],
    };
    for (const [op, f] of Object.entries(ops)) {
      for (const dtype of INT_DTYPES) {
        const a = [...edges[dtype]!, ...valuesFor(dtype, 31, 8)];
        const b = [...[...edges[dtype]!].reverse(), ...valuesFor(dtype, 31, 9)];
        checkOp({
          op, inputs: (d) => [makeTensor(a, [a.length], dtype, d, 'strided'), makeTensor(b, [b.length], dtype, d, 'contiguous')],
          shape: [a.length], dtype, expected: a.map((x, i) => f(x, b[i]!, dtype)),
        });
      }
    }
  });

  it('broadcast over rank 4 with mixed strides', () => {
    for (const dtype of ['float32', 'bfloat16', 'int32'] as DType[]) {
      const shape = [3, 1, 5, 4];
      const target = [3, 7, 5, 4];
      const av = roundTo(valuesFor(dtype, 60, 21), dtype);
      const bv = roundTo(valuesFor(dtype, 7 * 4, 22), dtype);
      const expected: number[] = [];
      for (let i = 0; i < 3; i++) for (let j = 0; j < 7; j++) for (let k = 0; k < 5; k++) for (let l = 0; l < 4; l++) {
        const x = av[i * 20 + k * 4 + l]!;
        const y = bv[j * 4 + l]!;
        expected.push(isFloatDType(dtype) ? x + y : wrapInt(x + y, dtype));
      }
      checkOp({
        op: 'add',
        inputs: (d) => [expand(makeTensor(av, shape, dtype, d, 'strided'), target), expand(makeTensor(bv, [7, 1, 4], dtype, d, 'contiguous'), target)],
        shape: target, dtype, expected,
      });
    }
  });
});
