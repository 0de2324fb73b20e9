// recomputeForBackward: the tape keeps a function's sources instead of its result and rebuilds
// the result for the rules that read it. Gradients must be bit-identical to keeping the result,
// and the result's memory must be free once the forward drops it.
import { describe, expect, it } from 'vitest';
import {
  avgPool1d, cast, dispose, matmul, memoryStats, mul, peakBytes, permute, reshape, resetPeakMemory, silu, sum, tidy, transpose,
  type Tensor,
} from '@blora/tensor';
import { assertClose, randomTensor } from '@blora/tensor/testing';
import { backward, GraphNode, noGrad, recomputeForBackward } from '../src/index.js';

/** A seeded leaf that requires grad, of any dtype. */
function param(shape: number[], seed: number, dtype: 'float32' | 'bfloat16' = 'float32', nonContiguous = false): Tensor {
  const t = randomTensor(shape, { dtype, seed, nonContiguous });
  t.requiresGrad = true;
  return t;
}

/** The stored bits of a tensor, to compare results exactly. */
function bits(t: Tensor): number[] {
  return Array.from(t.toTypedArray());
}

/** The upcast-and-pool of an adapter input: bfloat16 [..., 6] -> float32 [..., 3]. */
const upcastPool = (t: Tensor): Tensor => avgPool1d(cast(t, 'float32'), 2);

/**
 * loss = sum(w · (prepare(x) · Aᵀ)) with `prepare` run plainly or through recomputeForBackward;
 * returns the gradients of x and A and the tape node of the product.
 */
function lowRankLoss(x: Tensor, a: Tensor, w: Tensor, rebuild: boolean): { gx: Tensor; ga: Tensor; heldForBackward: number } {
  const before = memoryStats().bytes;
  const loss = tidy(() => {
    const z = rebuild ? recomputeForBackward([x], upcastPool) : upcastPool(x);
    return sum(mul(matmul(z, transpose(a)), w));
  });
  const heldForBackward = memoryStats().bytes - before;
  backward(loss);
  loss.dispose();
  const out = { gx: x.grad!, ga: a.grad!, heldForBackward };
  x.grad = null;
  a.grad = null;
  return out;
}

