import { describe, expect, it } from 'vitest';
import { full, getKernel, matmul, slice, tensor, transpose, type DType, type Tensor } from '@blora/tensor';
import { nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import { cpuKernelsInfo } from '../src/index.js';
import { loadAddon } from '../src/native.js';
import { expectClose, inEveryMode, matmulReference, matmulTolerance, NATIVE } from './helpers.js';

/** How an operand is laid out in memory; every layout holds the same row-major values. */
type Layout = 'row' | 'col' | 'strided' | 'offset';
const LAYOUTS: readonly Layout[] = ['row', 'col', 'strided', 'offset'];

/** A [...batch, rows, cols] tensor with the given row-major `values`, stored in `layout`. */
function operand(values: Float64Array, shape: readonly number[], layout: Layout, dtype: DType = 'float32'): Tensor {
  const rows = shape[shape.length - 2]!;
  const cols = shape[shape.length - 1]!;
  const batch = shape.slice(0, -2);
  const count = values.length / (rows * cols || 1);
  switch (layout) {
    case 'row':
      return tensor(values, { shape, dtype });
    case 'col': {
      // Store each matrix transposed, then view it transposed back: strides (1, rows).
      const t = new Float64Array(values.length);
      for (let b = 0; b < count; b++)
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++) t[b * rows * cols + j * rows + i] = values[b * rows * cols + i * cols + j]!;
      return transpose(tensor(t, { shape: [...batch, cols, rows], dtype }), -2, -1);
    }
    case 'strided':
      return nonContiguousTensor(values, shape, dtype);
    case 'offset': {
      // Inside a larger NaN-padded buffer: row stride 2 * cols + 3, column stride 2, non-zero offset.
      const width = 2 * cols + 3;
      const big = new Float64Array(count * (rows + 2) * width).fill(Number.NaN);
      for (let b = 0; b < count; b++)
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++) big[(b * (rows + 2) + i + 1) * width + 1 + 2 * j] = values[b * rows * cols + i * cols + j]!;
      const whole = tensor(big, { shape: [...batch, rows + 2, width], dtype });
      return slice(slice(whole, -2, 1, rows + 1), -1, 1, 1 + 2 * cols, 2);
    }
  }
}

let seed = 1;

/** Checks a @ b against the float64 reference for operands of the given shapes and layouts. */
function check(aShape: number[], bShape: number[], aLayout: Layout = 'row', bLayout: Layout = 'row'): void {
  const av = randomValues(aShape.reduce((p, d) => p * d, 1), seed++);
  const bv = randomValues(bShape.reduce((p, d) => p * d, 1), seed++);
  const expected = matmulReference(av, aShape, bv, bShape);
  const a = operand(av, aShape, aLayout);
  const b = operand(bv, bShape, bLayout);
  inEveryMode(() => expectClose(matmul(a, b), expected, matmulTolerance(aShape[aShape.length - 1]!)));
  a.dispose();
  b.dispose();
}

const SIZES = [1, 3, 17, 63, 65, 129, 257];

