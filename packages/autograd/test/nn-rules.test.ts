import { describe, expect, it } from 'vitest';
import {
  attention, cast, crossEntropy, mul, permute, rmsNorm, rope, ropeTables, sum, tensor, type AttentionOptions, type DType, type Tensor,
} from '@blora/tensor';
import { assertClose, randomValues } from '@blora/tensor/testing';
import { GraphNode, RMSNorm, gradcheck, gradFnName, listGradients } from '../src/index.js';
import { leaf } from './helpers.js';

/** A float64 leaf [B, H, T, D] stored as a contiguous [B, T, H, D] tensor (as projections make it). */
function headsLeaf(shape: [number, number, number, number], seed: number): Tensor {
  const [b, h, t, d] = shape;
  const base = tensor(randomValues(b * h * t * d, seed, -1.5, 1.5), { shape: [b, t, h, d], dtype: 'float64' });
  const view = permute(base, [0, 2, 1, 3]);
  view.requiresGrad = true;
  return view;
}

function savedCount(t: Tensor): number {
  expect(t.gradFn).toBeInstanceOf(GraphNode);
  return (t.gradFn as GraphNode).savedCount;
}

describe('gradient rules of the fused NN ops', () => {
  it('are registered', () => {
    expect(listGradients()).toEqual(expect.arrayContaining(['rmsNorm', 'rope', 'crossEntropy', 'attention']));
  });

  for (const offset of [0, 1]) {
    it(`rmsNorm passes gradcheck (offset ${offset}, non-contiguous x)`, () => {
      const x = leaf([3, 7], 1, { nonContiguous: true });
      const w = leaf([7], 2);
      gradcheck((a, b) => rmsNorm(a!, b!, 1e-5, { offset }), [x, w]);
    });
  }

  it('rmsNorm saves x, weight and rstd but not y', () => {
    const y = rmsNorm(leaf([2, 5], 3), leaf([5], 4));
    expect(gradFnName(y)).toBe('rmsNorm');
    expect(savedCount(y)).toBe(3);
  });

  it('rope passes gradcheck (both directions, permuted view)', () => {
    const { cos, sin } = ropeTables(5, 6, 100, { dtype: 'float64', positionOffset: 2 });
    const x = headsLeaf([2, 3, 5, 6], 5);
    gradcheck((a) => rope(a!, cos, sin), [x]);
    gradcheck((a) => rope(a!, cos, sin, { inverse: true }), [x]);
    const y = rope(x, cos, sin);
    expect(savedCount(y)).toBe(2); // only the tables
  });

  for (const reduction of ['mean', 'sum'] as const) {
    it(`crossEntropy passes gradcheck (${reduction}, ignored tokens)`, () => {
      const logits = leaf([6, 9], 6, { nonContiguous: true });
      const targets = tensor([2, -100, 8, 0, -100, 4], { dtype: 'int32' });
      gradcheck((l) => crossEntropy(l!, targets, { reduction }), [logits]);
      // Scaling the loss scales the gradient (the rule passes dloss through).
      gradcheck((l) => mul(crossEntropy(l!, targets, { reduction }), 2.5), [logits]);
    });
  }

  it('crossEntropy gives a zero gradient when every token is ignored', () => {
    const logits = leaf([4, 5], 7);
    const loss = crossEntropy(logits, tensor([-100, -100, -100, -100], { dtype: 'int32' }));
    expect(loss.item()).toBe(0);
    loss.backward();
    expect(Array.from(logits.grad!.toFloat64Array()).every((g) => g === 0)).toBe(true);
  });

  const cases: { name: string; q: [number, number, number, number]; kv: [number, number, number]; dv: number; options: AttentionOptions }[] = [
    { name: 'GQA, no mask, T != S', q: [1, 6, 4, 3], kv: [2, 5, 3], dv: 2, options: {} },
    { name: 'causal with a KV cache and a window', q: [2, 4, 3, 4], kv: [2, 6, 4], dv: 3, options: { causal: true, window: 3 } },
    { name: 'causal with T > S (rows that see nothing)', q: [1, 2, 5, 2], kv: [1, 3, 2], dv: 2, options: { causal: true, scale: 0.7 } },
  ];
  for (const { name, q: qs, kv: [hkv, s, d], dv, options } of cases) {
    it(`attention passes gradcheck: ${name}`, () => {
      const q = headsLeaf(qs, 8);
      const k = leaf([qs[0], hkv, s, d], 9, { nonContiguous: true });
      const v = leaf([qs[0], hkv, s, dv], 10);
      gradcheck((a, b, c) => attention(a!, b!, c!, options), [q, k, v]);
    });
  }

  it('attention in float32 and bfloat16 follows the float64 gradients', () => {
    const shapes = { q: [1, 4, 5, 6], k: [1, 2, 7, 6], v: [1, 2, 7, 6] } as const;
    const grads = (dtype: DType) => {
      const make = (shape: readonly number[], seed: number) => {
        const t = cast(tensor(randomValues(shape.reduce((a, b) => a * b, 1), seed), { shape, dtype: 'float64' }), dtype);
        t.requiresGrad = true;
        return t;
      };
      const [q, k, v] = [make(shapes.q, 11), make(shapes.k, 12), make(shapes.v, 13)];
      const w = cast(tensor(randomValues(5 * 4 * 6, 14), { shape: [1, 4, 5, 6], dtype: 'float64' }), dtype);
      sum(mul(attention(q, k, v, { causal: true }), w)).backward();
      return [q.grad!, k.grad!, v.grad!];
    };
    const exact = grads('float64');
    grads('float32').forEach((g, i) => assertClose(g, exact[i]!, { rtol: 1e-4, atol: 1e-5 }));
    grads('bfloat16').forEach((g, i) => assertClose(g, exact[i]!, { rtol: 5e-2, atol: 3e-2 }));
  });
});

