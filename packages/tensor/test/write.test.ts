import { describe, expect, it } from 'vitest';
import { copyInto, copyIntoAt, expand, hasRepeatedElements, narrow, permute, slice, tensor, transpose, type DType, type Tensor } from '../src/index.js';
import { randomTensor } from '../src/testing.js';

let seed = 900;
const rand = (shape: number[], dtype: DType = 'float32', nonContiguous = false) =>
  randomTensor(shape, { seed: seed++, dtype, nonContiguous, low: -9, high: 9 });

/** Row-major element offsets of a view, from its shape, strides and offset (float64 reference walk). */
function offsetsOf(t: Tensor): number[] {
  const out: number[] = [];
  const walk = (dim: number, at: number) => {
    if (dim === t.rank) {
      out.push(at);
      return;
    }
    for (let i = 0; i < t.shape[dim]!; i++) walk(dim + 1, at + i * t.strides[dim]!);
  };
  walk(0, t.offset);
  return out;
}


describe('copyInto', () => {
  it('writes a source of any layout into a destination view of a larger buffer, leaving the rest alone', () => {
    for (const dtype of ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int8', 'uint8'] as const) {
      for (const srcStrided of [false, true]) {
        const buffer = rand([2, 3, 7, 5], dtype);
        const before = buffer.toFloat64Array();
        // dst: positions 2..5 of axis 2, with axes 1 and 3 swapped (a strided, offset view).
        const dst = permute(narrow(buffer, 2, 2, 3), [0, 3, 2, 1]);
        const src = rand([2, 5, 3, 3], dtype, srcStrided);
        copyInto(dst, src);
        const expected = Array.from(before);
        const values = src.toFloat64Array();
        offsetsOf(dst).forEach((at, i) => (expected[at] = values[i]!));
        expect(Array.from(buffer.toFloat64Array())).toEqual(expected);
        // The view sees the same values as src.
        expect(Array.from(dst.toFloat64Array())).toEqual(Array.from(values));
      }
    }
  });

  it('keeps the bit patterns of half types (NaN payloads, negative zero)', () => {
    const src = tensor([-0, Number.NaN, 65504, 1e-7], { dtype: 'float16' });
    const dst = tensor([1, 2, 3, 4], { dtype: 'float16' });
    copyInto(dst, src);
    expect(Object.is(dst.toFloat64Array()[0], -0)).toBe(true);
    expect(Array.from(dst.storage.handle as Uint16Array)).toEqual(Array.from(src.storage.handle as Uint16Array));
  });

  it('writes through a transposed destination of odd size', () => {
    const buffer = rand([5, 3]);
    const dst = transpose(buffer);
    const src = rand([3, 5], 'float32', true);
    copyInto(dst, src);
    const s = src.toFloat64Array();
    const b = buffer.toFloat64Array();
    for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) expect(b[j * 3 + i]).toBe(s[i * 5 + j]);
  });

  it('refuses what it cannot write exactly', () => {
    const a = rand([2, 3]);
    expect(() => copyInto(a, rand([3, 2]))).toThrow(/shape \[2, 3\].*\[3, 2\]/);
    expect(() => copyInto(a, rand([2, 3], 'float64'))).toThrow(/float32 but src is float64/);
    expect(() => copyInto(a, transpose(transpose(a)))).toThrow(/share memory/);
    expect(() => copyInto(expand(rand([1, 3]), [2, 3]), rand([2, 3]))).toThrow(/repeats elements/);
    const leaf = rand([2, 3]);
    leaf.requiresGrad = true;
    expect(() => copyInto(leaf, rand([2, 3]))).toThrow(/requires a gradient/);
    expect(() => copyInto(rand([2, 3]), leaf)).toThrow(/requires a gradient/);
    const gone = rand([2, 3]);
    gone.dispose();
    expect(() => copyInto(gone, rand([2, 3]))).toThrow(/disposed/);
    expect(() => copyInto(a, 3 as never)).toThrow(/src must be a tensor/);
  });

  it('tells repeated elements from distinct ones', () => {
    expect(hasRepeatedElements(rand([4, 3]))).toBe(false);
    expect(hasRepeatedElements(transpose(rand([4, 3])))).toBe(false);
    expect(hasRepeatedElements(slice(rand([9, 3]), 0, 1, 9, 2))).toBe(false);
    expect(hasRepeatedElements(expand(rand([4, 1]), [4, 5]))).toBe(true);
    expect(hasRepeatedElements(expand(rand([1]), [1]))).toBe(false);
  });
});

describe('copyIntoAt', () => {
  it('writes at the position an int32 tensor holds, along any axis, into strided buffers; a start that does not fit writes nothing', () => {
    for (const axis of [0, 1, 2]) {
      for (const start of [0, 2, 4, 5, -1]) {
        const buffer = rand([6, 7, 6], 'float32');
        const target = axis === 1 ? permute(buffer, [0, 1, 2]) : transpose(buffer, 0, 2); // a strided view for axes 0 and 2
        const shape = [...target.shape];
        shape[axis] = 2;
        const src = rand(shape, 'float32', true);
        const before = buffer.toFloat64Array();
        copyIntoAt(target, axis, tensor([start], { dtype: 'int32' }), src);
        const expected = Array.from(before);
        if (start >= 0 && start + 2 <= target.shape[axis]!) {
          const window = narrow(target, axis, start, 2);
          const values = src.toFloat64Array();
          offsetsOf(window).forEach((at, i) => (expected[at] = values[i]!));
        }
        expect(Array.from(buffer.toFloat64Array())).toEqual(expected);
      }
    }
  });

  it('refuses what it cannot write', () => {
    const buffer = rand([2, 8, 3]);
    const at = tensor([1], { dtype: 'int32' });
    expect(() => copyIntoAt(buffer, 1, tensor([1]), rand([2, 1, 3]))).toThrow(/position must be an int32 tensor of one element/);
    expect(() => copyIntoAt(buffer, 1, tensor([1, 2], { dtype: 'int32' }), rand([2, 1, 3]))).toThrow(/position must be an int32/);
    expect(() => copyIntoAt(buffer, 1, at, rand([2, 1, 4]))).toThrow(/does not fit/);
    expect(() => copyIntoAt(buffer, 1, at, rand([2, 9, 3]))).toThrow(/does not fit/);
    expect(() => copyIntoAt(buffer, 3, at, rand([2, 1, 3]))).toThrow(/axis 3 is out of range/);
    expect(() => copyIntoAt(buffer, 1, at, rand([2, 1, 3], 'float64'))).toThrow(/float32 but src is float64/);
    expect(() => copyIntoAt(buffer, 1, at, narrow(buffer, 1, 0, 1))).toThrow(/shares memory/);
  });
});