describe('matmul float32', () => {
  it('matches the reference for odd sizes of m, n and k independently', () => {
    for (const s of SIZES) {
      check([s, 17], [17, 65]);
      check([65, 3], [3, s]);
      check([17, s], [s, 63]);
    }
  });

  it('matches for sizes that use several threads and cross every cache block', () => {
    check([129, 65], [65, 257]);
    check([257, 257], [257, 129]);
    check([2400, 3], [3, 5]); // more rows than one packing pass
    check([3, 5], [5, 3100]); // more columns than one B panel
    check([7, 600], [600, 9]); // several depth slices
  });

  it('reads transposed, strided and offset operands in place', () => {
    for (const la of LAYOUTS) {
      for (const lb of LAYOUTS) {
        check([17, 65], [65, 63], la, lb);
        check([70, 33], [33, 130], la, lb);
      }
    }
  });

  it('handles batches, broadcast batch dims and a weight shared by the batch', () => {
    check([2, 3, 17, 9], [2, 3, 9, 20]);
    check([4, 17, 9], [9, 20]); // shared weight: folded into one tall product
    check([4, 17, 9], [9, 20], 'col', 'row'); // shared weight, a transposed: one product per item
    check([17, 9], [3, 9, 20], 'row', 'col'); // a broadcast over b's batch (stride 0)
    check([2, 1, 5, 7], [1, 3, 7, 6], 'strided', 'offset');
    check([40, 33, 30], [40, 30, 29]); // many small products spread over threads
    check([3, 1, 64], [3, 64, 50]); // batched row vectors
  });

  it('matrix-vector products (one output row or column) in every layout', () => {
    for (const la of LAYOUTS) {
      for (const lb of LAYOUTS) {
        check([1, 37], [37, 45], la, lb);
        check([45, 37], [37, 1], la, lb);
      }
    }
    check([1, 700], [700, 300]); // threaded, columns contiguous
    check([1, 700], [700, 300], 'row', 'col'); // threaded, rows contiguous
    check([300, 700], [700, 1], 'row', 'col');
    check([1, 1], [1, 1]);
    check([5, 1, 33], [33, 40]); // folded: a tall product
  });

  it('1-D operands through the front end', () => {
    const v = randomValues(19, 5);
    const w = randomValues(19 * 23, 6);
    const expected = matmulReference(v, [1, 19], w, [19, 23]);
    const a = tensor(v, { dtype: 'float32' });
    const b = tensor(w, { shape: [19, 23], dtype: 'float32' });
    inEveryMode(() => expectClose(matmul(a, b), expected, matmulTolerance(19)));
    inEveryMode(() => expectClose(matmul(a, a), [v.reduce((s, x) => s + x * x, 0)], matmulTolerance(19)));
  });

  it('empty dims give empty results, and k = 0 writes zeros over whatever the output held', () => {
    inEveryMode(() => {
      expect(matmul(full([0, 4], 1), full([4, 5], 1)).shape).toEqual([0, 5]);
      expect(matmul(full([3, 4], 1), full([4, 0], 1)).shape).toEqual([3, 0]);
      expect(matmul(full([0, 3, 4], 1), full([0, 4, 5], 1)).shape).toEqual([0, 3, 5]);
      const out = full([2, 3, 5], Number.NaN);
      getKernel('matmul', 'cpu')([full([2, 3, 0], 1), full([2, 0, 5], 1)], [out], {});
      expectClose(out, new Float64Array(30));
    });
  });

  it('other dtypes still run the TypeScript kernel', () => {
    const av = randomValues(17 * 33, 11);
    const bv = randomValues(33 * 9, 12);
    const expected = matmulReference(av, [17, 33], bv, [33, 9]);
    inEveryMode(() => {
      expectClose(matmul(operand(av, [17, 33], 'col', 'float64'), operand(bv, [33, 9], 'row', 'float64')), expected, { rtol: 1e-12, atol: 1e-12 });
      expectClose(matmul(operand(av, [17, 33], 'row', 'bfloat16'), operand(bv, [33, 9], 'row', 'bfloat16')), expected, { rtol: 2e-2, atol: 3e-2 });
      expectClose(matmul(operand(av, [17, 33], 'row', 'float16'), operand(bv, [33, 9], 'strided', 'float16')), expected, { rtol: 5e-3, atol: 5e-3 });
    });
  });
});

describe.skipIf(!NATIVE)('native matmul kernel', () => {
  it('is registered for the cpu device', () => {
    const info = cpuKernelsInfo();
    expect(info.native && info.ops).toContain('matmul');
  });

  it('rejects arguments that reach outside the storage, naming the operand', () => {
    const result = loadAddon();
    if (!result.addon) throw new Error(result.reason);
    const addon = result.addon;
    const a = new Float32Array(12);
    const b = new Float32Array(12);
    const out = new Float32Array(9);
    const at = (ao: number, bo: number) => new Float64Array([ao, bo]);
    expect(() => addon.matmulF32(a, b, out, 0, 3, 3, 4, 4, 1, 3, 1, at(0, 0))).not.toThrow();
    expect(() => addon.matmulF32(a, b, out, 0, 3, 3, 4, 4, 1, 3, 1, at(1, 0))).toThrow(/matmulF32: a reaches elements \[1, 12\] outside its storage of 12/);
    expect(() => addon.matmulF32(a, b, out, 0, 3, 3, 4, 4, 1, -3, 1, at(0, 0))).toThrow(/b reaches elements \[-9, 2\]/);
    expect(() => addon.matmulF32(a, b, out, 1, 3, 3, 4, 4, 1, 3, 1, at(0, 0))).toThrow(/out reaches/);
    expect(() => addon.matmulF32(a, new Float64Array(12) as unknown as Float32Array, out, 0, 3, 3, 4, 4, 1, 3, 1, at(0, 0))).toThrow(TypeError);
    expect(() => addon.matmulF32(a, b, out, 0, 3.5, 3, 4, 4, 1, 3, 1, at(0, 0))).toThrow(/m must be an integer/);
    expect(() => addon.matmulF32(a, b, out, 0, 3, 3, 4, 4, 1, 3, 1, new Float64Array(3))).toThrow(/pairs/);
  });
});
