// The tape: what gets recorded, backward semantics, grad accumulation, grad modes, memory
// release and error messages.
import { describe, expect, it } from 'vitest';
import * as T from '@blora/tensor';
import { memoryStats, tensor, tidy, type Tensor } from '@blora/tensor';
import {
  assignInPlace, backward, detach, requiresGrad, enableGrad, GraphNode, gradcheck, gradFnName, isGradEnabled, noGrad, recordNode, releaseGraph,
} from '../src/index.js';
import { leaf, values } from './helpers.js';

describe('recording', () => {
  it('marks results of ops on tensors that require grad, and only those', () => {
    const x = leaf([2, 3], 1);
    const c = tensor([1, 2, 3], { dtype: 'float64' });
    const y = T.mul(x, c);
    expect(y.requiresGrad).toBe(true);
    expect(gradFnName(y)).toBe('mul');
    expect(gradFnName(x)).toBeNull();
    const z = T.exp(c);
    expect(z.requiresGrad).toBe(false);
    expect(z.gradFn).toBeNull();
  });

  it('noGrad turns recording off, enableGrad back on, both restore the mode on throw', () => {
    const x = leaf([2], 1);
    expect(noGrad(() => T.exp(x)).requiresGrad).toBe(false);
    expect(noGrad(() => enableGrad(() => T.exp(x))).requiresGrad).toBe(true);
    expect(() => noGrad(() => {
      throw new Error('boom');
    })).toThrow('boom');
    expect(isGradEnabled()).toBe(true);
  });

  it('detach shares memory and cuts the graph', () => {
    const x = leaf([3], 2);
    const y = T.mul(x, 2);
    const d = detach(y);
    expect(d.requiresGrad).toBe(false);
    expect(d.gradFn).toBeNull();
    expect(d.storage).toBe(y.storage);
    const z = T.add(T.mul(d, x), x);
    T.sum(z).backward();
    // d is a constant: dz/dx = d + 1 = 2x + 1.
    values(x.grad!).forEach((g, i) => expect(g).toBeCloseTo(2 * values(x)[i]! + 1, 14));
  });

  it('requiresGrad marks float leaves and refuses the rest', () => {
    const x = requiresGrad(tensor([1, 2]));
    expect(x.requiresGrad).toBe(true);
    expect(() => requiresGrad(tensor([1], { dtype: 'int32' }))).toThrow(/only floating-point tensors can require grad, got int32\[1\]/);
    expect(() => requiresGrad(T.exp(x), false)).toThrow(/was produced by 'exp' on the tape; use detach/);
    expect(requiresGrad(x, false).requiresGrad).toBe(false);
  });

  it('assignInPlace writes into the same tensor, converting dtypes, and checks shapes', () => {
    const dst = tensor([0, 0, 0]);
    const storage = dst.storage;
    assignInPlace(dst, T.slice(tensor([1, 9, 2, 9, 3, 9], { dtype: 'float64' }), 0, 0, 6, 2));
    expect(values(dst)).toEqual([1, 2, 3]);
    expect(dst.storage).toBe(storage);
    expect(() => assignInPlace(dst, tensor([1, 2]))).toThrow(/cannot copy float32\[2\] on cpu into float32\[3\] on cpu/);
    expect(() => assignInPlace(T.slice(dst, 0, 1), tensor([1, 2]))).toThrow(/must be contiguous from offset 0/);
  });

  it('saves only what each rule reads', () => {
    const x = leaf([2, 3], 3);
    const w = tensor([[1], [2], [3]], { dtype: 'float64' });
    expect((T.add(x, 1).gradFn as GraphNode).savedCount).toBe(0);
    expect((T.exp(x).gradFn as GraphNode).savedCount).toBe(1);
    // Only the frozen operand is needed to differentiate with respect to x.
    expect((T.matmul(x, w).gradFn as GraphNode).savedCount).toBe(1);
  });
});

