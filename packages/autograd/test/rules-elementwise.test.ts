// Gradients of the elementwise ops, checked against central finite differences in float64,
// on contiguous, non-contiguous and broadcast operands.
import { describe, expect, it } from 'vitest';
import * as T from '@blora/tensor';
import { tensor, type Tensor } from '@blora/tensor';
import { gradcheck } from '../src/index.js';
import { leaf, values } from './helpers.js';

type UnaryCase = [string, (x: Tensor) => Tensor, number, number];
const unaryCases: UnaryCase[] = [
  ['neg', T.neg, -1, 1],
  ['abs', T.abs, -1, 1],
  ['exp', T.exp, -2, 2],
  ['log', T.log, 0.2, 3],
  ['sqrt', T.sqrt, 0.2, 3],
  ['rsqrt', T.rsqrt, 0.2, 3],
  ['tanh', T.tanh, -2, 2],
  ['sigmoid', T.sigmoid, -4, 4],
  ['silu', T.silu, -4, 4],
  ['relu', T.relu, -1, 1],
  ['square', T.square, -2, 2],
  ['reciprocal', T.reciprocal, 0.3, 2],
  ['sin', T.sin, -3, 3],
  ['cos', T.cos, -3, 3],
  ['gelu exact', (x) => T.gelu(x, 'none'), -4, 4],
  ['gelu tanh', (x) => T.gelu(x, 'tanh'), -4, 4],
];

describe('unary rules', () => {
  for (const [name, f, low, high] of unaryCases) {
    it(`${name}: contiguous and non-contiguous inputs`, () => {
      gradcheck(f, [leaf([3, 5], 11, { low, high })]);
      gradcheck(f, [leaf([2, 3, 4], 12, { low, high, nonContiguous: true })]);
      gradcheck(f, [leaf([], 13, { low, high })]);
    });
  }

  it('gelu exact near zero and in the tails (series branch of the CDF)', () => {
    const x = tensor([-1e-4, 3e-4, -9e-4, 2e-3, -6, 7, 0.5], { dtype: 'float64' });
    x.requiresGrad = true;
    gradcheck((t) => T.gelu(t, 'none'), [x], { eps: 1e-7 });
    // At exactly 0 the derivative is 1/2.
    const z = tensor([0], { dtype: 'float64' });
    z.requiresGrad = true;
    T.sum(T.gelu(z, 'none')).backward();
    expect(values(z.grad!)[0]).toBeCloseTo(0.5, 14);
  });

  it('abs and relu have zero gradient at 0', () => {
    const x = tensor([0, 0], { dtype: 'float64' });
    x.requiresGrad = true;
    T.sum(T.add(T.abs(x), T.relu(x))).backward();
    expect(values(x.grad!)).toEqual([0, 0]);
  });

  it('handles empty tensors', () => {
    const x = leaf([0, 3], 3);
    T.sum(T.exp(x)).backward();
    expect(x.grad!.shape).toEqual([0, 3]);
  });

  it('float32 gradients match the float64 formula', () => {
    const v = [-1.5, -0.2, 0.3, 2];
    const x = tensor(v, { dtype: 'float32' });
    x.requiresGrad = true;
    T.sum(T.tanh(x)).backward();
    expect(x.grad!.dtype).toBe('float32');
    const expected = v.map((a) => 1 - Math.tanh(a) ** 2);
    values(x.grad!).forEach((g, i) => expect(g).toBeCloseTo(expected[i]!, 6));
  });
});

type BinaryCase = [string, (a: Tensor, b: Tensor) => Tensor, number, number];
const binaryCases: BinaryCase[] = [
  ['add', T.add, -1, 1],
  ['sub', T.sub, -1, 1],
  ['mul', T.mul, -1, 1],
  ['div', T.div, 0.5, 2],
  ['pow', T.pow, 0.5, 2],
  ['maximum', T.maximum, -1, 1],
  ['minimum', T.minimum, -1, 1],
  ['siluMul', T.siluMul, -3, 3],
];

