// Descriptor reshaping (runs everywhere: a pure function of the descriptor).
import { describe, expect, it } from 'vitest';
import { reshapeDense } from '../src/kernels/dense.js';

/** [address, offset, dtype code, rank, ...shape, ...strides]. */
const descriptor = (shape: number[], strides: number[]) => new Float64Array([123456, 7, 3, shape.length, ...shape, ...strides]);

describe('reshapeDense', () => {
  it('describes the same elements with a new shape and row-major strides', () => {
    const d = descriptor([6, 35], [35, 1]);
    expect(Array.from(reshapeDense(d, [2, 3, 5, 7]))).toEqual([123456, 7, 3, 4, 2, 3, 5, 7, 105, 35, 7, 1]);
    expect(Array.from(reshapeDense(d, [210]))).toEqual([123456, 7, 3, 1, 210, 1]);
    expect(Array.from(reshapeDense(descriptor([], []), [1, 1]))).toEqual([123456, 7, 3, 2, 1, 1, 1, 1]);
  });

  it('refuses a shape of another size', () => {
    expect(() => reshapeDense(descriptor([4, 5], [5, 1]), [3, 7])).toThrow(/cannot view 20 elements as \[3, 7\]/);
  });
});
