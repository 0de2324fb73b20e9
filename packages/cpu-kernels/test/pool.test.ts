import { describe, expect, it } from 'vitest';
import { avgPool1d, repeatInterleave, tensor } from '@blora/tensor';
import { nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import { cpuKernelsInfo } from '../src/index.js';
import { loadAddon } from '../src/native.js';
import { expectClose, inEveryMode, NATIVE } from './helpers.js';

function avgPoolReference(values: ArrayLike<number>, k: number): Float64Array {
  const out = new Float64Array(values.length / k);
  for (let o = 0; o < out.length; o++) {
    let s = 0;
    for (let j = 0; j < k; j++) s += values[o * k + j]!;
    out[o] = s / k;
  }
  return out;
}

/** Reference repeatInterleave of row-major `values` of `shape` along `axis`. */
function repeatReference(values: ArrayLike<number>, shape: readonly number[], repeats: number, axis: number): Float64Array {
  let inner = 1;
  for (let d = axis + 1; d < shape.length; d++) inner *= shape[d]!;
  const blocks = inner === 0 ? 0 : values.length / inner;
  const out = new Float64Array(values.length * repeats);
  let p = 0;
  for (let b = 0; b < blocks; b++) for (let r = 0; r < repeats; r++) for (let i = 0; i < inner; i++) out[p++] = values[b * inner + i]!;
  return out;
}

describe('avgPool1d float32', () => {
  const cases: [number[], number][] = [[[2, 12], 3], [[4, 6], 2], [[3, 64], 64], [[5, 40], 10], [[7, 9], 1], [[2, 3, 16], 8], [[300, 256], 32], [[0, 8], 4]];

  it('matches the reference for every kernel size (short, vector-wide, with tails, threaded)', () => {
    for (const [shape, k] of cases) {
      const values = Float32Array.from(randomValues(shape.reduce((p, d) => p * d, 1), k + shape[0]!, -4, 4));
      const x = tensor(values, { shape });
      const expected = avgPoolReference(values, k);
      inEveryMode(() => {
        const y = avgPool1d(x, k);
        expect(y.shape).toEqual([...shape.slice(0, -1), shape[shape.length - 1]! / k]);
        expectClose(y, expected, { rtol: 2e-6, atol: 2e-6 });
      });
    }
  });

  it('the mean of equal values is exact', () => {
    inEveryMode(() => expectClose(avgPool1d(tensor(new Float32Array(96).fill(0.1), { shape: [2, 48] }), 48), [Math.fround(0.1), Math.fround(0.1)], { rtol: 0, atol: 0 }));
  });

  it('strided inputs and other dtypes run the TypeScript kernel', () => {
    const values = randomValues(4 * 12, 51);
    const expected = avgPoolReference(values, 4);
    inEveryMode(() => {
      expectClose(avgPool1d(nonContiguousTensor(values, [4, 12]), 4), expected, { rtol: 1e-6, atol: 1e-6 });
      expectClose(avgPool1d(tensor(values, { shape: [4, 12], dtype: 'float64' }), 4), expected, { rtol: 1e-14, atol: 1e-15 });
      expectClose(avgPool1d(tensor(values, { shape: [4, 12], dtype: 'bfloat16' }), 4), expected, { rtol: 2e-2, atol: 1e-2 });
    });
  });
});

describe('repeatInterleave float32', () => {
  const cases: [number[], number, number][] = [
    [[5], 3, 0], [[3, 4], 2, 0], [[3, 4], 2, 1], [[2, 3, 4], 3, 1], [[2, 3, 4], 1, 2], [[2, 3], 0, 1], [[300, 300], 2, 1], [[300, 300], 2, 0], [[0, 3], 2, 1],
  ];

  it('matches the reference along every axis (exact copies)', () => {
    for (const [shape, repeats, axis] of cases) {
      const values = Float32Array.from(randomValues(shape.reduce((p, d) => p * d, 1), repeats + 7 * axis));
      const x = tensor(values, { shape });
      const expected = repeatReference(values, shape, repeats, axis);
      inEveryMode(() => {
        const y = repeatInterleave(x, repeats, axis);
        expect(y.shape).toEqual(shape.map((d, i) => (i === axis ? d * repeats : d)));
        expectClose(y, expected, { rtol: 0, atol: 0 });
      });
    }
  });

  it('strided inputs and other dtypes run the TypeScript kernel', () => {
    const values = randomValues(3 * 5, 61);
    const expected = repeatReference(values, [3, 5], 2, 1);
    inEveryMode(() => {
      expectClose(repeatInterleave(nonContiguousTensor(values, [3, 5]), 2), Float32Array.from(expected), { rtol: 0, atol: 0 });
      expectClose(repeatInterleave(tensor(values, { shape: [3, 5], dtype: 'float64' }), 2), expected, { rtol: 0, atol: 0 });
      const ints = tensor([1, 2, 3], { dtype: 'int32' });
      expect(Array.from(repeatInterleave(ints, 2).toTypedArray())).toEqual([1, 1, 2, 2, 3, 3]);
    });
  });
});

describe.skipIf(!NATIVE)('native pooling kernels', () => {
  it('are registered and reject bad arguments', () => {
    const info = cpuKernelsInfo();
    expect(info.native && info.ops).toEqual(expect.arrayContaining(['avgPool1d', 'repeatInterleave']));
    const result = loadAddon();
    if (!result.addon) throw new Error(result.reason);
    const x = new Float32Array(8);
    expect(() => result.addon.avgPool1dF32(x, 0, x, 0, 3, 3)).toThrow(/avgPool1dF32: x reaches elements \[0, 8\] outside its storage of 8/);
    expect(() => result.addon.avgPool1dF32(x, 0, x, 0, 1, 0)).toThrow(/k must be >= 1/);
    expect(() => result.addon.repeatInterleaveF32(x, 0, x, 0, 2, 2, 3)).toThrow(/repeatInterleaveF32: out reaches/);
  });
});