describe('recomputeForBackward', () => {
  it('gives bit-identical gradients to keeping the result, and keeps less', () => {
    const x = param([2, 5, 6], 1, 'bfloat16', true);
    const a = param([4, 3], 2);
    const w = randomTensor([2, 5, 4], { seed: 3 });
    const plain = lowRankLoss(x, a, w, false);
    const rebuilt = lowRankLoss(x, a, w, true);
    expect(bits(rebuilt.gx)).toEqual(bits(plain.gx));
    expect(bits(rebuilt.ga)).toEqual(bits(plain.ga));
    // The float32 pooled copy (2·5·3 elements) is not held; x is held already (it is a leaf).
    expect(plain.heldForBackward - rebuilt.heldForBackward).toBe(2 * 5 * 3 * 4);
    // dA[i][k] = Σ_rows w[row][i] · pooled[row][k], from the bfloat16 values in float64.
    const xs = x.toFloat64Array();
    const ws = w.toFloat64Array();
    const expected = new Float64Array(12);
    for (let row = 0; row < 10; row++) {
      for (let i = 0; i < 4; i++) {
        for (let k = 0; k < 3; k++) expected[i * 3 + k]! += ws[row * 4 + i]! * (xs[row * 6 + 2 * k]! + xs[row * 6 + 2 * k + 1]!) / 2;
      }
    }
    assertClose(rebuilt.ga, expected, { rtol: 1e-5, atol: 1e-6 });
    dispose([x, a, w, plain.gx, plain.ga, rebuilt.gx, rebuilt.ga]);
  });

  it('makes the node keep the sources (marked rebuilt) and frees the result with the scope', () => {
    const x = param([3, 4], 4, 'bfloat16');
    const b = param([2, 4], 5);
    let z: Tensor | undefined;
    const y = tidy(() => {
      z = recomputeForBackward([x], (t) => cast(t, 'float32'));
      return matmul(z, transpose(b));
    });
    expect(z!.storage.isReleased).toBe(true);
    const node = y.gradFn as GraphNode;
    const saved = node.savedTensors();
    const input0 = saved.filter((s) => s.role === 'input' && s.index === 0);
    expect(input0).toHaveLength(1);
    expect(input0[0]!.rebuilt).toBe(true);
    expect(input0[0]!.tensor.storage).toBe(x.storage);
    // The other operand is saved as it is.
    expect(saved.find((s) => s.index === 1)!.rebuilt).toBe(false);
    backward(sum(y));
    expect(b.grad).not.toBeNull();
    expect(node.savedTensors()).toEqual([]);
    dispose([x, b, y]);
  });

  it('follows chains of rebuilt tensors down to kept tensors, bit-identically', () => {
    const gate = param([4, 6], 6);
    const up = param([4, 6], 7);
    const wd = param([3, 6], 8);
    const run = (rebuild: boolean) => {
      const y = tidy(() => {
        const act = rebuild ? recomputeForBackward([gate], (g) => silu(g)) : silu(gate);
        const h = rebuild ? recomputeForBackward([act, up], (p, u) => mul(p, u)) : mul(act, up);
        return matmul(h, transpose(wd));
      });
      const saved = (y.gradFn as GraphNode).savedTensors().filter((s) => s.index === 0).map((s) => s.tensor.storage);
      backward(sum(mul(y, y)));
      const grads = [gate, up, wd].map((t) => {
        const g = bits(t.grad!);
        t.grad!.dispose();
        t.grad = null;
        return g;
      });
      y.dispose();
      return { grads, saved };
    };
    const plain = run(false);
    const rebuilt = run(true);
    expect(rebuilt.grads).toEqual(plain.grads);
    // The product's node keeps gate and up, not h.
    expect(rebuilt.saved).toEqual([gate.storage, up.storage]);
    dispose([gate, up, wd]);
  });

  it('rebuilds strided views of the result with their own layout', () => {
    const o = param([2, 3, 4, 5], 9);
    const run = (rebuild: boolean) => {
      const merge = (t: Tensor) => reshape(permute(t, [0, 2, 1, 3]), [2, 4, 15]);
      const y = tidy(() => {
        const merged = rebuild ? recomputeForBackward([o], merge) : merge(o);
        // The rule of this product reads mergedᵀ, a strided view.
        return matmul(transpose(merged, 1, 2), randomTensor([2, 4, 6], { seed: 11 }));
      });
      backward(sum(mul(y, y)));
      const g = bits(o.grad!);
      o.grad!.dispose();
      o.grad = null;
      y.dispose();
      return g;
    };
    expect(run(true)).toEqual(run(false));
    o.dispose();
  });

  it('frees what it rebuilds right after the rule, and runs again with retainGraph', () => {
    const x = param([64, 32], 12, 'bfloat16');
    const a = param([8, 16], 13);
    const y = tidy(() => matmul(recomputeForBackward([x], upcastPool), transpose(a)));
    const loss = sum(y);
    backward(loss, null, { retainGraph: true });
    const first = bits(a.grad!);
    a.grad!.dispose();
    a.grad = null;
    const before = memoryStats().bytes;
    resetPeakMemory();
    backward(loss, null, { retainGraph: true });
    expect(bits(a.grad!)).toEqual(first);
    // Only the new gradient of A stays (x's is summed into one of the same size); the rebuilt
    // float32 copy (64·16·4 bytes) came and went.
    expect(memoryStats().bytes - before).toBe(a.grad!.storage.byteLength);
    expect(peakBytes()).toBeGreaterThanOrEqual(before + 64 * 16 * 4);
    dispose([x, a, y, loss]);
  });

  it('keeps the result itself when it shares memory with a source, when grad is off, or when a source is gone', () => {
    const x = param([2, 6], 14);
    const b = param([3, 6], 15);
    // A view of the source: nothing to gain, saved as usual.
    const view = recomputeForBackward([x], (t) => reshape(t, [2, 6]));
    const y1 = matmul(view, transpose(b));
    expect((y1.gradFn as GraphNode).savedTensors().every((s) => !s.rebuilt)).toBe(true);
    // Under noGrad nothing is registered.
    const src = param([2, 6], 16);
    const off = noGrad(() => recomputeForBackward([src], (t) => mul(t, 2)));
    expect(off.requiresGrad).toBe(false);
    // A source disposed before the result is saved: the result is kept instead.
    const s2 = param([2, 6], 17);
    const z = recomputeForBackward([s2], (t) => mul(t, 3));
    s2.dispose();
    const y2 = matmul(z, transpose(b));
    const saved = (y2.gradFn as GraphNode).savedTensors().find((s) => s.index === 0)!;
    expect(saved.rebuilt).toBe(false);
    expect(saved.tensor.storage).toBe(z.storage);
    backward(sum(y2));
    expect(b.grad).not.toBeNull();
    dispose([x, b, view, y1, src, off, z, y2]);
  });

  it('says so when the function does not give back the same shape and dtype', () => {
    const x = param([2, 4], 18);
    const b = param([3, 4], 19);
    let calls = 0;
    const y = matmul(recomputeForBackward([x], (t) => (calls++ === 0 ? mul(t, 2) : reshape(mul(t, 2), [4, 2]))), transpose(b));
    expect(() => backward(sum(y))).toThrow(/recomputing a saved tensor gave .*\[4, 2\].*expected float32 \[2, 4\]/);
    dispose([x, b, y]);
  });
});
