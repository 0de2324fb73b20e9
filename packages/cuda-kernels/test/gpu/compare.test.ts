// Comparisons, where, clamp and isFinite on cuda, for every dtype, against plain-loop
// references and the CPU.
import { expand, isFloatDType, type DType } from '@blora/tensor';
import { describe, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { ALL_DTYPES, checkOp, FLOAT_DTYPES, makeTensor, roundTo, valuesFor } from './helpers.js';

const COMPARISONS: Record<string, (a: number, b: number) => boolean> = {
  eq: (a, b) => a === b,
  ne: (a, b) => a !== b,
  lt: (a, b) => a < b,
  le: (a, b) => a <= b,
  gt: (a, b) => a > b,
  ge: (a, b) => a >= b,
};

/** Values drawn from a small set so that equal pairs are common; NaN and infinities for floats. */
function pool(dtype: DType, n: number, seed: number): Float64Array {
  const choices = isFloatDType(dtype) ? [-1.5, 0, -0, 2, 2.25, NaN, Infinity, -Infinity] : dtype === 'uint8' ? [0, 1, 7, 255] : [-128, -1, 0, 7, 127];
  return Float64Array.from(valuesFor('float64', n, seed, 0, choices.length), (v) => choices[Math.floor(v)]!);
}

describe.skipIf(!cudaAvailable())('comparison kernels on cuda', () => {
  it('give uint8 0/1 for every dtype, layout and broadcast, with IEEE NaN rules', () => {
    for (const [op, f] of Object.entries(COMPARISONS)) {
      for (const dtype of ALL_DTYPES) {
        const a = roundTo(pool(dtype, 7 * 11, 1), dtype);
        const b = roundTo(pool(dtype, 7 * 11, 2), dtype);
        const row = roundTo(pool(dtype, 11, 3), dtype);
        checkOp({
          op, inputs: (d) => [makeTensor(a, [7, 11], dtype, d, 'transposed'), makeTensor(b, [7, 11], dtype, d, 'strided')],
          shape: [7, 11], dtype: 'uint8', expected: Array.from(a, (x, i) => (f(x, b[i]!) ? 1 : 0)),
        });
        checkOp({
          op, inputs: (d) => [makeTensor(a, [7, 11], dtype, d, 'contiguous'), expand(makeTensor(row, [1, 11], dtype, d, 'contiguous'), [7, 11])],
          shape: [7, 11], dtype: 'uint8', expected: Array.from(a, (x, i) => (f(x, row[i % 11]!) ? 1 : 0)),
        });
      }
    }
  });
});

describe.skipIf(!cudaAvailable())('where on cuda', () => {
  it('selects elements of every dtype exactly, with broadcast condition and operands', () => {
    const [m, n] = [9, 13];
    const cond = Float64Array.from(valuesFor('float64', m, 4, 0, 3), (v) => [0, 1, 5][Math.floor(v)]!);
    for (const dtype of ALL_DTYPES) {
      const a = roundTo(valuesFor(dtype, m * n, 5), dtype);
      const b = roundTo(valuesFor(dtype, 1, 6), dtype);
      const expected = Array.from({ length: m * n }, (_, i) => (cond[Math.floor(i / n)] !== 0 ? a[i]! : b[0]!));
      checkOp({
        op: 'where',
        inputs: (d) => [
          expand(makeTensor(cond, [m, 1], 'uint8', d, 'contiguous'), [m, n]),
          makeTensor(a, [m, n], dtype, d, 'strided'),
          expand(makeTensor(b, [], dtype, d, 'contiguous'), [m, n]),
        ],
        shape: [m, n], dtype, expected, tolerance: { rtol: 0, atol: 0 },
      });
    }
  });
});

describe.skipIf(!cudaAvailable())('clamp on cuda', () => {
  const clampRef = (v: number, lo: number | null, hi: number | null): number => {
    let r = v;
    if (lo !== null && r < lo) r = lo;
    if (hi !== null && r > hi) r = hi;
    return r;
  };

  it('clamps with either bound, both, or crossed bounds; NaN stays NaN', () => {
    for (const dtype of ALL_DTYPES) {
      const float = isFloatDType(dtype);
      const x = roundTo([...valuesFor(dtype, 40, 7, -3, 3), ...(float ? [NaN, Infinity, -Infinity] : [])], dtype);
      const bounds: [number | null, number | null][] = float
        ? [[-1.3, null], [null, 0.7], [-0.5, 0.5], [1, -1], [-Infinity, 1.1]]
        : dtype === 'uint8' ? [[10, null], [null, 100], [20, 200], [150, 50]] : [[-20, null], [null, 30], [-5, 5], [10, -10]];
      for (const [min, max] of bounds) {
        checkOp({
          op: 'clamp', inputs: (d) => [makeTensor(x, [x.length], dtype, d, 'strided')], shape: [x.length], dtype,
          attrs: { min, max }, expected: roundTo(Array.from(x, (v) => clampRef(v, min, max)), dtype), tolerance: { rtol: 0, atol: 0 },
        });
      }
    }
  });
});

describe.skipIf(!cudaAvailable())('isFinite on cuda', () => {
  it('marks finite elements with 1 for float dtypes and every element of integer dtypes', () => {
    for (const dtype of ALL_DTYPES) {
      const raw = isFloatDType(dtype) ? [0, -0, 1.5, NaN, Infinity, -Infinity, 1e30, -7] : [0, 1, -1, 100];
      const x = roundTo(raw, dtype);
      checkOp({
        op: 'isFinite', inputs: (d) => [makeTensor(x, [x.length], dtype, d, 'strided')], shape: [x.length], dtype: 'uint8',
        expected: Array.from(x, (v) => (Number.isFinite(v) ? 1 : 0)),
      });
    }
    for (const dtype of FLOAT_DTYPES) {
      const x = roundTo([...valuesFor(dtype, 25, 3, -1e5, 1e5), NaN], dtype);
      checkOp({
        op: 'isFinite', inputs: (d) => [makeTensor(x, [2, 13], dtype, d, 'transposed')], shape: [2, 13], dtype: 'uint8',
        expected: Array.from(x, (v) => (Number.isFinite(v) ? 1 : 0)),
      });
    }
  });
});
