// Gradients of matmul, the indexing ops, pooling and the composite activations.
import { describe, expect, it } from 'vitest';
import * as T from '@blora/tensor';
import { Generator, tensor } from '@blora/tensor';
import { dropout, geglu, gradcheck, swiglu } from '../src/index.js';
import { leaf, values } from './helpers.js';

describe('matmul rule', () => {
  it('2-D, 1-D operands, batched and broadcast batches, transposed operands', () => {
    gradcheck(T.matmul, [leaf([3, 4], 1), leaf([4, 5], 2)]);
    gradcheck(T.matmul, [leaf([4], 3), leaf([4, 2], 4)]);
    gradcheck(T.matmul, [leaf([3, 4], 5), leaf([4], 6)]);
    gradcheck(T.matmul, [leaf([4], 7), leaf([4], 8)]);
    gradcheck(T.matmul, [leaf([2, 3, 4], 9), leaf([4, 2], 10)]);
    gradcheck(T.matmul, [leaf([2, 1, 3, 4], 11, { nonContiguous: true }), leaf([3, 4, 2], 12)]);
    gradcheck((a, b) => T.matmul(a, T.transpose(b)), [leaf([3, 4], 13), leaf([5, 4], 14)]);
  });

  it('matches da = g b^T and db = a^T g computed with loops', () => {
    const [m, k, n] = [2, 3, 2];
    const a = leaf([m, k], 1);
    const b = leaf([k, n], 2);
    const g = leaf([m, n], 3);
    T.matmul(a, b).backward(g);
    const A = values(a), B = values(b), G = values(g);
    const da = values(a.grad!), db = values(b.grad!);
    for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += G[i * n + j]! * B[p * n + j]!;
      expect(da[i * k + p]).toBeCloseTo(s, 14);
    }
    for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += A[i * k + p]! * G[i * n + j]!;
      expect(db[p * n + j]).toBeCloseTo(s, 14);
    }
  });

  it('a frozen operand gets no gradient', () => {
    const a = leaf([2, 3], 1);
    const w = tensor([[1, 2], [3, 4], [5, 6]], { dtype: 'float64' });
    T.sum(T.matmul(a, w)).backward();
    expect(w.grad).toBeNull();
    expect(values(a.grad!)).toEqual([3, 7, 11, 3, 7, 11]);
  });
});

describe('indexing rules', () => {
  const index = (v: number[]) => tensor(v, { dtype: 'int32' });

  it('indexSelect with repeated indices accumulates', () => {
    gradcheck((x) => T.indexSelect(x, 0, index([2, 0, 2, 1])), [leaf([3, 4], 1)]);
    gradcheck((x) => T.indexSelect(x, 1, index([1, 1])), [leaf([2, 3], 2, { nonContiguous: true })]);
    const x = leaf([3, 2], 3);
    T.sum(T.indexSelect(x, 0, index([2, 2, 0]))).backward();
    expect(values(x.grad!)).toEqual([1, 1, 0, 0, 2, 2]);
  });

  it('embedding scatter-adds into the table', () => {
    const ids = tensor([[0, 3], [3, 1]], { dtype: 'int32' });
    gradcheck((w) => T.embedding(w, ids), [leaf([4, 3], 4)]);
    const w = leaf([4, 2], 5);
    T.sum(T.embedding(w, ids)).backward();
    expect(values(w.grad!)).toEqual([1, 1, 1, 1, 0, 0, 2, 2]);
  });

  it('gather scatter-adds back', () => {
    const idx = tensor([[0, 2, 2], [1, 1, 0]], { dtype: 'int32' });
    gradcheck((x) => T.gather(x, 1, idx), [leaf([2, 3], 6)]);
    gradcheck((x) => T.gather(x, 0, tensor([[1, 0]], { dtype: 'int32' })), [leaf([2, 3], 7, { nonContiguous: true })]);
  });

  it('scatterAdd and indexAdd pass the gradient to x and gather it for src', () => {
    const idx = tensor([[0, 2], [1, 1]], { dtype: 'int32' });
    gradcheck((x, s) => T.scatterAdd(x, 1, idx, s), [leaf([2, 3], 8), leaf([2, 2], 9)]);
    // src larger than index: the uncovered part of src gets zero gradient.
    gradcheck((x, s) => T.scatterAdd(x, 1, idx, s), [leaf([3, 3], 10), leaf([3, 4], 11)]);
    gradcheck((x, s) => T.indexAdd(x, 0, index([2, 0, 2]), s), [leaf([3, 2], 12), leaf([3, 2], 13, { nonContiguous: true })]);
  });
});

