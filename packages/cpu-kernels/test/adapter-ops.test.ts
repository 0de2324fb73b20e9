// The fused adapter products of @blora/tensor (poolLinear, repeatLinear) with the native
// kernels loaded: their CPU kernels are built from the registered cpu kernels, so the native
// float32 matmul runs inside them. Checked against float64 loops in every kernel configuration.
import { describe, expect, it } from 'vitest';
import { findKernel, permute, poolLinear, registerKernel, repeatLinear, tensor, transpose, type KernelFn, type Tensor } from '@blora/tensor';
import { nonContiguousTensor, poolLinearReference, randomValues, repeatLinearReference } from '@blora/tensor/testing';
import { cpuKernelsInfo } from '../src/index.js';
import { expectClose, inEveryMode, NATIVE } from './helpers.js';

const TOL = { rtol: 2e-5, atol: 2e-5 };

describe.skipIf(!NATIVE)('poolLinear and repeatLinear float32 with the native kernels', () => {
  it('run the native matmul', () => {
    const info = cpuKernelsInfo();
    expect(info.native ? info.ops : []).toContain('matmul');
    const native = findKernel('matmul', 'cpu')!;
    let calls = 0;
    const counting: KernelFn = (inputs, outputs, attrs) => {
      calls += 1;
      native(inputs, outputs, attrs);
    };
    registerKernel('matmul', 'cpu', counting);
    try {
      poolLinear(tensor(randomValues(4 * 6, 1), { shape: [4, 6] }), tensor(randomValues(2 * 3, 2), { shape: [2, 3] }), 2).dispose();
      repeatLinear(tensor(randomValues(4 * 3, 3), { shape: [4, 3] }), tensor(randomValues(2 * 3, 4), { shape: [2, 3] }), { lambda: 2 }).dispose();
    } finally {
      registerKernel('matmul', 'cpu', native);
    }
    expect(calls).toBe(2);
  });

  it('match the reference for threaded sizes, batch dims, bfloat16 and strided inputs', () => {
    const [b, t, k, n, lambda] = [3, 23, 70, 37, 2];
    const m = b * t;
    const xv = randomValues(m * k * lambda, 5, -2, 2);
    const wv = randomValues(n * k, 6);
    const w = tensor(wv, { shape: [n, k] });
    const expected = poolLinearReference(tensor(xv, { shape: [m, k * lambda] }), w, lambda);
    const wT = transpose(tensor(Float64Array.from({ length: k * n }, (_, i) => wv[(i % n) * k + Math.floor(i / n)]!), { shape: [k, n] }));
    const inputs: Tensor[] = [
      tensor(xv, { shape: [b, t, k * lambda] }),
      nonContiguousTensor(xv, [b, t, k * lambda]),
      // [t, b, kλ] storage seen as [b, t, kλ]: the batch dims do not fold into rows.
      permute(tensor(Float64Array.from({ length: m * k * lambda }, (_, i) => {
        const row = Math.floor(i / (k * lambda));
        return xv[((row % b) * t + Math.floor(row / b)) * k * lambda + (i % (k * lambda))]!;
      }), { shape: [t, b, k * lambda] }), [1, 0, 2]),
    ];
    const hv = randomValues(m * n, 7);
    const rv = randomValues(k * n, 8);
    const base = randomValues(m * k * lambda, 9);
    const hRef = tensor(hv, { shape: [m, n] });
    const upRef = tensor(rv, { shape: [k, n] });
    const expectedUp = repeatLinearReference(hRef, upRef, lambda, 0.5, tensor(base, { shape: [m, k * lambda] }));
    inEveryMode(() => {
      for (const x of inputs) for (const weight of [w, wT]) expectClose(poolLinear(x, weight, lambda), expected, TOL);
      expectClose(poolLinear(tensor(xv, { shape: [b, t, k * lambda], dtype: 'bfloat16' }), w, lambda),
        poolLinearReference(tensor(xv, { shape: [m, k * lambda], dtype: 'bfloat16' }), w, lambda), TOL);
      const h = nonContiguousTensor(hv, [b, t, n]);
      const up = tensor(rv, { shape: [k, n] });
      expectClose(repeatLinear(h, up, { lambda, scale: 0.5, base: tensor(base, { shape: [b, t, k * lambda] }) }), expectedUp, TOL);
      // A bfloat16 base and output, and no base at all (zeros), with and without a repeat.
      const base16 = tensor(base, { shape: [b, t, k * lambda], dtype: 'bfloat16' });
      expectClose(repeatLinear(h, up, { lambda, scale: 0.5, base: base16 }),
        repeatLinearReference(hRef, upRef, lambda, 0.5, base16), { rtol: 8e-3, atol: 2e-2 });
      for (const [lam, scale] of [[1, 1], [1, -2], [3, 1]] as const) {
        expectClose(repeatLinear(h, up, { lambda: lam, scale }), repeatLinearReference(hRef, upRef, lam, scale), TOL);
      }
    });
  });
});
