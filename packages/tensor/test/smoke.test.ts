import { describe, expect, it } from 'vitest';
import { add, arange, expand, memoryStats, permute, reshape, slice, tensor, tidy, transpose, zeros } from '../src/index.js';

describe('core', () => {
  it('views share storage and read strided', () => {
    const a = reshape(arange(6), [2, 3]);
    const t = transpose(a);
    expect(t.shape).toEqual([3, 2]);
    expect(t.toArray()).toEqual([[0, 3], [1, 4], [2, 5]]);
    expect(t.storage).toBe(a.storage);
    expect(slice(a, 1, 1).toArray()).toEqual([[1, 2], [4, 5]]);
    expect(permute(a, [1, 0]).isContiguous).toBe(false);
  });
  it('broadcast add', () => {
    const a = tensor([[1, 2, 3], [4, 5, 6]]);
    const b = tensor([10, 20, 30]);
    expect(add(a, b).toArray()).toEqual([[11, 22, 33], [14, 25, 36]]);
    expect(add(transpose(a), 1).toArray()).toEqual([[2, 5], [3, 6], [4, 7]]);
    expect(expand(tensor([1]), [3]).toArray()).toEqual([1, 1, 1]);
  });
  it('tidy frees', () => {
    const before = memoryStats().liveTensors;
    const kept = tidy(() => { const z = zeros([4]); add(z, 1); return add(z, 2); });
    expect(memoryStats().liveTensors).toBe(before + 1);
    expect(kept.toArray()).toEqual([2, 2, 2, 2]);
  });
});
