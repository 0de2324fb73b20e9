// The optional addend of the quantized products: y = x · Wᵀ + s · repeatInterleave(z, λ) and
// dx = dy · W + s · repeatInterleave(z, λ), against a float64 reference built from the stored
// parts (every format, λ dividing the output or not, float32 and float64 addends, batch dims
// and strided operands), the product without an addend, and the errors of bad addends.
import { describe, expect, it } from 'vitest';
import { tensor, type DType, type Tensor } from '@blora/tensor';
import { assertClose, nonContiguousTensor, randomValues } from '@blora/tensor/testing';
import { nf4Matmul, quantizeLinear, type FourBitLinear, type QuantizeOptions } from '../src/index.js';
import { normalFloat32, refMatmul, refMatmulT, refWeight } from './helpers.js';

/** product [rows, n] + s · repeat(z, λ), with s · z rounded like the kernels (float32 for a float32 z). */
function withAddend(product: Float64Array, n: number, z: Float64Array, zDtype: DType, lambda: number, scale: number): Float64Array {
  const out = Float64Array.from(product);
  const width = n / lambda;
  for (let i = 0; i < out.length; i++) {
    const row = Math.floor(i / n);
    const v = scale * z[row * width + Math.floor((i % n) / lambda)]!;
    out[i]! += zDtype === 'float32' ? Math.fround(v) : v;
  }
  return out;
}

const CASES: { name: string; out: number; inF: number; options: QuantizeOptions }[] = [
  { name: 'nf4 blocksize 64', out: 12, inF: 96, options: { format: 'nf4', blocksize: 64 } },
  { name: 'int4 tiles 4 x 8', out: 8, inF: 24, options: { format: 'int4', blockRows: 4, blockCols: 8, scaleDType: 'float32' } },
  { name: 'int8 groups of 8', out: 6, inF: 16, options: { format: 'int8', groupSize: 8 } },
];

