import { describe, expect, it } from 'vitest';
import { cat, chunk, cpuBackend, expand, permute, registerBackend, split, stack, tensor, transpose, type DType, type Tensor } from '../src/index.js';
import { randomTensor } from '../src/testing.js';

/** Reference concatenation with plain loops over (outer, axis, inner) coordinates. */
function refCat(tensors: Tensor[], axis: number): { values: Float64Array; shape: number[] } {
  const first = tensors[0]!;
  const outer = first.shape.slice(0, axis).reduce((p, d) => p * d, 1);
  const inner = first.shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const total = tensors.reduce((p, t) => p + t.shape[axis]!, 0);
  const values = new Float64Array(outer * total * inner);
  let at = 0;
  for (const t of tensors) {
    const v = t.toFloat64Array();
    const size = t.shape[axis]!;
    for (let o = 0; o < outer; o++) {
      for (let a = 0; a < size; a++) {
        for (let i = 0; i < inner; i++) values[(o * total + at + a) * inner + i] = v[(o * size + a) * inner + i]!;
      }
    }
    at += size;
  }
  const shape = [...first.shape];
  shape[axis] = total;
  return { values, shape };
}

let seed = 300;
const rand = (shape: number[], dtype: DType = 'float32', nonContiguous = false) =>
  randomTensor(shape, { seed: seed++, dtype, nonContiguous, low: -9, high: 9 });

describe('cat', () => {
  it('joins along every axis for every dtype, mixing layouts and empty pieces', () => {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int8', 'uint8'] as const) {
      for (const axis of [0, 1, 2, -1, -3]) {
        const ax = axis < 0 ? axis + 3 : axis;
        const sizes = [3, 1, 0, 5];
        const pieces = sizes.map((s, i) => {
          const shape = [2, 3, 4];
          shape[ax] = s;
          if (i === 1) return rand(shape, dtype, true);
          if (i === 3) return permute(rand([shape[2]!, shape[0]!, shape[1]!], dtype), [1, 2, 0]);
          return rand(shape, dtype);
        });
        const out = cat(pieces, axis);
        const ref = refCat(pieces, ax);
        expect(out.shape).toEqual(ref.shape);
        expect(out.dtype).toBe(dtype);
        expect(Array.from(out.toFloat64Array())).toEqual(Array.from(ref.values));
      }
    }
  });

  it('copies long rows, a single tensor, broadcast views and all-empty inputs', () => {
    const long = [rand([3, 70]), transpose(rand([90, 3]))];
    expect(Array.from(cat(long, 1).toFloat64Array())).toEqual(Array.from(refCat(long, 1).values));
    const one = rand([2, 3]);
    const copy = cat([one]);
    expect(copy.storage).not.toBe(one.storage);
    expect(copy.toFloat64Array()).toEqual(one.toFloat64Array());
    const b = [expand(rand([1, 3]), [4, 3]), rand([2, 3])];
    expect(Array.from(cat(b, 0).toFloat64Array())).toEqual(Array.from(refCat(b, 0).values));
    expect(cat([rand([0, 2]), rand([0, 2])], 0).shape).toEqual([0, 2]);
    expect(cat([rand([2, 0]), rand([3, 0])], 0).shape).toEqual([5, 0]);
  });

  it('rejects mismatched inputs with clear errors', () => {
    expect(() => cat([])).toThrow('cat: needs at least one tensor');
    expect(() => cat([rand([2, 3]), rand([2, 3], 'float64')])).toThrow('cat: tensor 1 is float64[2, 3] on cpu but tensor 0 is float32[2, 3] on cpu');
    expect(() => cat([rand([2, 3]), rand([2, 4])], 0)).toThrow('cat: tensor 1 has shape [2, 4] but tensor 0 has [2, 3]; only dim 0 may differ');
    expect(() => cat([rand([2, 3]), rand([2, 3, 1])], 0)).toThrow('cat: tensor 1 has shape [2, 3, 1]');
    expect(() => cat([rand([2, 3])], 2)).toThrow('cat: axis 2 is out of range for a tensor of rank 2');
    expect(() => cat([tensor(1), tensor(2)])).toThrow('cat: axis 0 is out of range for a tensor of rank 0');
    registerBackend({ ...cpuBackend, name: 'other' });
    expect(() => cat([rand([2]), rand([2]).to('other')])).toThrow('dtypes and devices must match');
    const gone = rand([2]);
    gone.dispose();
    expect(() => cat([rand([2]), gone])).toThrow('cat: tensor float32[2] on cpu was disposed');
  });
});

