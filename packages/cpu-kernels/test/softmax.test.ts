import { describe, expect, it } from 'vitest';
import { logSoftmax, softmax, tensor, transpose } from '@blora/tensor';
import { nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import { configureCpuKernels, cpuKernelsInfo } from '../src/index.js';
import { loadAddon } from '../src/native.js';
import { expectClose, inEveryMode, ISAS, NATIVE } from './helpers.js';

/** Float64 softmax (or log-softmax) of each contiguous row of length n. */
function reference(values: ArrayLike<number>, n: number, log: boolean): Float64Array {
  const out = new Float64Array(values.length);
  for (let base = 0; base < values.length; base += n) {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, values[base + j]!);
    let s = 0;
    for (let j = 0; j < n; j++) s += Math.exp(values[base + j]! - m);
    for (let j = 0; j < n; j++) {
      const z = values[base + j]! - m;
      out[base + j] = log ? z - Math.log(s) : Math.exp(z) / s;
    }
  }
  return out;
}

// Subnormal results may differ by a few units of the smallest subnormal.
const TOL = { rtol: 1e-5, atol: 1e-40 };
const SHAPES: readonly number[][] = [[1], [3], [8], [5, 8], [4, 17], [3, 1000], [2, 3, 33], [70, 1000], [0, 5], [4, 0]];

describe.each([false, true])('softmax float32 (log = %s)', (log) => {
  const op = log ? logSoftmax : softmax;

  it('matches the reference over the last axis for every shape', () => {
    for (const shape of SHAPES) {
      const n = shape[shape.length - 1]!;
      const values = Float32Array.from(randomValues(shape.reduce((p, d) => p * d, 1), n + shape.length, -8, 8));
      const x = tensor(values, { shape });
      const expected = n === 0 ? new Float64Array(0) : reference(values, n, log);
      inEveryMode(() => {
        expectClose(op(x), expected, TOL);
        expectClose(op(x, -1), expected, TOL);
      });
    }
  });

  it('0-d input, wide value ranges and special values', () => {
    const rows = [
      [0, -30, -60, -90, -100.5], // results down to the subnormal range
      [1e30, 1e30, -1e30],
      [-Infinity, 0, 1],
      [-Infinity, -Infinity, -Infinity],
      [Number.NaN, 1, 2],
      [Infinity, 0, 1],
      [80, 88, 88.5],
    ];
    inEveryMode(() => {
      expectClose(op(tensor(3.5)), [log ? 0 : 1], TOL);
      for (const row of rows) {
        const values = Float32Array.from(row);
        expectClose(op(tensor(values)), reference(values, values.length, log), TOL);
      }
    });
  });

  it('other axes, strided inputs and other dtypes run the TypeScript kernel', () => {
    const values = randomValues(6 * 7, 41, -4, 4);
    const byRow = reference(values, 7, log);
    const columns = transpose(tensor(values, { shape: [6, 7] }), 0, 1); // [7, 6]: softmax over axis 0
    const expectedColumns = new Float64Array(42);
    for (let i = 0; i < 6; i++) for (let j = 0; j < 7; j++) expectedColumns[j * 6 + i] = byRow[i * 7 + j]!;
    inEveryMode(() => {
      expectClose(op(columns, 0), expectedColumns, { rtol: 1e-5, atol: 1e-7 });
      expectClose(op(nonContiguousTensor(values, [6, 7])), byRow, { rtol: 1e-5, atol: 1e-7 });
      expectClose(op(tensor(values, { shape: [6, 7], dtype: 'float64' })), byRow, { rtol: 1e-12, atol: 1e-14 });
      expectClose(op(tensor(values, { shape: [6, 7], dtype: 'float16' })), byRow, { rtol: 5e-3, atol: 5e-3 });
    });
  });
});

/** Distance between a float32 result and the exact value, in units of the float32 spacing there. */
function ulpError(actual: number, exact: number): number {
  const rounded = Math.fround(exact);
  const bits = new Float32Array([Math.abs(rounded)]);
  const next = new Uint32Array(bits.buffer);
  const here = bits[0]!;
  next[0]! += 1;
  return Math.abs(actual - exact) / Math.max(bits[0]! - here, 2 ** -149);
}

describe.skipIf(!NATIVE)('native exp approximation', () => {
  const result = loadAddon();

  it.each(ISAS.length ? ISAS : ['auto' as const])('is within 2 ulp over the whole float range (isa %s)', (isa) => {
    if (!result.addon) throw new Error(result.reason);
    const before = cpuKernelsInfo();
    configureCpuKernels({ isa });
    try {
      const n = 200_000;
      const x = new Float32Array(n);
      for (let i = 0; i < n; i++) x[i] = -104 + (193 * i) / n; // [-104, 89)
      const out = new Float32Array(n);
      result.addon.expF32(x, out);
      let worst = 0;
      for (let i = 0; i < n; i++) {
        const exact = Math.exp(x[i]!);
        if (Math.fround(exact) === Infinity) expect(out[i]).toBe(Infinity);
        else worst = Math.max(worst, ulpError(out[i]!, exact));
      }
      expect(worst).toBeLessThanOrEqual(2);
      const special = Float32Array.from([Number.NaN, Infinity, -Infinity, 0, -0, 89, -104, -200, 88.72, -87.4, 1e-30]);
      const got = new Float32Array(special.length);
      result.addon.expF32(special, got);
      expect(Array.from(got.subarray(0, 8))).toEqual([Number.NaN, Infinity, 0, 1, 1, Infinity, 0, 0]);
      for (let i = 8; i < special.length; i++) expect(ulpError(got[i]!, Math.exp(special[i]!))).toBeLessThanOrEqual(2);
    } finally {
      if (before.native) configureCpuKernels({ isa: 'auto', threads: before.threads });
    }
  });

  it.skipIf(!ISAS.includes('avx512') || !ISAS.includes('avx2'))('gives the same bits with AVX-512 as with AVX2', () => {
    if (!result.addon) throw new Error(result.reason);
    const before = cpuKernelsInfo();
    const x = Float32Array.from({ length: 20_003 }, (_, i) => -110 + (205 * i) / 20_003);
    const run = (isa: 'avx512' | 'avx2') => {
      configureCpuKernels({ isa });
      const out = new Float32Array(x.length);
      result.addon!.expF32(x, out);
      return out;
    };
    try {
      expect(run('avx512')).toEqual(run('avx2'));
    } finally {
      if (before.native) configureCpuKernels({ isa: 'auto', threads: before.threads });
    }
  });

  it('is registered for softmax and logSoftmax, and rejects bad arguments', () => {
    if (!result.addon) throw new Error(result.reason);
    const info = cpuKernelsInfo();
    expect(info.native && info.ops).toEqual(expect.arrayContaining(['softmax', 'logSoftmax']));
    const x = new Float32Array(6);
    expect(() => result.addon.softmaxF32(x, 0, x, 0, 2, 4, false)).toThrow(/softmaxF32: x reaches elements \[0, 7\] outside its storage of 6/);
    expect(() => result.addon.expF32(x, new Float32Array(5))).toThrow(/same length/);
  });
});

