// Int8 activations for the 4-bit matrix-vector products (configureCpuKernels({ quantActivations:
// 'int8' })): checked against float64 references that round x (and the NF4 table) exactly as
// documented, against the documented error bound, and for every case that must stay float32.
import { afterEach, describe, expect, it } from 'vitest';
import { expand, slice, tensor, type Tensor } from '@blora/tensor';
import { randomValues } from '@blora/tensor/testing';
import { NF4_CODE, intMatmul, intMatmulT, nf4Matmul, nf4MatmulT } from '@blora/quant';
import { configureCpuKernels, cpuKernelsInfo } from '../src/index.js';
import { settingsFromEnv } from '../src/native.js';
import { expectClose, inEveryMode, matmulTolerance, NATIVE } from './helpers.js';
import { fourBitWeight, intWeight, reference } from './quant-weights.js';

/** v rounded to the nearest integer, ties to even (the rounding of the default FP mode). */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Row-major float32 activations rounded to int8 per block of 32 as the kernels do:
 * scale = max |x| / 127 and q = round(x * (127 / max |x|)), in float32 arithmetic. Returns
 * scale * q per value.
 */
function roundActivations(x: Float64Array, rows: number, k: number): Float64Array {
  const out = new Float64Array(rows * k);
  for (let i = 0; i < rows; i++) {
    for (let b = 0; b < k; b += 32) {
      let amax = 0;
      for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(x[i * k + j]!));
      const scale = Math.fround(amax / 127);
      const inverse = amax > 0 ? Math.fround(127 / amax) : 0;
      for (let j = b; j < b + 32; j++) out[i * k + j] = scale * roundHalfEven(Math.fround(x[i * k + j]! * inverse));
    }
  }
  return out;
}

/** The NF4 / FP4 table rounded to int8 levels, times their scale: round(127 v / max |v|) * max |v| / 127. */
function roundTable(table: Float32Array): Float64Array {
  const tmax = Math.max(...Array.from(table, Math.abs));
  const scale = Math.fround(tmax / 127);
  return Float64Array.from(table, (v) => scale * roundHalfEven(Math.fround(127 * Math.fround(v / tmax))));
}

/** Activations [rows, k] as float32 values (the kernels' inputs), and in a given layout. */
function activations(rows: number, k: number, seed: number, layout: 'dense' | 'rows-apart' | 'broadcast' = 'dense') {
  let values = Float64Array.from(randomValues(rows * k, seed), Math.fround);
  let x: Tensor;
  if (layout === 'broadcast') {
    values = values.map((_, i) => values[i % k]!);
    x = expand(tensor(values.subarray(0, k), { shape: [1, k], dtype: 'float32' }), [rows, k]);
  } else if (layout === 'rows-apart') {
    const wide = new Float64Array(rows * (k + 5)).fill(Number.NaN);
    for (let i = 0; i < rows; i++) for (let c = 0; c < k; c++) wide[i * (k + 5) + c] = values[i * k + c]!;
    x = slice(tensor(wide, { shape: [rows, k + 5], dtype: 'float32' }), 1, 0, k);
  } else {
    x = tensor(values, { shape: [rows, k], dtype: 'float32' });
  }
  return { x, values };
}

/** Runs `check` with int8 activations switched on (in every mode), then switches them off again. */
function withInt8(check: () => void): void {
  configureCpuKernels({ quantActivations: 'int8' });
  try {
    inEveryMode(check);
  } finally {
    configureCpuKernels({ quantActivations: 'float32' });
  }
}

/** The float32 rounding of sums of `terms` products: relative 1e-5 of their magnitude. */
function sumTolerance(magnitude: number) {
  return { rtol: 1e-5, atol: 1e-5 * magnitude };
}

let seed = 700;

afterEach(() => {
  if (NATIVE) configureCpuKernels({ quantActivations: 'float32' });
});

