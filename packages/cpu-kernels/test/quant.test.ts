// The quantized-weight products (@blora/quant's ops) against float64 references that decode
// the weight with plain loops and multiply in float64.
import { describe, expect, it } from 'vitest';
import { expand, permute, slice, tensor, transpose, type Tensor } from '@blora/tensor';
import { nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import { NF4_CODE, intMatmul, intMatmulT, nf4Matmul, nf4MatmulT } from '@blora/quant';
import { cpuKernelsInfo } from '../src/index.js';
import { loadAddon } from '../src/native.js';
import { expectClose, inEveryMode, matmulTolerance, NATIVE } from './helpers.js';
import { fourBitWeight, intWeight, reference } from './quant-weights.js';

/** How the activations are laid out; each layout holds the same row-major values. */
type Layout = 'dense' | 'rows-apart' | 'batched' | 'broadcast' | 'strided' | 'transposed' | 'permuted';
const NATIVE_LAYOUTS: readonly Layout[] = ['dense', 'rows-apart', 'batched', 'broadcast'];
const FALLBACK_LAYOUTS: readonly Layout[] = ['strided', 'transposed', 'permuted'];

/** Activations [rows, k] (or [2, rows/2, k] when batched) in `layout`, and their row-major values. */
function activations(rows: number, k: number, layout: Layout, seed: number): { x: Tensor; values: Float64Array } {
  let values = randomValues(rows * k, seed);
  switch (layout) {
    case 'dense':
      return { x: tensor(values, { shape: [rows, k], dtype: 'float32' }), values };
    case 'rows-apart': {
      // Rows k + 3 apart at an offset, inside a NaN-padded buffer.
      const wide = new Float64Array((rows + 1) * (k + 3)).fill(Number.NaN);
      for (let i = 0; i < rows; i++) for (let c = 0; c < k; c++) wide[(i + 1) * (k + 3) + 1 + c] = values[i * k + c]!;
      const whole = tensor(wide, { shape: [rows + 1, k + 3], dtype: 'float32' });
      return { x: slice(slice(whole, 0, 1), 1, 1, k + 1), values };
    }
    case 'batched':
      return { x: tensor(values, { shape: [2, rows / 2, k], dtype: 'float32' }), values };
    case 'broadcast': {
      // One row repeated: row stride 0.
      values = values.map((_, i) => values[i % k]!);
      return { x: expand(tensor(values.subarray(0, k), { shape: [1, k], dtype: 'float32' }), [rows, k]), values };
    }
    case 'strided':
      return { x: nonContiguousTensor(values, [rows, k]), values };
    case 'transposed': {
      const t = new Float64Array(rows * k);
      for (let i = 0; i < rows; i++) for (let c = 0; c < k; c++) t[c * rows + i] = values[i * k + c]!;
      return { x: transpose(tensor(t, { shape: [k, rows], dtype: 'float32' }), 0, 1), values };
    }
    case 'permuted': {
      // [2, rows/2, k] stored as [rows/2, 2, k]: batch dims that do not merge into one row stride.
      const half = rows / 2;
      const t = new Float64Array(rows * k);
      for (let b = 0; b < 2; b++) for (let i = 0; i < half; i++) for (let c = 0; c < k; c++) t[(i * 2 + b) * k + c] = values[(b * half + i) * k + c]!;
      return { x: permute(tensor(t, { shape: [half, 2, k], dtype: 'float32' }), [1, 0, 2]), values };
    }
  }
}

let seed = 100;

/**
 * Shapes [out, in, blocksize]: odd widths (rows starting at odd nibbles), blocks straddling rows,
 * odd blocks, and widths and blocks in whole vectors (the loops that decode in registers).
 */
const FOUR_BIT_SHAPES: readonly [number, number, number][] = [
  [1, 1, 1], [5, 8, 8], [7, 13, 4], [6, 9, 3], [9, 31, 64], [6, 24, 16], [12, 40, 8], [17, 64, 64], [33, 300, 64], [70, 129, 32],
  // Widths and blocks in runs of 32 (the AVX-512 loops that read activations in split order), blocks of 96 straddling rows.
  [13, 352, 96], [5, 256, 128],
];
const ROWS = [1, 2, 3, 4, 5, 6, 7, 8, 10, 38];

describe.each([false, true])('nf4Matmul float32 (transposed = %s)', (transposed) => {
  const op = transposed ? nf4MatmulT : nf4Matmul;

  it('matches the float64 reference for odd shapes, block sizes and row counts', () => {
    for (const [outF, inF, blocksize] of FOUR_BIT_SHAPES) {
      const w = fourBitWeight(outF, inF, blocksize, seed++);
      const k = transposed ? outF : inF;
      for (const rows of ROWS) {
        const { x, values } = activations(rows, k, 'dense', seed++);
        const expected = reference(values, rows, w.dense, outF, inF, transposed);
        inEveryMode(() => expectClose(op(x, w.packed, w.absmax, w.table, w.attrs), expected, matmulTolerance(k)));
      }
    }
  });

  it('the NF4 table, and sizes that cross every GEMM block (depth slices, wide panels, threads)', () => {
    const cases: [number, number, number][] = transposed ? [[300, 40, 64], [5, 3100, 64], [96, 257, 64]] : [[40, 300, 64], [3100, 5, 64], [257, 96, 64]];
    for (const [outF, inF, blocksize] of cases) {
      const w = fourBitWeight(outF, inF, blocksize, seed++, NF4_CODE);
      const k = transposed ? outF : inF;
      for (const rows of [1, 7, 20, 40]) { // up to 32 rows stream the weight; 40 takes the GEMM
        const { x, values } = activations(rows, k, 'dense', seed++);
        inEveryMode(() => expectClose(op(x, w.packed, w.absmax, w.table, w.attrs), reference(values, rows, w.dense, outF, inF, transposed), matmulTolerance(k)));
      }
    }
  });

  it('reads rows apart, batches and broadcast rows in place; strided layouts run the TypeScript kernel', () => {
    const [outF, inF, blocksize] = [11, 21, 8];
    const w = fourBitWeight(outF, inF, blocksize, seed++);
    const k = transposed ? outF : inF;
    for (const layout of [...NATIVE_LAYOUTS, ...FALLBACK_LAYOUTS]) {
      for (const rows of [2, 12]) {
        const { x, values } = activations(rows, k, layout, seed++);
        const expected = reference(values, rows, w.dense, outF, inF, transposed);
        inEveryMode(() => {
          const out = op(x, w.packed, w.absmax, w.table, w.attrs);
          expect(out.shape).toEqual([...x.shape.slice(0, -1), transposed ? inF : outF]);
          expectClose(out, expected, matmulTolerance(k));
        });
      }
    }
  });

  it('other dtypes, non-contiguous codes and empty activations', () => {
    const [outF, inF, blocksize] = [6, 10, 4];
    const w = fourBitWeight(outF, inF, blocksize, seed++);
    const k = transposed ? outF : inF;
    const values = randomValues(3 * k, seed++);
    const expected = reference(values, 3, w.dense, outF, inF, transposed);
    // Codes stored at every other byte: the TypeScript kernel reads them.
    const bytes = w.packed.toTypedArray() as Uint8Array;
    const spread = new Uint8Array(bytes.length * 2);
    bytes.forEach((b, i) => (spread[2 * i] = b));
    const stridedPacked = slice(tensor(spread, { dtype: 'uint8' }), 0, 0, spread.length, 2);
    inEveryMode(() => {
      expectClose(op(tensor(values, { shape: [3, k], dtype: 'float64' }), w.packed, w.absmax, w.table, w.attrs), expected, { rtol: 1e-12, atol: 1e-12 });
      expectClose(op(tensor(values, { shape: [3, k], dtype: 'float16' }), w.packed, w.absmax, w.table, w.attrs), expected, { rtol: 5e-3, atol: 1e-2 });
      expectClose(op(tensor(values, { shape: [3, k], dtype: 'float32' }), stridedPacked, w.absmax, w.table, w.attrs), expected, matmulTolerance(k));
      const empty = op(tensor(new Float32Array(0), { shape: [0, k] }), w.packed, w.absmax, w.table, w.attrs);
      expect(empty.shape).toEqual([0, transposed ? inF : outF]);
      empty.dispose();
    });
  });
});

describe.each([4, 8] as const)('int%sMatmul float32', (bits) => {
  const SHAPES: [number, number, number, number][] = [[1, 1, 1, 1], [5, 9, 1, 3], [6, 12, 2, 4], [9, 33, 3, 11], [16, 64, 1, 32], [40, 300, 4, 20]];

  it.each([false, true])('matches the float64 reference with float32 and float16 block parameters (transposed = %s)', (transposed) => {
    const op = transposed ? intMatmulT : intMatmul;
    for (const paramDType of ['float32', 'float16'] as const) {
      for (const [outF, inF, blockRows, blockCols] of SHAPES) {
        const w = intWeight(bits, outF, inF, blockRows, blockCols, paramDType, seed++);
        const k = transposed ? outF : inF;
        for (const rows of [1, 3, 9, 26, 40]) {
          const { x, values } = activations(rows, k, 'dense', seed++);
          const expected = reference(values, rows, w.dense, outF, inF, transposed);
          inEveryMode(() => expectClose(op(bits, x, w.codes, w.scales, w.offsets, w.attrs), expected, matmulTolerance(k)));
        }
      }
    }
  });

  it.each([false, true])('decodes whole-vector rows in registers for 1 to 8 rows (transposed = %s)', (transposed) => {
    const op = transposed ? intMatmulT : intMatmul;
    // Blocks of 8 and more columns, shared by several rows; [140, 240, 4, 40] is large enough
    // for threads, whose column slices then start inside a block.
    const cases: [number, number, number, number][] = [
      [6, 8, 1, 8], [9, 48, 3, 16], [20, 96, 4, 32], [70, 64, 2, 64], [5, 40, 5, 8], [140, 240, 4, 40],
      [11, 384, 1, 96], [6, 256, 2, 128], // runs of 32: the split-order loops
    ];
    for (const paramDType of ['float32', 'float16'] as const) {
      for (const [outF, inF, blockRows, blockCols] of cases) {
        const w = intWeight(bits, outF, inF, blockRows, blockCols, paramDType, seed++);
        const k = transposed ? outF : inF;
        for (const rows of [1, 2, 3, 4, 5, 6, 7, 8]) {
          const layout = rows % 2 === 0 ? 'batched' : rows === 3 ? 'rows-apart' : 'dense';
          const { x, values } = activations(rows, k, layout, seed++);
          const expected = reference(values, rows, w.dense, outF, inF, transposed);
          inEveryMode(() => expectClose(op(bits, x, w.codes, w.scales, w.offsets, w.attrs), expected, matmulTolerance(k)));
        }
      }
    }
  });

  it('batches, rows apart and zero gradient rows; other dtypes and layouts run the TypeScript kernel', () => {
    const [outF, inF] = [12, 15];
    const w = intWeight(bits, outF, inF, 2, 5, 'float32', seed++);
    for (const transposed of [false, true]) {
      const op = transposed ? intMatmulT : intMatmul;
      const k = transposed ? outF : inF;
      for (const layout of [...NATIVE_LAYOUTS, ...FALLBACK_LAYOUTS]) {
        const { x, values } = activations(4, k, layout, seed++);
        inEveryMode(() => expectClose(op(bits, x, w.codes, w.scales, w.offsets, w.attrs), reference(values, 4, w.dense, outF, inF, transposed), matmulTolerance(k)));
      }
      // Rows of dy that are zero except in a few columns.
      const sparse = new Float64Array(3 * k);
      sparse[1] = 0.5;
      sparse[2 * k + k - 1] = -2;
      inEveryMode(() => expectClose(op(bits, tensor(sparse, { shape: [3, k], dtype: 'float32' }), w.codes, w.scales, w.offsets, w.attrs), reference(sparse, 3, w.dense, outF, inF, transposed), matmulTolerance(k)));
      const values = randomValues(2 * k, seed++);
      inEveryMode(() => expectClose(op(bits, tensor(values, { shape: [2, k], dtype: 'float64' }), w.codes, w.scales, w.offsets, w.attrs), reference(values, 2, w.dense, outF, inF, transposed), { rtol: 1e-12, atol: 1e-12 }));
    }
  });
});

describe('quantized products with an addend (y = x · Wᵀ + s · repeatInterleave(z, λ))', () => {
  it('add it after the native product and after the TypeScript kernel: NF4 and INT4, both products, λ 1 and 3', () => {
    const weights = [fourBitWeight(12, 24, 8, seed++), intWeight(4, 12, 24, 4, 8, 'float32', seed++)];
    for (const w of weights) {
      const [outF, inF] = [w.attrs.outFeatures, w.attrs.inFeatures];
      for (const transposed of [false, true]) {
        const [k, n] = transposed ? [outF, inF] : [inF, outF];
        for (const lambda of [1, 3]) {
          for (const layout of ['dense', 'batched', 'strided'] as const) {
            const rows = 6;
            const { x, values } = activations(rows, k, layout, seed++);
            const zv = randomValues(rows * (n / lambda), seed++, -2, 2);
            const z = tensor(zv, { shape: [...x.shape.slice(0, -1), n / lambda] });
            const product = reference(values, rows, w.dense, outF, inF, transposed);
            const expected = product.map((v, i) => v + Math.fround(0.5 * Math.fround(zv[Math.floor(i / n) * (n / lambda) + Math.floor((i % n) / lambda)]!)));
            const addend = { values: z, lambda, scale: 0.5 };
            const run = () => ('packed' in w
              ? (transposed ? nf4MatmulT : nf4Matmul)(x, w.packed, w.absmax, w.table, w.attrs, addend)
              : (transposed ? intMatmulT : intMatmul)(4, x, w.codes, w.scales, w.offsets, w.attrs, addend));
            inEveryMode(() => expectClose(run(), expected, matmulTolerance(k)));
          }
        }
      }
    }
  });
});

describe('quantized products with a low-rank addend (z = values · factorᵀ)', () => {
  it('form the dense addend after the native product and after the TypeScript kernel: NF4 and INT4, λ 1 and 2', () => {
    const weights = [fourBitWeight(12, 24, 8, seed++), intWeight(4, 12, 24, 4, 8, 'float32', seed++)];
    const rank = 4;
    for (const w of weights) {
      const [outF, inF] = [w.attrs.outFeatures, w.attrs.inFeatures];
      for (const lambda of [1, 2]) {
        const rows = 3;
        const { x, values } = activations(rows, inF, 'dense', seed++);
        const vv = randomValues(rows * rank, seed++, -2, 2);
        const fv = randomValues((outF / lambda) * rank, seed++, -2, 2);
        const addend = {
          values: tensor(vv, { shape: [rows, rank] }), factor: tensor(fv, { shape: [outF / lambda, rank] }), lambda, scale: 0.5,
        };
        const z = (m: number, j: number) => {
          let sum = 0;
          for (let r = 0; r < rank; r++) sum += vv[m * rank + r]! * fv[j * rank + r]!;
          return Math.fround(sum);
        };
        const product = reference(values, rows, w.dense, outF, inF, false);
        const expected = product.map((v, i) => v + Math.fround(0.5 * z(Math.floor(i / outF), Math.floor((i % outF) / lambda))));
        const run = () => ('packed' in w
          ? nf4Matmul(x, w.packed, w.absmax, w.table, w.attrs, addend)
          : intMatmul(4, x, w.codes, w.scales, w.offsets, w.attrs, addend));
        inEveryMode(() => expectClose(run(), expected, matmulTolerance(inF)));
      }
    }
  });
});

describe.skipIf(!NATIVE)('native quantized matmul kernels', () => {
  it('are registered for every quantized-weight product', () => {
    const info = cpuKernelsInfo();
    expect(info.native && info.ops).toEqual(expect.arrayContaining(['nf4Matmul', 'nf4MatmulT', 'int4Matmul', 'int4MatmulT', 'int8Matmul', 'int8MatmulT']));
  });

  it('reject arguments that reach outside the storage or do not describe a weight', () => {
    const result = loadAddon();
    if (!result.addon) throw new Error(result.reason);
    const addon = result.addon;
    const x = new Float32Array(8);
    const out = new Float32Array(8);
    const packed = new Uint8Array(8);
    const absmax = new Float32Array(4);
    const table = new Float32Array(16);
    const nf4 = (p: Uint8Array, a: Float32Array, t: Float32Array, blocksize: number, rows = 2) =>
      addon.nf4MatmulF32(false, x, 0, rows, 4, p, 0, a, 0, t, 0, out, 0, 4, 4, blocksize);
    expect(() => nf4(packed, absmax, table, 4)).not.toThrow();
    expect(() => nf4(packed, absmax, table, 4, 3)).toThrow(/nf4MatmulF32: x reaches elements \[0, 11\] outside its storage of 8/);
    expect(() => nf4(new Uint8Array(7), absmax, table, 4)).toThrow(/packed reaches elements \[0, 7\] outside its storage of 7/);
    expect(() => nf4(packed, absmax, table, 3)).toThrow(/absmax reaches elements \[0, 5\]/);
    expect(() => nf4(packed, absmax, new Float32Array(15), 4)).toThrow(/table reaches/);
    expect(() => nf4(packed, absmax, table, 0)).toThrow(/blocksize must be >= 1/);
    expect(() => nf4(new Int8Array(8) as unknown as Uint8Array, absmax, table, 4)).toThrow(TypeError);
    const scales = new Float32Array(4);
    const int = (bits: 4 | 8, s: Float32Array | Uint16Array, o: Float32Array | Uint16Array, blockRows: number, blockCols: number) =>
      addon.intMatmulF32(bits, true, x, 0, 2, 4, packed, 0, s, 0, o, 0, out, 0, 4, 4, blockRows, blockCols);
    expect(() => int(4, scales, scales, 2, 2)).not.toThrow();
    expect(() => int(8, scales, scales, 2, 2)).toThrow(/intMatmulF32: codes reaches elements \[0, 15\]/);
    expect(() => int(5 as 4, scales, scales, 2, 2)).toThrow(/bits must be 4 or 8, got 5/);
    expect(() => int(4, scales, scales, 3, 2)).toThrow(/blocks of 3 x 2 do not tile a weight \[4, 4\]/);
    expect(() => int(4, scales, new Uint16Array(4), 2, 2)).toThrow(/scales and offsets must have the same type/);
    expect(() => int(4, scales, scales, 1, 2)).toThrow(/scales reaches elements \[0, 7\]/);
  });
});
