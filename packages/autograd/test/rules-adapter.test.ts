// Gradient rules of the fused adapter products poolLinear and repeatLinear: gradcheck in
// float64 for every input, float64 loops for the half-precision and mixed-dtype cases, and
// what the tape keeps.
import { describe, expect, it } from 'vitest';
import { expand, mul, permute, poolLinear, repeatLinear, sum, tensor, transpose, type DType, type Tensor } from '@blora/tensor';
import { assertClose, randomTensor, randomValues } from '@blora/tensor/testing';
import { GraphNode, gradcheck, gradFnName } from '../src/index.js';
import { leaf } from './helpers.js';

const TOL = { atol: 1e-6, rtol: 1e-5 };

function savedCount(t: Tensor): number {
  expect(t.gradFn).toBeInstanceOf(GraphNode);
  return (t.gradFn as GraphNode).savedCount;
}

describe('poolLinear gradient', () => {
  for (const lambda of [1, 2, 3]) {
    it(`passes gradcheck for x and weight (λ = ${lambda}, batch dims, non-contiguous x, transposed weight)`, () => {
      gradcheck((x, w) => poolLinear(x!, w!, lambda), [leaf([5, 7 * lambda], 1, { nonContiguous: true }), leaf([3, 7], 2)], TOL);
      gradcheck((x, w) => poolLinear(x!, transpose(w!), lambda), [leaf([2, 3, 4 * lambda], 4), leaf([4, 3], 3)], TOL);
      gradcheck((x, w) => poolLinear(x!, w!, lambda), [leaf([3 * lambda], 5), leaf([2, 3], 6)], TOL);
    });
  }

  it('dx = repeat(g · W, λ) / λ in x\'s dtype and dW = gᵀ · avgPool(x) in W\'s dtype (bfloat16 x, float32 W)', () => {
    const [m, k, n, lambda] = [5, 4, 3, 2];
    const x = randomTensor([m, k * lambda], { dtype: 'bfloat16', seed: 7 });
    const w = randomTensor([n, k], { seed: 8 });
    x.requiresGrad = true;
    w.requiresGrad = true;
    const gv = randomValues(m * n, 9);
    poolLinear(x, w, lambda).backward(tensor(gv, { shape: [m, n] }));
    const xv = x.toFloat64Array();
    const wv = w.toFloat64Array();
    const dx = new Float64Array(m * k * lambda);
    const dw = new Float64Array(n * k);
    for (let i = 0; i < m; i++) {
      for (let c = 0; c < k; c++) {
        let s = 0;
        for (let j = 0; j < n; j++) s += gv[i * n + j]! * wv[j * k + c]!;
        for (let e = 0; e < lambda; e++) dx[i * k * lambda + c * lambda + e] = s / lambda;
        let pooled = 0;
        for (let e = 0; e < lambda; e++) pooled += xv[i * k * lambda + c * lambda + e]!;
        for (let j = 0; j < n; j++) dw[j * k + c] += gv[i * n + j]! * (pooled / lambda);
      }
    }
    expect(x.grad!.dtype).toBe('bfloat16');
    expect(w.grad!.dtype).toBe('float32');
    assertClose(x.grad!, dx, { rtol: 8e-3, atol: 1e-2 });
    assertClose(w.grad!, dw, { rtol: 1e-5, atol: 1e-5 });
  });

  it('keeps only what the needed gradients read and computes only those', () => {
    const x = leaf([3, 8], 10);
    const w = leaf([2, 4], 11);
    expect(gradFnName(poolLinear(x, w, 2))).toBe('poolLinear');
    expect(savedCount(poolLinear(x, w, 2))).toBe(2);
    w.requiresGrad = false;
    const onlyX = poolLinear(x, w, 2);
    expect(savedCount(onlyX)).toBe(1); // the weight, for dx
    sum(onlyX).backward();
    expect(x.grad).not.toBeNull();
    expect(w.grad).toBeNull();
  });
});