describe('stack', () => {
  it('stacks along a new axis anywhere', () => {
    const parts = [rand([2, 3]), rand([2, 3], 'float32', true), transpose(rand([3, 2]))];
    for (const axis of [0, 1, 2, -1, -3]) {
      const ax = axis < 0 ? axis + 3 : axis;
      const out = stack(parts, axis);
      const shape = [2, 3];
      shape.splice(ax, 0, 3);
      expect(out.shape).toEqual(shape);
      const v = parts.map((p) => p.toFloat64Array());
      const got = out.toFloat64Array();
      // out[c] with the stacking coordinate removed reads part c.
      for (let flat = 0; flat < got.length; flat++) {
        const c = [Math.floor(flat / (shape[1]! * shape[2]!)), Math.floor(flat / shape[2]!) % shape[1]!, flat % shape[2]!];
        const which = c[ax]!;
        c.splice(ax, 1);
        expect(got[flat]).toBe(v[which]![c[0]! * 3 + c[1]!]);
      }
    }
    expect(stack([tensor(1), tensor(2)]).toArray()).toEqual([1, 2]);
  });

  it('rejects unequal shapes and bad axes', () => {
    expect(() => stack([])).toThrow('stack: needs at least one tensor');
    expect(() => stack([rand([2, 3]), rand([3, 2])])).toThrow('stack: tensor 1 has shape [3, 2] but tensor 0 has [2, 3]; all shapes must be equal');
    expect(() => stack([rand([2]), rand([2])], 2)).toThrow('stack: axis 2 is out of range for a tensor of rank 2');
  });
});

describe('split and chunk', () => {
  it('split by chunk size returns views with the last piece smaller', () => {
    const x = rand([5, 3]);
    const pieces = split(x, 2);
    expect(pieces.map((p) => p.shape)).toEqual([[2, 3], [2, 3], [1, 3]]);
    for (const p of pieces) expect(p.storage).toBe(x.storage);
    const v = x.toFloat64Array();
    expect(Array.from(pieces[2]!.toFloat64Array())).toEqual(Array.from(v.slice(12, 15)));
    expect(split(x, 5).length).toBe(1);
    expect(split(x, 9).map((p) => p.shape)).toEqual([[5, 3]]);
    const y = transpose(rand([7, 2]));
    const cols = split(y, 3, -1);
    expect(cols.map((p) => p.shape)).toEqual([[2, 3], [2, 3], [2, 1]]);
    const yv = y.toFloat64Array();
    expect(Array.from(cols[1]!.toFloat64Array())).toEqual([yv[3], yv[4], yv[5], yv[10], yv[11], yv[12]]);
    expect(split(rand([0, 2]), 2).map((p) => p.shape)).toEqual([[0, 2]]);
  });

  it('split by sizes gives exact pieces, zero sizes included', () => {
    const x = rand([2, 6], 'int32', true);
    const pieces = split(x, [1, 0, 4, 1], 1);
    expect(pieces.map((p) => p.shape)).toEqual([[2, 1], [2, 0], [2, 4], [2, 1]]);
    const v = x.toFloat64Array();
    expect(Array.from(pieces[2]!.toFloat64Array())).toEqual([v[1], v[2], v[3], v[4], v[7], v[8], v[9], v[10]]);
    expect(Array.from(cat(pieces, 1).toFloat64Array())).toEqual(Array.from(v));
  });

  it('chunk splits into at most n pieces of ceil(size / n)', () => {
    const x = rand([5, 2]);
    expect(chunk(x, 3).map((p) => p.shape[0])).toEqual([2, 2, 1]);
    expect(chunk(rand([6]), 4).map((p) => p.shape[0])).toEqual([2, 2, 2]);
    expect(chunk(rand([3]), 5).map((p) => p.shape[0])).toEqual([1, 1, 1]);
    expect(chunk(x, 2, -1).map((p) => p.shape)).toEqual([[5, 1], [5, 1]]);
    expect(chunk(rand([0]), 3).map((p) => p.shape)).toEqual([[0]]);
    expect(chunk(x, 1)[0]!.storage).toBe(x.storage);
  });

  it('rejects bad sizes with clear errors', () => {
    const x = rand([5, 2]);
    expect(() => split(x, [2, 2])).toThrow('split: sizes [2, 2] add up to 4 but dim 0 of [5, 2] has size 5');
    expect(() => split(x, [6, -1])).toThrow('split: sizes must be non-negative integers, got [6, -1]');
    expect(() => split(x, 0)).toThrow('split: chunk size must be a positive integer, got 0');
    expect(() => split(x, 1.5)).toThrow('split: chunk size must be a positive integer');
    expect(() => split(x, 1, 2)).toThrow('split: axis 2 is out of range');
    expect(() => chunk(x, 0)).toThrow('chunk: number of chunks must be a positive integer, got 0');
    expect(() => chunk(x, 2, -3)).toThrow('chunk: axis -3 is out of range');
  });
});
