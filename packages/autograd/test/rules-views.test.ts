// Gradients of views, copies and casts.
import { describe, expect, it } from 'vitest';
import * as T from '@blora/tensor';
import { cpuBackend, listKernels, registerBackend, tensor } from '@blora/tensor';
import { gradcheck, gradFnName, listGradients } from '../src/index.js';
import { leaf, values } from './helpers.js';

describe('view rules', () => {
  it('reshape, view, flatten, squeeze, unsqueeze', () => {
    gradcheck((x) => T.reshape(x, [4, 3]), [leaf([2, 6], 1)]);
    gradcheck((x) => T.reshape(x, [-1]), [leaf([2, 3, 2], 2, { nonContiguous: true })]);
    gradcheck((x) => T.flatten(x, 1), [leaf([2, 3, 2], 3)]);
    gradcheck((x) => T.squeeze(x), [leaf([1, 3, 1], 4)]);
    gradcheck((x) => T.unsqueeze(x, 1), [leaf([3, 2], 5, { nonContiguous: true })]);
  });

  it('permute and transpose', () => {
    gradcheck((x) => T.permute(x, [2, 0, 1]), [leaf([2, 3, 4], 6)]);
    gradcheck((x) => T.transpose(x), [leaf([3, 5], 7, { nonContiguous: true })]);
  });

  it('slice with steps, narrow, split and chunk', () => {
    gradcheck((x) => T.slice(x, 1, 1, 4), [leaf([3, 5], 8)]);
    gradcheck((x) => T.slice(x, 0, 0, 7, 3), [leaf([7, 2], 9, { nonContiguous: true })]);
    gradcheck((x) => T.slice(x, -1, 1, undefined, 2), [leaf([2, 6], 10)]);
    gradcheck((x) => T.slice(x, 0, 2, 2), [leaf([4], 11)]);
    gradcheck((x) => T.narrow(x, 0, 2, 1), [leaf([4, 2], 12)]);
    gradcheck((x) => T.split(x, [1, 3], 1), [leaf([2, 4], 13)]);
    gradcheck((x) => T.chunk(x, 2, 0), [leaf([5, 2], 14)]);
  });

  it('slice places the gradient at the sliced positions', () => {
    const x = leaf([6], 1);
    T.sum(T.mul(T.slice(x, 0, 1, 6, 2), tensor([1, 2, 3], { dtype: 'float64' }))).backward();
    expect(values(x.grad!)).toEqual([0, 1, 0, 2, 0, 3]);
  });

  it('expand sums over the broadcast dims', () => {
    gradcheck((x) => T.expand(x, [2, 3, 4]), [leaf([3, 1], 15)]);
    gradcheck((x) => T.expand(x, [4, 2, 3]), [leaf([2, 3], 16, { nonContiguous: true })]);
    gradcheck((x) => T.expand(x, [3, 2]), [leaf([], 17)]);
    const x = leaf([2, 1], 1);
    T.sum(T.expand(x, [3, 2, 4])).backward();
    expect(values(x.grad!)).toEqual([12, 12]);
  });

  it('contiguous, clone, cast and to', () => {
    gradcheck((x) => T.contiguous(x), [leaf([3, 4], 18, { nonContiguous: true })]);
    gradcheck((x) => T.clone(x), [leaf([3, 4], 19)]);
    gradcheck((x) => T.cast(T.cast(x, 'float32'), 'float64'), [leaf([3], 20)], { atol: 1e-4, eps: 1e-3 });
    gradcheck((x) => x.to('cpu'), [leaf([2], 21)]);
  });

  it('a float32 -> float64 cast gives a float32 gradient', () => {
    const x = tensor([1, 2], { dtype: 'float32' });
    x.requiresGrad = true;
    T.sum(T.square(T.cast(x, 'float64'))).backward();
    expect(x.grad!.dtype).toBe('float32');
    expect(values(x.grad!)).toEqual([2, 4]);
  });

  it('stack and cat', () => {
    gradcheck((a, b) => T.cat([a, b], 1), [leaf([2, 3], 22), leaf([2, 1], 23, { nonContiguous: true })]);
    gradcheck((a, b) => T.cat([a, b, a], 0), [leaf([1, 3], 24), leaf([2, 3], 25)]);
    gradcheck((a, b) => T.stack([a, b], 1), [leaf([2, 3], 26), leaf([2, 3], 27)]);
    gradcheck((a, b) => T.cat([a, b], 0), [leaf([0, 2], 28), leaf([3, 2], 29)]);
  });
});

describe('coverage', () => {
  it('every op with a kernel has a gradient rule, except the ones that are not differentiable', () => {
    const notDifferentiable = new Set([
      'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'argmax', 'argmin', 'isFinite', 'fill',
      'randUniform', 'randNormal', 'randInt', 'randBernoulli', 'adamwStep', 'copyInto', 'copyIntoAt',
      'rmsNormBackward', 'crossEntropyBackward', 'attentionBackward', 'siluBackward', 'geluBackward', 'geluTanhBackward',
    ]);
    const rules = new Set(listGradients());
    const missing = listKernels('cpu').filter((op) => !rules.has(op) && !notDifferentiable.has(op));
    expect(missing).toEqual([]);
  });
});

describe('moving between devices', () => {
  it("the 'to' rule sends the gradient back to the input's device", () => {
    // A second host device, so that 'to' really moves data.
    registerBackend({ ...cpuBackend, name: 'host2' });
    const x = tensor([1, 2, 3], { dtype: 'float64' });
    x.requiresGrad = true;
    const there = x.to('host2');
    expect(gradFnName(there)).toBe('to');
    const back = there.to('cpu');
    T.sum(T.mul(back, tensor([4, 5, 6], { dtype: 'float64' }))).backward();
    expect(x.grad!.device).toBe('cpu');
    expect(Array.from(x.grad!.toFloat64Array())).toEqual([4, 5, 6]);
  });
});