describe('binary rules', () => {
  for (const [name, f, low, high] of binaryCases) {
    it(`${name}: equal shapes, broadcasting both ways, non-contiguous`, () => {
      gradcheck(f, [leaf([3, 4], 1, { low, high }), leaf([3, 4], 2, { low, high })]);
      gradcheck(f, [leaf([2, 3, 4], 3, { low, high }), leaf([4], 4, { low, high })]);
      gradcheck(f, [leaf([3, 1], 5, { low, high, nonContiguous: true }), leaf([2, 1, 5], 6, { low, high, nonContiguous: true })]);
      gradcheck(f, [leaf([], 7, { low, high }), leaf([2, 3], 8, { low, high })]);
    });
  }

  it('siluMul: a gradient for either operand alone, and the up projection kept only for the gate', () => {
    gradcheck((g) => T.siluMul(g, tensor([0.5, -2, 3], { dtype: 'float64' })), [leaf([3], 10, { low: -3, high: 3 })]);
    gradcheck((u) => T.siluMul(tensor([0.5, -2, 3], { dtype: 'float64' }), u), [leaf([3], 11, { low: -3, high: 3 })]);
  });

  it('a number operand gives a gradient to the tensor only', () => {
    const x = leaf([2, 3], 9, { low: 0.5, high: 2 });
    gradcheck((t) => T.pow(t, 3), [x]);
    gradcheck((t) => T.div(2, t), [x]);
    gradcheck((t) => T.sub(1, t), [x]);
  });

  it('the same tensor on both sides gets both contributions', () => {
    const x = tensor([1.5, -2], { dtype: 'float64' });
    x.requiresGrad = true;
    T.sum(T.mul(x, x)).backward();
    expect(values(x.grad!)).toEqual([3, -4]);
  });

  it('pow: the exponent gradient is 0 where the base is 0', () => {
    const a = tensor([0, 2], { dtype: 'float64' });
    const b = tensor([2, 3], { dtype: 'float64' });
    b.requiresGrad = true;
    T.sum(T.pow(a, b)).backward();
    const g = values(b.grad!);
    expect(g[0]).toBe(0);
    expect(g[1]).toBeCloseTo(8 * Math.log(2), 12);
  });

  it('maximum / minimum split the gradient evenly on ties', () => {
    const a = tensor([1, 2, 3], { dtype: 'float64' });
    const b = tensor([1, 5, 0], { dtype: 'float64' });
    a.requiresGrad = true;
    b.requiresGrad = true;
    T.sum(T.maximum(a, b)).backward();
    expect(values(a.grad!)).toEqual([0.5, 0, 1]);
    expect(values(b.grad!)).toEqual([0.5, 1, 0]);
    a.grad = null;
    b.grad = null;
    T.sum(T.minimum(a, b)).backward();
    expect(values(a.grad!)).toEqual([0.5, 1, 0]);
    expect(values(b.grad!)).toEqual([0.5, 0, 1]);
  });
});

describe('where and clamp', () => {
  it('where routes the gradient by the condition, with broadcasting', () => {
    const cond = tensor([[1, 0, 1], [0, 0, 1]], { dtype: 'uint8' });
    const a = leaf([2, 3], 1);
    const b = leaf([3], 2, { nonContiguous: true });
    gradcheck((x, y) => T.where(cond, x, y), [a, b]);
    T.sum(T.where(cond, a, b)).backward();
    expect(values(a.grad!)).toEqual([1, 0, 1, 0, 0, 1]);
    expect(values(b.grad!)).toEqual([1, 2, 0]);
  });

  it('clamp passes the gradient inside the bounds (bounds included)', () => {
    gradcheck((x) => T.clamp(x, -0.3, 0.4), [leaf([4, 5], 3)]);
    gradcheck((x) => T.clamp(x, null, 0.1), [leaf([4, 5], 4, { nonContiguous: true })]);
    gradcheck((x) => T.clamp(x, -0.2), [leaf([7], 5)]);
    const x = tensor([-1, -0.5, 0, 0.5, 1], { dtype: 'float64' });
    x.requiresGrad = true;
    T.sum(T.clamp(x, -0.5, 0.5)).backward();
    expect(values(x.grad!)).toEqual([0, 1, 1, 1, 0]);
  });
});

describe('non-differentiable ops', () => {
  it('comparisons, argmax and isFinite give results that do not require grad', () => {
    const x = leaf([2, 3], 1);
    expect(T.gt(x, 0).requiresGrad).toBe(false);
    expect(T.argmax(x, 1).requiresGrad).toBe(false);
    expect(T.isFinite(x).requiresGrad).toBe(false);
    expect(T.cast(x, 'int32').requiresGrad).toBe(false);
  });
});
