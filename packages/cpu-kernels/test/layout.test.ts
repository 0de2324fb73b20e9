// The native strided copy, rope and sums over axes against float64 references written with
// plain loops, in every layout they take and those they leave to the TypeScript kernels.
import { describe, expect, it } from 'vitest';
import {
  contiguous, expand, mean, permute, rope, slice, sum, tensor, transpose, type DType, type Tensor,
} from '@blora/tensor';
import { nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import { cpuKernelsInfo } from '../src/index.js';
import { loadAddon } from '../src/native.js';
import { expectClose, inEveryMode, NATIVE } from './helpers.js';

/** Row-major strides of a shape. */
function stridesOf(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) out[d] = out[d + 1]! * shape[d + 1]!;
  return out;
}

/** Values of `t` (float32, any layout) in row-major order, read with plain loops over its strides. */
function rowMajor(t: Tensor): Float64Array {
  const data = t.storage.handle as Float32Array;
  const out = new Float64Array(t.numel);
  const idx = new Array<number>(t.rank).fill(0);
  for (let i = 0; i < t.numel; i++) {
    let off = t.offset;
    for (let d = 0; d < t.rank; d++) off += idx[d]! * t.strides[d]!;
    out[i] = data[off]!;
    for (let d = t.rank - 1; d >= 0; d--) {
      if (++idx[d]! < t.shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Float64 sum (or mean) over `axes` of row-major values of `shape`, keeping the other dims in order. */
function reduceReference(values: Float64Array, shape: readonly number[], axes: readonly number[], isMean: boolean): Float64Array {
  const kept = shape.map((_, d) => d).filter((d) => !axes.includes(d));
  const outShape = kept.map((d) => shape[d]!);
  const outStrides = stridesOf(outShape);
  const out = new Float64Array(outShape.reduce((p, s) => p * s, 1));
  const count = axes.reduce((p, d) => p * shape[d]!, 1);
  const inStrides = stridesOf(shape);
  for (let i = 0; i < values.length; i++) {
    let o = 0;
    kept.forEach((d, k) => (o += (Math.floor(i / inStrides[d]!) % shape[d]!) * outStrides[k]!));
    out[o] += values[i]!;
  }
  return isMean ? out.map((v) => v / count) : out;
}

let seed = 900;

describe('copy float32 (contiguous / clone of strided views)', () => {
  it('gathers transposed, permuted, sliced, broadcast and offset views into dense tensors', () => {
    const base = tensor(randomValues(5 * 7 * 9 * 4, seed++), { shape: [5, 7, 9, 4], dtype: 'float32' });
    const views: Tensor[] = [
      permute(base, [0, 2, 1, 3]), // inner dim still dense: runs of 4 copied at once
      permute(base, [3, 1, 0, 2]), // inner dim strided
      transpose(tensor(randomValues(33 * 65, seed++), { shape: [33, 65], dtype: 'float32' }), 0, 1),
      slice(slice(base, 1, 2, 7), 3, 1, 4, 2), // offset and steps
      expand(tensor(randomValues(3, seed++), { shape: [3, 1], dtype: 'float32' }), [3, 1000]), // stride 0
      nonContiguousTensor(randomValues(17 * 3 * 5, seed++), [17, 3, 5]),
      slice(tensor(randomValues(600 * 700, seed++), { shape: [600, 700], dtype: 'float32' }), 1, 0, 650), // threads
      permute(tensor(randomValues(2 * 2 * 2 * 2 * 2 * 2 * 2 * 2 * 3, seed++), { shape: [2, 2, 2, 2, 2, 2, 2, 2, 3], dtype: 'float32' }), [8, 7, 6, 5, 4, 3, 2, 1, 0]), // 9 dims: TypeScript
      permute(slice(base, 0, 0, 0), [1, 0, 2, 3]), // empty
    ];
    for (const view of views) {
      const expected = rowMajor(view);
      inEveryMode(() => {
        const out = contiguous(view);
        expect(out.isContiguous).toBe(true);
        expect(out.shape).toEqual(view.shape);
        expectClose(out, expected, { rtol: 0, atol: 0 });
      });
    }
  });

  it('other dtypes still copy bit for bit through the TypeScript kernel', () => {
    for (const dtype of ['float64', 'float16', 'int32'] as DType[]) {
      const t = transpose(tensor(randomValues(12, seed++, -4, 4).map(Math.round), { shape: [3, 4], dtype }), 0, 1);
      const expected = Float64Array.from({ length: 12 }, (_, i) => t.toFloat64Array()[i]!);
      inEveryMode(() => expectClose(contiguous(t), expected, { rtol: 0, atol: 0 }));
    }
  });
});

describe('rope float32', () => {
  /** Float64 reference with the values of x (row-major) and the tables. */
  function ropeReference(x: Float64Array, shape: readonly number[], cos: Float64Array, sin: Float64Array, inverse: boolean): Float64Array {
    const [b, h, t, dh] = shape as [number, number, number, number];
    const half = dh / 2;
    const out = new Float64Array(x.length);
    for (let row = 0; row < b * h * t; row++) {
      const p = row % t;
      for (let i = 0; i < half; i++) {
        const c = cos[p * half + i]!;
        const s = (inverse ? -1 : 1) * sin[p * half + i]!;
        const lo = x[row * dh + i]!;
        const hi = x[row * dh + i + half]!;
        out[row * dh + i] = lo * c - hi * s;
        out[row * dh + i + half] = hi * c + lo * s;
      }
    }
    return out;
  }

  it('matches the reference for dense and token-major inputs, both directions, odd sizes', () => {
    for (const [b, h, t, dh] of [[1, 1, 1, 2], [2, 3, 5, 6], [3, 2, 17, 32], [1, 4, 130, 64]] as const) {
      const tables = { cos: Float64Array.from(randomValues(t * (dh / 2), seed++)), sin: Float64Array.from(randomValues(t * (dh / 2), seed++)) };
      const cos = tensor(tables.cos, { shape: [t, dh / 2], dtype: 'float32' });
      const sin = tensor(tables.sin, { shape: [t, dh / 2], dtype: 'float32' });
      const c32 = cos.toFloat64Array();
      const s32 = sin.toFloat64Array();
      // [B, T, H, Dh] storage viewed as [B, H, T, Dh] (how attention reads heads), and a dense one.
      const tokenMajor = permute(tensor(randomValues(b * t * h * dh, seed++), { shape: [b, t, h, dh], dtype: 'float32' }), [0, 2, 1, 3]);
      const dense = tensor(randomValues(b * h * t * dh, seed++), { shape: [b, h, t, dh], dtype: 'float32' });
      for (const x of [tokenMajor, dense]) {
        for (const inverse of [false, true]) {
          const expected = ropeReference(rowMajor(x), x.shape, c32, s32, inverse);
          inEveryMode(() => expectClose(rope(x, cos, sin, { inverse }), expected, { rtol: 1e-6, atol: 1e-7 }));
        }
      }
    }
  });

  it('a strided last dim and float64 run the TypeScript kernel', () => {
    const [b, h, t, dh] = [1, 2, 3, 4];
    const cos = tensor(randomValues(t * 2, seed++), { shape: [t, 2], dtype: 'float32' });
    const sin = tensor(randomValues(t * 2, seed++), { shape: [t, 2], dtype: 'float32' });
    const strided = slice(tensor(randomValues(b * h * t * dh * 2, seed++), { shape: [b, h, t, dh * 2], dtype: 'float32' }), 3, 0, dh * 2, 2);
    const expected = ropeReference(rowMajor(strided), strided.shape, cos.toFloat64Array(), sin.toFloat64Array(), false);
    inEveryMode(() => expectClose(rope(strided, cos, sin), expected, { rtol: 1e-6, atol: 1e-7 }));
    const x64 = tensor(randomValues(b * h * t * dh, seed++), { shape: [b, h, t, dh], dtype: 'float64' });
    const expected64 = ropeReference(x64.toFloat64Array(), x64.shape, cos.toFloat64Array(), sin.toFloat64Array(), true);
    inEveryMode(() => expectClose(rope(x64, cos, sin, { inverse: true }), expected64, { rtol: 1e-12, atol: 1e-12 }));
  });
});

describe('sum and mean float32', () => {
  it('match the reference over leading, trailing, middle and all axes of dense inputs, with and without keepdim', () => {
    const shapes: [number[], number[]][] = [
      [[8, 128, 24, 2], [3]], // pairs summed: the gradient of repeatInterleave
      [[8, 64, 13], [0]], // over the batch: column sums
      [[5, 7, 9], [1]], // a middle axis
      [[5, 7, 9], [1, 2]],
      [[5, 7, 9], [0, 1]],
      [[5, 7, 9], [0, 1, 2]],
      [[4, 1, 6, 1], [1, 2]], // size-1 dims in and around the reduced run
      [[3, 0, 4], [1]], // an empty reduced dim: 0 (NaN for the mean)
      [[700, 600], [0]], // large enough for threads
      [[600, 700], [1]],
      [[5, 7], []], // no axis: a copy
    ];
    for (const [shape, axes] of shapes) {
      const n = shape.reduce((p, s) => p * s, 1);
      const x = tensor(randomValues(n, seed++), { shape, dtype: 'float32' });
      const values = x.toFloat64Array();
      for (const isMean of [false, true]) {
        const expected = reduceReference(values, shape, axes, isMean);
        const tol = { rtol: 1e-6, atol: 1e-6 };
        inEveryMode(() => {
          for (const keepdim of [false, true]) {
            const out = (isMean ? mean : sum)(x, axes, keepdim);
            expect(out.shape).toEqual(keepdim ? shape.map((s, d) => (axes.includes(d) ? 1 : s)) : shape.filter((_, d) => !axes.includes(d)));
            expectClose(out, expected, tol);
          }
        });
      }
    }
  });

  it('axes that are not neighbours, strided inputs and other dtypes run the TypeScript kernel', () => {
    const x = tensor(randomValues(4 * 5 * 6, seed++), { shape: [4, 5, 6], dtype: 'float32' });
    const values = x.toFloat64Array();
    const t = transpose(x, 0, 2);
    const x64 = tensor(values, { shape: [4, 5, 6], dtype: 'float64' });
    inEveryMode(() => {
      expectClose(sum(x, [0, 2]), reduceReference(values, [4, 5, 6], [0, 2], false), { rtol: 1e-6, atol: 1e-6 });
      expectClose(mean(t, [1]), reduceReference(rowMajor(t), t.shape, [1], true), { rtol: 1e-6, atol: 1e-6 });
      expectClose(sum(x64, [1]), reduceReference(values, [4, 5, 6], [1], false), { rtol: 1e-12, atol: 1e-12 });
    });
  });
});

describe.skipIf(!NATIVE)('native copy, rope and sum kernels', () => {
  it('are registered for the cpu device', () => {
    const info = cpuKernelsInfo();
    expect(info.native && info.ops).toEqual(expect.arrayContaining(['copy', 'rope', 'sum', 'mean']));
  });

  it('reject arguments that reach outside the storage, naming the operand', () => {
    const result = loadAddon();
    if (!result.addon) throw new Error(result.reason);
    const addon = result.addon;
    const x = new Float32Array(12);
    const out = new Float32Array(12);
    const f64 = (...v: number[]) => Float64Array.from(v);
    expect(() => addon.copyF32(x, 0, f64(3, 4), f64(1, 3), out, 0)).not.toThrow();
    expect(() => addon.copyF32(x, 1, f64(3, 4), f64(1, 3), out, 0)).toThrow(/copyF32: x reaches elements \[1, 12\] outside its storage of 12/);
    expect(() => addon.copyF32(x, 0, f64(3, 4), f64(1), out, 0)).toThrow(/sizes and strides must have the same length/);
    expect(() => addon.copyF32(x, 0, f64(3, 4.5), f64(1, 3), out, 0)).toThrow(/must be integers/);
    expect(() => addon.copyF32(x, 0, f64(3, 4), f64(1, 3), new Float32Array(11), 0)).toThrow(/out reaches/);
    const tables = new Float32Array(6);
    expect(() => addon.ropeF32(x, 0, f64(1, 1, 3, 4, 12, 12, 4), tables, 0, tables, 0, out, 0, false)).not.toThrow();
    expect(() => addon.ropeF32(x, 0, f64(1, 1, 3, 4, 12, 12, 5), tables, 0, tables, 0, out, 0, false)).toThrow(/ropeF32: x reaches/);
    expect(() => addon.ropeF32(x, 0, f64(1, 1, 3, 3, 12, 12, 3), tables, 0, tables, 0, out, 0, false)).toThrow(/Dh must be even, got 3/);
    expect(() => addon.ropeF32(x, 0, f64(1, 1, 3, 4, 12, 12, 4), new Float32Array(5), 0, tables, 0, out, 0, false)).toThrow(/cos reaches/);
    expect(() => addon.sumF32(x, 0, 3, 2, 2, out, 0, 1)).not.toThrow();
    expect(() => addon.sumF32(x, 1, 3, 2, 2, out, 0, 1)).toThrow(/sumF32: x reaches elements \[1, 12\]/);
    expect(() => addon.sumF32(x, 0, 3, 2, 2, new Float32Array(5), 0, 1)).toThrow(/out reaches/);
  });
});