describe('repeatLinear gradient', () => {
  for (const lambda of [1, 2, 3]) {
    it(`passes gradcheck for h, weight and base (λ = ${lambda}, batch dims, non-contiguous h and base, transposed weight)`, () => {
      const scale = 0.7;
      gradcheck((h, w, b) => repeatLinear(h!, w!, { lambda, scale, base: b! }),
        [leaf([5, 5], 12, { nonContiguous: true }), leaf([3, 5], 13), leaf([5, 3 * lambda], 14, { nonContiguous: true })], TOL);
      gradcheck((h, w) => repeatLinear(h!, transpose(w!), { lambda, scale }), [leaf([2, 3, 4], 15), leaf([4, 3], 16)], TOL);
      gradcheck((h, w, b) => repeatLinear(h!, w!, { lambda, base: b! }),
        [leaf([4], 17), leaf([2, 4], 18), leaf([2 * lambda], 19, { nonContiguous: true })], TOL);
      gradcheck((h, w, b) => repeatLinear(h!, w!, { lambda, base: permute(b!, [1, 0]) }),
        [leaf([4, 4], 34), leaf([2, 4], 35), leaf([2 * lambda, 4], 36)], TOL);
      // A base broadcast from fewer elements gets the sum of its copies' gradients.
      gradcheck((h, w, b) => repeatLinear(h!, w!, { lambda, scale, base: expand(b!, [3, 2 * lambda]) }),
        [leaf([3, 4], 20), leaf([2, 4], 21), leaf([1, 2 * lambda], 22)], TOL);
    });
  }

  for (const outDtype of ['bfloat16', 'float16', 'float64'] as DType[]) {
    it(`dh, dW in float32 and dbase in the base's dtype for a ${outDtype} output and a bfloat16 base`, () => {
      const [m, r, nr, lambda, scale] = [4, 3, 2, 3, 1.5];
      const h = randomTensor([m, r], { seed: 23 });
      const w = randomTensor([nr, r], { seed: 24 });
      const base = randomTensor([m, nr * lambda], { dtype: 'bfloat16', seed: 25 });
      for (const t of [h, w, base]) t.requiresGrad = true;
      const out = repeatLinear(h, w, { lambda, scale, base, dtype: outDtype });
      expect(out.dtype).toBe(outDtype);
      const g = randomTensor([m, nr * lambda], { dtype: outDtype, seed: 26 });
      out.backward(g);
      const gv = g.toFloat64Array();
      const hv = h.toFloat64Array();
      const wv = w.toFloat64Array();
      const dz = new Float64Array(m * nr);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < nr; j++) {
          let s = 0;
          for (let e = 0; e < lambda; e++) s += gv[i * nr * lambda + j * lambda + e]!;
          dz[i * nr + j] = scale * s;
        }
      }
      const dh = new Float64Array(m * r);
      const dw = new Float64Array(nr * r);
      for (let i = 0; i < m; i++) {
        for (let c = 0; c < r; c++) {
          for (let j = 0; j < nr; j++) {
            dh[i * r + c] += dz[i * nr + j]! * wv[j * r + c]!;
            dw[j * r + c] += dz[i * nr + j]! * hv[i * r + c]!;
          }
        }
      }
      expect([h.grad!.dtype, w.grad!.dtype, base.grad!.dtype]).toEqual(['float32', 'float32', 'bfloat16']);
      assertClose(h.grad!, dh, { rtol: 1e-5, atol: 1e-5 });
      assertClose(w.grad!, dw, { rtol: 1e-5, atol: 1e-5 });
      assertClose(base.grad!, gv, { rtol: 8e-3, atol: 1e-6 });
    });
  }

  it('never keeps the base, and keeps h or the weight only when the other needs a gradient', () => {
    const h = leaf([3, 4], 27);
    const w = leaf([2, 4], 28);
    const base = leaf([3, 4], 29);
    const out = repeatLinear(h, w, { lambda: 2, base });
    expect(gradFnName(out)).toBe('repeatLinear');
    expect(savedCount(out)).toBe(2);
    h.requiresGrad = false;
    const onlyW = repeatLinear(h, w, { lambda: 2, base });
    expect(savedCount(onlyW)).toBe(1); // h, for dW
    sum(mul(onlyW, 2)).backward();
    expect(h.grad).toBeNull();
    expect(w.grad).not.toBeNull();
    expect(Array.from(base.grad!.toFloat64Array())).toEqual(new Array(12).fill(2));
  });

  it('gives empty gradients for empty rows', () => {
    const h = leaf([0, 3], 30);
    const w = leaf([2, 3], 31);
    sum(repeatLinear(h, w, { lambda: 2 })).backward();
    expect(h.grad!.shape).toEqual([0, 3]);
    expect(Array.from(w.grad!.toFloat64Array())).toEqual(new Array(6).fill(0));
    const x = leaf([0, 6], 32);
    const a = leaf([2, 3], 33);
    sum(poolLinear(x, a, 2)).backward();
    expect(x.grad!.shape).toEqual([0, 6]);
    expect(Array.from(a.grad!.toFloat64Array())).toEqual(new Array(6).fill(0));
  });
});
