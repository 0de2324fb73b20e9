// Gradients of the reductions and softmax, checked against finite differences in float64.
import { describe, expect, it } from 'vitest';
import * as T from '@blora/tensor';
import { tensor } from '@blora/tensor';
import { gradcheck } from '../src/index.js';
import { leaf, values } from './helpers.js';

const axesCases: [number[] | undefined, boolean][] = [
  [undefined, false],
  [[0], false],
  [[1], true],
  [[0, 2], false],
  [[-1], true],
  [[], false],
];

describe('reduction rules', () => {
  for (const op of ['sum', 'mean', 'max', 'min', 'logsumexp'] as const) {
    it(`${op} over various axes, keepdim, non-contiguous`, () => {
      for (const [axes, keepdim] of axesCases) {
        gradcheck((x) => T[op](x, axes, keepdim), [leaf([2, 3, 4], 21)]);
        gradcheck((x) => T[op](x, axes, keepdim), [leaf([2, 3, 5], 22, { nonContiguous: true })]);
      }
      gradcheck((x) => T[op](x), [leaf([], 23)]);
      gradcheck((x) => T[op](x, 1), [leaf([3, 1], 24)]);
    });
  }

  it('variance with corrections 0, 1 and 2', () => {
    for (const correction of [0, 1, 2]) {
      for (const [axes, keepdim] of axesCases.slice(0, 5)) {
        gradcheck((x) => T.variance(x, axes, { correction, keepdim }), [leaf([3, 3, 4], 25, { nonContiguous: true })]);
      }
    }
  });

  it('sum over an empty dim gives a zero-size gradient', () => {
    const x = leaf([0, 3], 1);
    T.sum(T.sum(x, 0)).backward();
    expect(x.grad!.shape).toEqual([0, 3]);
  });

  it('max splits the gradient evenly between tied maxima', () => {
    const x = tensor([[1, 3, 3], [2, 0, -1]], { dtype: 'float64' });
    x.requiresGrad = true;
    T.sum(T.max(x, 1)).backward();
    expect(values(x.grad!)).toEqual([0, 0.5, 0.5, 1, 0, 0]);
  });

  it('mean gradient is 1/n per element (hand-computed)', () => {
    const x = leaf([4, 5], 2);
    T.mean(x).backward();
    for (const g of values(x.grad!)) expect(g).toBeCloseTo(1 / 20, 15);
  });
});

describe('softmax rules', () => {
  for (const op of ['softmax', 'logSoftmax'] as const) {
    it(`${op} along each axis`, () => {
      gradcheck((x) => T[op](x, -1), [leaf([3, 5], 31, { low: -3, high: 3 })]);
      gradcheck((x) => T[op](x, 0), [leaf([3, 5], 32, { low: -3, high: 3, nonContiguous: true })]);
      gradcheck((x) => T[op](x, 1), [leaf([2, 4, 3], 33)]);
      gradcheck((x) => T[op](x), [leaf([1], 34)]);
    });
  }

  it('softmax gradient matches the Jacobian computed with loops', () => {
    const v = [0.3, -1.2, 2.0, 0.5];
    const w = [1, -2, 0.5, 3];
    const x = tensor(v, { dtype: 'float64' });
    x.requiresGrad = true;
    T.sum(T.mul(T.softmax(x), tensor(w, { dtype: 'float64' }))).backward();
    const e = v.map(Math.exp);
    const z = e.reduce((a, b) => a + b, 0);
    const s = e.map((a) => a / z);
    const dot = s.reduce((acc, si, i) => acc + si * w[i]!, 0);
    values(x.grad!).forEach((g, i) => expect(g).toBeCloseTo(s[i]! * (w[i]! - dot), 14));
  });
});
