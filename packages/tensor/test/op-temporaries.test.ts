// Op front ends free the views and scalar tensors they make: outside any tidy scope, an op
// leaves exactly one new live tensor (its result).
import { describe, expect, it } from 'vitest';
import { add, gt, matmul, memoryStats, mul, tensor, where } from '../src/index.js';

function liveAfter(fn: () => unknown): number {
  const before = memoryStats().liveTensors;
  fn();
  return memoryStats().liveTensors - before;
}

describe('op temporaries', () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]]);
  const row = tensor([10, 20, 30]);
  const v = tensor([1, 1, 1]);
  const w = tensor([1, 1]);

  it('binary ops with broadcasting or a number operand keep only their result', () => {
    expect(liveAfter(() => add(a, row))).toBe(1);
    expect(liveAfter(() => mul(a, 2))).toBe(1);
    expect(liveAfter(() => gt(3, a))).toBe(1);
  });

  it('where and matmul with 1-D or broadcast operands keep only their result', () => {
    expect(liveAfter(() => where(gt(a, 2), a, 0))).toBe(2); // the condition and the result
    expect(liveAfter(() => matmul(a, v))).toBe(1);
    expect(liveAfter(() => matmul(w, matmul(a, v)))).toBe(2); // the inner and the outer result
    expect(matmul(a, v).toArray()).toEqual([6, 15]);
  });
});