describe('backward', () => {
  it('from a scalar, or from any tensor with a given gradient', () => {
    const x = leaf([3], 4);
    T.sum(T.square(x)).backward();
    values(x.grad!).forEach((g, i) => expect(g).toBeCloseTo(2 * values(x)[i]!, 14));
    const y = leaf([2, 2], 5);
    backward(T.mul(y, 3), tensor([[1, 2], [3, 4]], { dtype: 'float64' }));
    expect(values(y.grad!)).toEqual([3, 6, 9, 12]);
  });

  it('accumulates into .grad across calls and over every use of a tensor', () => {
    const x = leaf([2], 6);
    const h = T.mul(x, 2);
    // h feeds two ops.
    T.sum(T.add(T.mul(h, 3), h)).backward();
    expect(values(x.grad!)).toEqual([8, 8]);
    T.sum(x).backward();
    expect(values(x.grad!)).toEqual([9, 9]);
  });

  it('leaf gradients own dense memory even when the rule returns a broadcast view', () => {
    const x = leaf([3, 4], 7);
    T.sum(x).backward();
    expect(x.grad!.isContiguous).toBe(true);
    expect(x.grad!.strides).toEqual([4, 1]);
    expect(x.grad!.storage.numel).toBe(12);
    expect(values(x.grad!)).toEqual(new Array(12).fill(1));
  });

  it('works after the intermediate tensors were disposed', () => {
    const x = leaf([4], 8);
    const loss = tidy(() => T.sum(T.exp(T.mul(x, 2))));
    loss.backward();
    values(x.grad!).forEach((g, i) => expect(g).toBeCloseTo(2 * Math.exp(2 * values(x)[i]!), 12));
  });

  it('frees the graph: a second backward fails clearly unless retainGraph was set', () => {
    const x = leaf([2], 9);
    const y = T.sum(T.exp(x));
    y.backward();
    expect(() => y.backward()).toThrow(/already freed by an earlier backward\(\)/);
    const z = T.sum(T.exp(x));
    x.grad = null;
    backward(z, null, { retainGraph: true });
    const once = values(x.grad!);
    backward(z);
    values(x.grad!).forEach((g, i) => expect(g).toBeCloseTo(2 * once[i]!, 14));
  });

  it('releases everything the tape saved once backward is done', () => {
    const x = leaf([16, 8], 10);
    const w = leaf([8, 4], 11);
    const before = memoryStats();
    tidy(() => {
      const loss = T.mean(T.square(T.tanh(T.matmul(x, w))));
      loss.backward();
    });
    const after = memoryStats();
    // Only the two gradients remain.
    expect(after.liveTensors - before.liveTensors).toBe(2);
    expect(after.bytes - before.bytes).toBe((16 * 8 + 8 * 4) * 8);
  });

  it('releaseGraph frees a graph that will not be differentiated', () => {
    const x = leaf([32], 12);
    const before = memoryStats();
    const y = tidy(() => T.sin(T.exp(x)));
    expect(memoryStats().bytes).toBeGreaterThan(before.bytes + 32 * 8);
    releaseGraph(y);
    y.dispose();
    expect(memoryStats().bytes).toBe(before.bytes);
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
  });

  it('rejects bad calls with clear messages', () => {
    const x = leaf([2, 2], 13);
    expect(() => T.mul(x, 2).backward()).toThrow(/gradient can only be implied for a one-element tensor, got float64\[2, 2\]/);
    expect(() => tensor([1]).backward()).toThrow(/does not require grad/);
    expect(() => backward(T.mul(x, 2), tensor([1, 2], { dtype: 'float64' }))).toThrow(/grad of shape \[2\] does not match the tensor's shape \[2, 2\]/);
    expect(() => backward(T.mul(x, 2), tensor([[1, 2], [3, 4]]))).toThrow(/must have the dtype and device of the tensor/);
  });

  it('multi-output nodes: outputs without a gradient reach the rule as null', () => {
    const x = leaf([4], 15);
    // A two-output node: (2x, x^2); only the first output is used.
    const [twice, squared] = noGrad(() => [T.mul(x, 2), T.square(x)]);
    const seen: (Tensor | null)[] = [];
    recordNode('pair', [x], [twice!, squared!], ({ inputs: [input], outputGrads }) => {
      seen.push(...outputGrads);
      const parts = [outputGrads[0] ? T.mul(outputGrads[0], 2) : null, outputGrads[1] ? T.mul(outputGrads[1], T.mul(input!, 2)) : null];
      return [parts.filter((p): p is Tensor => p !== null).reduce((a, b) => T.add(a, b))];
    });
    T.sum(twice!).backward();
    expect(seen[0]).not.toBeNull();
    expect(seen[1]).toBeNull();
    expect(values(x.grad!)).toEqual([2, 2, 2, 2]);
    gradcheck((t) => {
      const [a, b] = noGrad(() => [T.mul(t, 2), T.square(t)]);
      recordNode('pair', [t], [a!, b!], ({ inputs: [input], outputGrads: [ga, gb] }) => [T.add(T.mul(ga!, 2), T.mul(gb!, T.mul(input!, 2)))]);
      return [a!, b!];
    }, [leaf([3], 16)]);
  });

  it('reports a rule that returns the wrong shape, naming the op', () => {
    const x = leaf([3], 14);
    const y = noGrad(() => T.mul(x, 2));
    recordNode('twice', [x], [y], ({ outputGrads: [g] }) => [T.sum(g!)]);
    expect(() => T.sum(y).backward()).toThrow(/the rule of 'twice' returned a gradient of shape \[\] for input 0 of shape \[3\]/);
  });
});

describe('gradcheck', () => {
  // A custom node with a deliberately wrong rule (d(2x)/dx reported as 1).
  const wrongDouble = (x: Tensor): Tensor => {
    const y = noGrad(() => T.mul(x, 2));
    recordNode('wrongDouble', [x], [y], ({ outputGrads: [g] }) => [g!]);
    return y;
  };
  const rightDouble = (x: Tensor): Tensor => {
    const y = noGrad(() => T.mul(x, 2));
    recordNode('rightDouble', [x], [y], ({ outputGrads: [g] }) => [T.mul(g!, 2)]);
    return y;
  };

  it('fails on a wrong rule and passes on the right one', () => {
    expect(() => gradcheck(wrongDouble, [leaf([3], 1)])).toThrow(/gradcheck: 3 of 3 gradient elements differ/);
    const report = gradcheck(wrongDouble, [leaf([3], 1)], { raise: false });
    expect(report.ok).toBe(false);
    expect(report.maxAbsError).toBeGreaterThan(0.4);
    const good = gradcheck(rightDouble, [leaf([3], 1)]);
    expect(good).toMatchObject({ ok: true, checked: 3 });
  });

  it('checks its inputs', () => {
    const f32 = tensor([1, 2]);
    f32.requiresGrad = true;
    expect(() => gradcheck(T.exp, [f32])).toThrow(/input 0 must be float64/);
    expect(() => gradcheck(T.exp, [tensor([1], { dtype: 'float64' })])).toThrow(/no input requires grad/);
    const base = leaf([1, 3], 2);
    const wide = T.expand(base, [2, 3]);
    expect(() => gradcheck(T.exp, [wide])).toThrow(/repeats elements/);
  });

  it('leaves existing gradients untouched', () => {
    const x = leaf([2], 3);
    x.grad = tensor([5, 6], { dtype: 'float64' });
    gradcheck(T.exp, [x]);
    expect(values(x.grad)).toEqual([5, 6]);
  });
});