describe('RMSNorm module', () => {
  it('registers a weight starting at 1 - offset and runs the fused op', () => {
    const llama = new RMSNorm(6, { eps: 1e-5 });
    expect(llama.namedParameters().map(([n]) => n)).toEqual(['weight']);
    expect(llama.weight.requiresGrad).toBe(true);
    expect(Array.from(llama.weight.toFloat64Array())).toEqual([1, 1, 1, 1, 1, 1]);
    const gemma = new RMSNorm(6, { offset: 1, dtype: 'float64' });
    expect(Array.from(gemma.weight.toFloat64Array())).toEqual([0, 0, 0, 0, 0, 0]);
    const x = tensor(randomValues(12, 15), { shape: [2, 6], dtype: 'float64' });
    // Both start as a plain normalisation: x / rms(x).
    const expected = new Float64Array(12);
    for (let r = 0; r < 2; r++) {
      let ss = 0;
      for (let i = 0; i < 6; i++) ss += x.toFloat64Array()[r * 6 + i]! ** 2;
      for (let i = 0; i < 6; i++) expected[r * 6 + i] = x.toFloat64Array()[r * 6 + i]! / Math.sqrt(ss / 6 + 1e-6);
    }
    const y = gemma.forward(x);
    expect(gradFnName(y)).toBe('rmsNorm');
    assertClose(y, expected, { rtol: 1e-12, atol: 1e-12 });
    // The module reads its own weight, which gradcheck perturbs in place.
    gradcheck((a) => gemma.forward(a!), [leaf([3, 6], 16), gemma.weight]);
  });

  it('rejects bad arguments', () => {
    expect(() => new RMSNorm(0)).toThrow(/RMSNorm: dim must be a positive integer, got 0/);
    expect(() => new RMSNorm(4, { eps: -1 })).toThrow(/RMSNorm: eps must be a finite number >= 0/);
    expect(() => new RMSNorm(4).forward(tensor([1, 2, 3]))).toThrow(/RMSNorm: expected input \[\.\.\., 4\], got float32\[3\]/);
  });
});