describe('quantized products with an addend', () => {
  for (const c of CASES) {
    it(`${c.name}: both products, λ 1 / 2 / 3, float32 and float64 addends, batch dims and strided operands`, () => {
      const q = quantizeLinear(tensor(normalFloat32(c.out * c.inF, c.out, 0.5), { shape: [c.out, c.inF] }), c.options);
      const w = refWeight(q);
      for (const transposed of [false, true]) {
        const [k, n] = transposed ? [c.out, c.inF] : [c.inF, c.out];
        for (const lambda of [1, 2, 3].filter((l) => n % l === 0)) {
          for (const zDtype of ['float32', 'float64'] as const) {
            for (const lead of [[5], [2, 3]]) {
              const rows = lead.reduce((a, b) => a * b, 1);
              const xv = randomValues(rows * k, 7 + lambda);
              const x = lead.length === 1 ? nonContiguousTensor(xv, [rows, k], 'float32') : tensor(xv, { shape: [...lead, k] });
              const zv = randomValues(rows * (n / lambda), 9 + lambda, -3, 3);
              const z = tensor(zv, { shape: [...lead, n / lambda], dtype: zDtype });
              const addend = { values: z, lambda, scale: -0.75 };
              const y = transposed ? q.matmulTransposed(x, addend) : q.matmul(x, addend);
              expect(y.shape).toEqual([...lead, n]);
              expect(y.dtype).toBe('float32');
              const product = (transposed ? refMatmulT : refMatmul)(x.toFloat64Array(), w, rows, c.out, c.inF);
              const zRead = z.toFloat64Array();
              assertClose(y, withAddend(product, n, zRead, zDtype, lambda, -0.75), { rtol: 1e-5, atol: 1e-5 });
              for (const t of [x, z, y]) t.dispose();
            }
          }
        }
      }
      q.dispose();
    });
  }

  for (const c of CASES) {
    it(`${c.name}: a low-rank addend (values · factorᵀ) equals the dense one it stands for, both products, float32 and float64`, () => {
      const q = quantizeLinear(tensor(normalFloat32(c.out * c.inF, c.out + 1, 0.5), { shape: [c.out, c.inF] }), c.options);
      const w = refWeight(q);
      const rank = 3;
      for (const transposed of [false, true]) {
        const [k, n] = transposed ? [c.out, c.inF] : [c.inF, c.out];
        for (const lambda of [1, 2].filter((l) => n % l === 0)) {
          for (const dtype of ['float32', 'float64'] as const) {
            const rows = 4;
            const x = nonContiguousTensor(randomValues(rows * k, 11 + lambda), [rows, k], 'float32');
            const values = tensor(randomValues(rows * rank, 12 + lambda, -2, 2), { shape: [rows, rank], dtype });
            const factor = tensor(randomValues((n / lambda) * rank, 13 + lambda, -2, 2), { shape: [n / lambda, rank], dtype });
            const addend = { values, factor, lambda, scale: 0.625 };
            const y = transposed ? q.matmulTransposed(x, addend) : q.matmul(x, addend);
            // The dense addend, each dot product in float64 rounded once to the addend's dtype.
            const [v, f] = [values.toFloat64Array(), factor.toFloat64Array()];
            const z = new Float64Array(rows * (n / lambda)).map((_, i) => {
              const [m, j] = [Math.floor(i / (n / lambda)), i % (n / lambda)];
              let sum = 0;
              for (let r = 0; r < rank; r++) sum += v[m * rank + r]! * f[j * rank + r]!;
              return dtype === 'float32' ? Math.fround(sum) : sum;
            });
            const product = (transposed ? refMatmulT : refMatmul)(x.toFloat64Array(), w, rows, c.out, c.inF);
            assertClose(y, withAddend(product, n, z, dtype, lambda, 0.625), { rtol: 1e-5, atol: 1e-5 });
            for (const t of [x, values, factor, y]) t.dispose();
          }
        }
      }
      q.dispose();
    });
  }

  it('rejects low-rank addends whose factor does not fit, naming the op', () => {
    const q = quantizeLinear(tensor(normalFloat32(8 * 32, 8, 0.5), { shape: [8, 32] }), { format: 'nf4', blocksize: 32, doubleQuant: false });
    const x = tensor(randomValues(3 * 32, 9), { shape: [3, 32] });
    const values = tensor(new Float64Array(3 * 5), { shape: [3, 5] });
    const bad: [Tensor, Tensor, RegExp][] = [
      [values, tensor(new Float64Array(8 * 5), { shape: [8, 5] }), /nf4Matmul: addend factor float32\[8, 5\] .*must be float32 \[4, 5\]/],
      [values, tensor(new Float64Array(4 * 4), { shape: [4, 4] }), /must be float32 \[4, 5\]/],
      [values, tensor(new Float64Array(4 * 5), { shape: [4, 5], dtype: 'float64' }), /must be float32 \[4, 5\]/],
      [tensor(new Float64Array(2 * 5), { shape: [2, 5] }), tensor(new Float64Array(4 * 5), { shape: [4, 5] }), /addend float32\[2, 5\] .*must be \[3, 5\] \(the output \[3, 8\] with its last dim replaced by the factor's rank\)/],
    ];
    for (const [v, factor, message] of bad) {
      expect(() => q.matmul(x, { values: v, factor, lambda: 2 })).toThrow(message);
      factor.dispose();
    }
  });

  it('the scale defaults to 1, and the addend is added in float64 before the one rounding to bfloat16', () => {
    const q = quantizeLinear(tensor(normalFloat32(8 * 32, 3, 0.5), { shape: [8, 32] }), { format: 'nf4', blocksize: 32, doubleQuant: false });
    const x = tensor(randomValues(2 * 32, 4), { shape: [2, 32], dtype: 'bfloat16' });
    const z = tensor(randomValues(2 * 4, 5), { shape: [2, 4], dtype: 'float64' });
    const y = q.matmul(x, { values: z, lambda: 2 });
    const exact = withAddend(refMatmul(x.toFloat64Array(), refWeight(q), 2, 8, 32), 8, z.toFloat64Array(), 'float64', 2, 1);
    // One rounding of the exact sum: the result is the bfloat16 nearest to it.
    expect(Array.from(y.toFloat64Array())).toEqual(Array.from(tensor(exact, { shape: [2, 8], dtype: 'bfloat16' }).toFloat64Array()));
  });

  it('rejects addends of the wrong shape, dtype, λ or scale, naming the op', () => {
    const q = quantizeLinear(tensor(normalFloat32(8 * 32, 6, 0.5), { shape: [8, 32] }), { format: 'nf4', blocksize: 32, doubleQuant: false });
    const x = tensor(randomValues(3 * 32, 7), { shape: [3, 32] });
    const bad: [Tensor, number, number, RegExp][] = [
      [tensor(new Float64Array(3 * 3), { shape: [3, 3] }), 3, 1, /nf4Matmul: addend lambda 3 does not divide the output's last dim 8/],
      [tensor(new Float64Array(3 * 5), { shape: [3, 5] }), 2, 1, /nf4Matmul: addend float32\[3, 5\] .* must be \[3, 4\]/],
      [tensor(new Float64Array(2 * 4), { shape: [2, 4] }), 2, 1, /must be \[3, 4\]/],
      [tensor(new Float64Array(3 * 4), { shape: [3, 4], dtype: 'bfloat16' }), 2, 1, /addend must be float32 or float64/],
      [tensor(new Float64Array(3 * 4), { shape: [3, 4] }), 0, 1, /addend lambda must be a positive integer, got 0/],
      [tensor(new Float64Array(3 * 4), { shape: [3, 4] }), 2, Number.NaN, /addend scale must be a finite number/],
    ];
    for (const [values, lambda, scale, message] of bad) {
      expect(() => q.matmul(x, { values, lambda, scale })).toThrow(message);
      values.dispose();
    }
    const f = q as FourBitLinear;
    expect(() => nf4Matmul(x, f.packed, f.absmaxTensor(), f.table, f.opAttrs, { values: x, lambda: 1 })).toThrow(/must be \[3, 8\]/);
  });
});