describe.skipIf(!NATIVE)('int8 activations', () => {
  // Widths that are multiples of 128 take the int8 loops on every instruction set.
  it('INT4: match x rounded per block of 32, for blocks of 32 to 512, float32 and float16 parameters, 1 to 32 rows', () => {
    // Blocks of 512 span several chunks of the single-row loop (one scale per chunk).
    for (const [outF, inF, blockRows, blockCols] of [[37, 128, 1, 32], [20, 384, 2, 64], [9, 384, 1, 96], [16, 1024, 4, 128], [5, 1024, 1, 256], [8, 1024, 1, 512]] as const) {
      for (const paramDType of ['float32', 'float16'] as const) {
        const w = intWeight(4, outF, inF, blockRows, blockCols, paramDType, seed++);
        // More than 8 rows are taken 8 at a time.
        for (const rows of [1, 2, 3, 5, 8, 13, 32]) {
          const { x, values } = activations(rows, inF, seed++, rows === 3 ? 'rows-apart' : rows === 5 ? 'broadcast' : 'dense');
          const expected = reference(roundActivations(values, rows, inF), rows, w.exact, outF, inF, false);
          const magnitude = Math.max(...reference(values.map(Math.abs), rows, w.exact.map(Math.abs), outF, inF, false));
          withInt8(() => expectClose(intMatmul(4, x, w.codes, w.scales, w.offsets, w.attrs), expected, sumTolerance(magnitude)));
        }
      }
    }
  });

  it('NF4 and other tables: match x rounded per block of 32 and the table rounded to int8 levels', () => {
    // Blocks of 256 over rows of 384 values: rows that start inside a block; blocks of 512 span
    // several chunks.
    for (const [outF, inF, blocksize, table] of [[33, 128, 64, NF4_CODE], [12, 384, 32, undefined], [7, 1024, 96, NF4_CODE], [10, 384, 128, undefined], [6, 1024, 256, NF4_CODE], [9, 384, 256, NF4_CODE], [8, 1024, 512, undefined]] as const) {
      const w = fourBitWeight(outF, inF, blocksize, seed++, table);
      const levels = roundTable(w.raw.table);
      const rounded = Float64Array.from(w.raw.codes, (code, i) => w.raw.absmax[Math.floor(i / blocksize)]! * levels[code]!);
      for (const rows of [1, 4, 7, 8, 19]) {
        const { x, values } = activations(rows, inF, seed++, rows === 7 ? 'rows-apart' : 'dense');
        const expected = reference(roundActivations(values, rows, inF), rows, rounded, outF, inF, false);
        const magnitude = Math.max(...reference(values.map(Math.abs), rows, rounded.map(Math.abs), outF, inF, false));
        withInt8(() => expectClose(nf4Matmul(x, w.packed, w.absmax, w.table, w.attrs), expected, sumTolerance(magnitude)));
      }
    }
  });

  it('take 1 to 32 rows in one pass: odd weight heights, tasks and column tiles of the tile loops', () => {
    // Heights leave 1 to 3 weight rows past whole groups of 4; the larger products split over
    // threads, and 17 or 32 rows of width 4096 span two column tiles.
    const cases = [
      ['int4', 37, 1024, 32, 'float32', [1, 3, 16, 17]],
      ['int4', 6, 640, 64, 'float16', [1, 3, 16, 17]],
      ['int4', 5, 4096, 64, 'float32', [17, 32]],
      ['nf4', 35, 1024, 64, undefined, [1, 3, 16, 17]],
      ['nf4', 3, 4096, 32, undefined, [1, 32]],
    ] as const;
    for (const [kind, outF, inF, block, paramDType, rowCounts] of cases) {
      const int = kind === 'int4' ? intWeight(4, outF, inF, 1, block, paramDType ?? 'float32', seed++) : null;
      const four = kind === 'nf4' ? fourBitWeight(outF, inF, block, seed++, NF4_CODE) : null;
      const levels = four ? roundTable(four.raw.table) : null;
      const dense = int
        ? int.exact
        : Float64Array.from(four!.raw.codes, (code, i) => four!.raw.absmax[Math.floor(i / block)]! * levels![code]!);
      for (const rows of rowCounts) {
        const { x, values } = activations(rows, inF, seed++, rows === 3 ? 'rows-apart' : 'dense');
        const expected = reference(roundActivations(values, rows, inF), rows, dense, outF, inF, false);
        const magnitude = Math.max(...reference(values.map(Math.abs), rows, dense.map(Math.abs), outF, inF, false));
        withInt8(() => {
          const y = int
            ? intMatmul(4, x, int.codes, int.scales, int.offsets, int.attrs)
            : nf4Matmul(x, four!.packed, four!.absmax, four!.table, four!.attrs);
          expectClose(y, expected, sumTolerance(magnitude));
        });
      }
    }
  });

  it('widths that are no multiple of 64 stay within the bound (int8 on the loops whose chunks fit, else float32)', () => {
    const [outF, inF, rows] = [9, 352, 17];
    const w = intWeight(4, outF, inF, 1, 32, 'float32', seed++);
    const { x, values } = activations(rows, inF, seed++);
    const exact = reference(values, rows, w.dense, outF, inF, false);
    const limit = reference(values.map(() => 1 / 254), rows, w.dense.map(Math.abs), outF, inF, false);
    withInt8(() => {
      const got = intMatmul(4, x, w.codes, w.scales, w.offsets, w.attrs).toFloat64Array();
      for (let j = 0; j < got.length; j++) expect(Math.abs(got[j]! - exact[j]!)).toBeLessThanOrEqual(limit[j]! + 1e-5);
    });
  });

  it('stay within the documented bound of the float32 product', () => {
    // |error| <= sum over blocks of max |x_block| / 254 * sum |W|  (+ for NF4: sum |x| * absmax * max |table| / 254).
    const [outF, inF] = [24, 1024];
    const int = intWeight(4, outF, inF, 1, 32, 'float32', seed++);
    const four = fourBitWeight(outF, inF, 64, seed++, NF4_CODE);
    const rows = 2;
    const { x, values } = activations(rows, inF, seed++);
    const bound = (dense: Float64Array, levelError: (i: number) => number) => {
      const out = new Float64Array(rows * outF);
      for (let i = 0; i < rows; i++) {
        for (let r = 0; r < outF; r++) {
          let e = 0;
          for (let b = 0; b < inF; b += 32) {
            let amax = 0;
            for (let c = b; c < b + 32; c++) amax = Math.max(amax, Math.abs(values[i * inF + c]!));
            for (let c = b; c < b + 32; c++) {
              const wAbs = Math.abs(dense[r * inF + c]!) + levelError(r * inF + c);
              e += (amax / 254) * wAbs + Math.abs(values[i * inF + c]!) * levelError(r * inF + c);
            }
          }
          out[i * outF + r] = e;
        }
      }
      return out;
    };
    const check = (actual: Tensor, exact: Float64Array, limit: Float64Array) => {
      const got = actual.toFloat64Array();
      actual.dispose();
      for (let j = 0; j < got.length; j++) expect(Math.abs(got[j]! - exact[j]!)).toBeLessThanOrEqual(limit[j]! * 1.0001 + 1e-5);
    };
    const intLimit = bound(int.dense, () => 0);
    const fourLimit = bound(four.dense, (i) => (four.raw.absmax[Math.floor(i / 64)]! * 1) / 254);
    withInt8(() => {
      check(intMatmul(4, x, int.codes, int.scales, int.offsets, int.attrs), reference(values, rows, int.dense, outF, inF, false), intLimit);
      check(nf4Matmul(x, four.packed, four.absmax, four.table, four.attrs), reference(values, rows, four.dense, outF, inF, false), fourLimit);
    });
  });

  it('differ from the float32 product (the setting takes effect), and are float32 again once switched off', () => {
    const w = intWeight(4, 16, 256, 1, 32, 'float32', seed++);
    const { x, values } = activations(1, 256, seed++);
    const exact = reference(values, 1, w.dense, 16, 256, false);
    configureCpuKernels({ quantActivations: 'int8' });
    const y = intMatmul(4, x, w.codes, w.scales, w.offsets, w.attrs).toFloat64Array();
    expect(Math.max(...y.map((v, j) => Math.abs(v - exact[j]!)))).toBeGreaterThan(1e-4);
    configureCpuKernels({ quantActivations: 'float32' });
    expectClose(intMatmul(4, x, w.codes, w.scales, w.offsets, w.attrs), exact, matmulTolerance(256));
  });

  it('leave float32: more than 32 rows, the transposed products, INT8 weights, non-finite activations, odd widths', () => {
    const int4 = intWeight(4, 12, 256, 1, 32, 'float32', seed++);
    const int8 = intWeight(8, 12, 256, 1, 32, 'float32', seed++);
    const four = fourBitWeight(12, 256, 64, seed++, NF4_CODE);
    const many = activations(33, 256, seed++);
    const back = activations(3, 12, seed++);
    const two = activations(2, 256, seed++);
    const nan = Float64Array.from(two.values);
    nan[5] = Number.NaN;
    const withNaN = tensor(nan, { shape: [2, 256], dtype: 'float32' });
    const odd = intWeight(4, 10, 96, 1, 32, 'float32', seed++);  // 96: not a whole chunk on the vector loops
    const oddX = activations(2, 96, seed++);
    const oddBlocks = intWeight(4, 10, 256, 1, 16, 'float32', seed++);  // blocks of 16: float32 everywhere
    withInt8(() => {
      expectClose(intMatmul(4, many.x, int4.codes, int4.scales, int4.offsets, int4.attrs), reference(many.values, 33, int4.dense, 12, 256, false), matmulTolerance(256));
      expectClose(nf4Matmul(many.x, four.packed, four.absmax, four.table, four.attrs), reference(many.values, 33, four.dense, 12, 256, false), matmulTolerance(256));
      expectClose(intMatmulT(4, back.x, int4.codes, int4.scales, int4.offsets, int4.attrs), reference(back.values, 3, int4.dense, 12, 256, true), matmulTolerance(12));
      expectClose(nf4MatmulT(back.x, four.packed, four.absmax, four.table, four.attrs), reference(back.values, 3, four.dense, 12, 256, true), matmulTolerance(12));
      expectClose(intMatmul(8, two.x, int8.codes, int8.scales, int8.offsets, int8.attrs), reference(two.values, 2, int8.dense, 12, 256, false), matmulTolerance(256));
      // A NaN in row 0: its group of rows stays float32 (row 0 all NaN, row 1 exact).
      const y = intMatmul(4, withNaN, int4.codes, int4.scales, int4.offsets, int4.attrs);
      const expected = reference(nan, 2, int4.dense, 12, 256, false);
      expectClose(y, expected, matmulTolerance(256));
      expectClose(intMatmul(4, two.x, oddBlocks.codes, oddBlocks.scales, oddBlocks.offsets, oddBlocks.attrs), reference(two.values, 2, oddBlocks.dense, 10, 256, false), matmulTolerance(256));
      // Width 96: int8 where a chunk of the instruction set's loops fits (32 values), else float32; either is within the bound.
      const got = intMatmul(4, oddX.x, odd.codes, odd.scales, odd.offsets, odd.attrs).toFloat64Array();
      const exact = reference(oddX.values, 2, odd.dense, 10, 96, false);
      const limit = reference(oddX.values.map(() => 1 / 254), 2, odd.dense.map(Math.abs), 10, 96, false);
      for (let j = 0; j < got.length; j++) expect(Math.abs(got[j]! - exact[j]!)).toBeLessThanOrEqual(limit[j]! + 1e-5);
    });
  });

  it('is a setting of configureCpuKernels and BLORA_CPU_QUANT_ACTIVATIONS, float32 by default', () => {
    const info = cpuKernelsInfo();
    expect(info.native && info.quantActivations).toBe('float32');
    const changed = configureCpuKernels({ quantActivations: 'int8' });
    expect(changed.native && changed.quantActivations).toBe('int8');
    // Changing something else keeps the setting.
    const threads = configureCpuKernels({ threads: 1 });
    expect(threads.native && threads.quantActivations).toBe('int8');
    configureCpuKernels({ threads: 0 });
    expect(() => configureCpuKernels({ quantActivations: 'int4' as 'int8' })).toThrow(/quantActivations must be 'float32' or 'int8', got int4/);
    expect(settingsFromEnv({ BLORA_CPU_QUANT_ACTIVATIONS: 'int8' })).toMatchObject({ quantActivations: 'int8' });
    expect(settingsFromEnv({})).toMatchObject({ quantActivations: 'float32' });
    expect(settingsFromEnv({ BLORA_CPU_QUANT_ACTIVATIONS: 'fp16' })).toMatch(/BLORA_CPU_QUANT_ACTIVATIONS=fp16 is not one of float32, int8/);
  });
});

// Without the addon the setting has nothing to change: the TypeScript kernels are float32.
describe.skipIf(NATIVE)('int8 activations without the addon', () => {
  it('leave the TypeScript kernels exact', () => {
    const w = intWeight(4, 8, 128, 1, 32, 'float32', seed++);
    const { x, values } = activations(1, 128, seed++);
    configureCpuKernels({ quantActivations: 'int8' });
    expectClose(intMatmul(4, x, w.codes, w.scales, w.offsets, w.attrs), reference(values, 1, w.dense, 8, 128, false), matmulTolerance(128));
  });
});