describe('pooling rules', () => {
  it('avgPool1d', () => {
    gradcheck((x) => T.avgPool1d(x, 2), [leaf([3, 6], 1)]);
    gradcheck((x) => T.avgPool1d(x, 3), [leaf([2, 2, 9], 2, { nonContiguous: true })]);
    gradcheck((x) => T.avgPool1d(x, 1), [leaf([5], 3)]);
  });

  it('avgPool1d into another dtype: the gradient comes back in x\'s dtype', () => {
    const x = T.cast(tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], { shape: [2, 6], dtype: 'float64' }), 'bfloat16');
    x.requiresGrad = true;
    const y = T.avgPool1d(x, 2, { dtype: 'float32' });
    expect(y.dtype).toBe('float32');
    T.sum(T.mul(y, tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3] }))).backward();
    expect(x.grad!.dtype).toBe('bfloat16');
    // d/dx of mean(x[2j], x[2j + 1]) · w[j] is w[j] / 2 for both elements of the run.
    expect(values(x.grad!)).toEqual([0.5, 0.5, 1, 1, 1.5, 1.5, 2, 2, 2.5, 2.5, 3, 3]);
  });

  it('repeatInterleave', () => {
    gradcheck((x) => T.repeatInterleave(x, 2), [leaf([3, 4], 4)]);
    gradcheck((x) => T.repeatInterleave(x, 3, 0), [leaf([2, 3], 5, { nonContiguous: true })]);
    gradcheck((x) => T.repeatInterleave(x, 2, -2), [leaf([2, 3, 2], 6)]);
    gradcheck((x) => T.repeatInterleave(x, 3), [leaf([2, 2, 3], 8, { nonContiguous: true })]);
    const x = leaf([2], 7);
    T.sum(T.mul(T.repeatInterleave(x, 2), tensor([1, 2, 3, 4], { dtype: 'float64' }))).backward();
    expect(values(x.grad!)).toEqual([3, 7]);
  });

  it('avgPool1dBackward and sumRuns, the maps the two gradients use (and their own gradients)', () => {
    gradcheck((g) => T.avgPool1dBackward(g, 3), [leaf([2, 4], 9)]);
    gradcheck((g) => T.avgPool1dBackward(g, 2), [leaf([3, 2], 10, { nonContiguous: true })]);
    gradcheck((x) => T.sumRuns(x, 2), [leaf([3, 6], 11)]);
    gradcheck((x) => T.sumRuns(x, 3), [leaf([2, 9], 12, { nonContiguous: true })]);
  });

  it('the adapter path pool -> matmul -> repeatInterleave', () => {
    gradcheck((x, a, b) => T.repeatInterleave(T.matmul(T.matmul(T.avgPool1d(x, 2), T.transpose(a)), T.transpose(b)), 2),
      [leaf([3, 8], 1), leaf([2, 4], 2), leaf([3, 2], 3)]);
  });
});

describe('composite activations and dropout', () => {
  it('swiglu and geglu', () => {
    gradcheck(swiglu, [leaf([3, 4], 1, { low: -3, high: 3 }), leaf([3, 4], 2)]);
    gradcheck((g, u) => geglu(g, u), [leaf([3, 4], 3, { low: -3, high: 3 }), leaf([3, 4], 4, { nonContiguous: true })]);
    gradcheck((g, u) => geglu(g, u, 'none'), [leaf([5], 5, { low: -3, high: 3 }), leaf([5], 6)]);
  });

  it('dropout: seeded masks, scaled survivors, same mask in the gradient', () => {
    const x = leaf([50, 40], 7);
    const gen = new Generator(42);
    const y = dropout(x, 0.3, { generator: gen });
    const yv = values(y);
    const xv = values(x);
    let dropped = 0;
    yv.forEach((v, i) => {
      if (v === 0) dropped++;
      else expect(v).toBeCloseTo(xv[i]! / 0.7, 14);
    });
    expect(dropped / yv.length).toBeGreaterThan(0.25);
    expect(dropped / yv.length).toBeLessThan(0.35);
    T.sum(y).backward();
    values(x.grad!).forEach((g, i) => expect(g).toBeCloseTo(yv[i] === 0 ? 0 : 1 / 0.7, 14));
    // Same seed, same mask.
    const again = values(dropout(x, 0.3, { generator: new Generator(42) }));
    expect(again).toEqual(yv);
    // Finite differences with the stream rewound before each evaluation.
    gradcheck((t) => dropout(t, 0.5, { generator: new Generator(7) }), [leaf([4, 6], 8)]);
  });

  it('dropout in evaluation mode or with p = 0 is the identity; p must be in [0, 1)', () => {
    const x = leaf([3], 1);
    expect(dropout(x, 0.5, { training: false })).toBe(x);
    expect(dropout(x, 0)).toBe(x);
    expect(() => dropout(x, 1)).toThrow(/dropout: p must be in \[0, 1\), got 1/);
  });
});
