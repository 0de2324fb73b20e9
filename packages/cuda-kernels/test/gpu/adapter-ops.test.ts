// The fused adapter products on cuda (poolLinear, repeatLinear) against the CPU kernels, which
// their own tests check against float64 loops: every input dtype, λ 1..4, odd sizes, batch
// dims, strided and transposed operands; then a Q-BLoRA layer's forward and gradients on cuda
// against the same layer on the CPU.
import { avgPool1d, cast, matmul, narrow, poolLinear, repeatLinear, reshape, sum, mul, tensor, transpose, type DType, type Tensor } from '@blora/tensor';
import { assertClose, randomValues } from '@blora/tensor/testing';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import '@blora/autograd';
import { makeTensor, roundTo, type Layout } from './helpers.js';

const TOL: Record<DType, { rtol: number; atol: number }> = {
  float64: { rtol: 1e-10, atol: 1e-10 },
  float32: { rtol: 2e-5, atol: 2e-5 },
  float16: { rtol: 2e-3, atol: 2e-3 },
  bfloat16: { rtol: 1.6e-2, atol: 1.6e-2 },
} as Record<DType, { rtol: number; atol: number }>;

/** Runs `op` on both devices from the same values; returns [cuda, cpu] results. */
function onBoth(build: (device: string) => Tensor[], op: (inputs: Tensor[]) => Tensor): [Float64Array, Float64Array] {
  const results = ['cuda', 'cpu'].map((device) => {
    const inputs = build(device);
    const out = op(inputs);
    expect(out.device).toBe(device);
    const values = out.toFloat64Array();
    for (const t of [out, ...inputs]) t.dispose();
    return values;
  });
  return [results[0]!, results[1]!];
}

describe.skipIf(!cudaAvailable())('fused adapter products on cuda', () => {
  it('poolLinear matches the CPU for every x dtype, λ, layout and a batch dim', () => {
    let seed = 1;
    for (const xDtype of ['float32', 'float64', 'float16', 'bfloat16'] as DType[]) {
      for (const wDtype of ['float32', 'float64'] as DType[]) {
        for (const lambda of [1, 2, 3, 4]) {
          for (const layout of ['contiguous', 'strided', 'transposed'] as Layout[]) {
            const k = 7, n = 5;
            const xShape = [3, 5, k * lambda];
            const xv = roundTo(randomValues(3 * 5 * k * lambda, seed++), xDtype);
            const wv = randomValues(n * k, seed++);
            const [cuda, cpu] = onBoth(
              (d) => [makeTensor(xv, xShape, xDtype, d, layout), makeTensor(wv, [n, k], wDtype, d, 'contiguous')],
              ([x, w]) => poolLinear(x!, w!, lambda),
            );
            assertClose(cuda, cpu, TOL[wDtype]);
          }
        }
      }
    }
  });

  it('a decoding adapter\'s products (up to 16 rows: the one-warp-a-feature kernel; 17: the GEMM) match the CPU', () => {
    let seed = 500;
    const tol = { rtol: 1e-4, atol: 1e-4 };
    for (const rows of [1, 5, 16, 17]) {
      for (const [xDtype, lambda] of [['bfloat16', 1], ['bfloat16', 2], ['float16', 1], ['float16', 4], ['float32', 1]] as [DType, number][]) {
        // The A product: x [rows, 1000 λ] pooled by λ, times A [64, 1000]ᵀ.
        const xv = roundTo(randomValues(rows * 1000 * lambda, seed++), xDtype);
        const av = randomValues(64 * 1000, seed++);
        const [cudaA, cpuA] = onBoth(
          (d) => [makeTensor(xv, [rows, 1000 * lambda], xDtype, d, 'contiguous'), makeTensor(av, [64, 1000], 'float32', d, 'contiguous')],
          ([x, a]) => poolLinear(x!, a!, lambda),
        );
        assertClose(cudaA, cpuA, tol);
      }
      // x starting one element past an aligned address: the kernel's scalar loads instead of vector ones.
      const uv = roundTo(randomValues(rows * 1000, seed++), 'bfloat16');
      const av = randomValues(64 * 1000, seed++);
      const [cudaU, cpuU] = onBoth(
        (d) => {
          const flat = tensor(Float64Array.from([0, ...uv]), { dtype: 'bfloat16', device: d });
          const x = reshape(narrow(flat, 0, 1, rows * 1000), [rows, 1000]);
          flat.dispose();
          return [x, makeTensor(av, [64, 1000], 'float32', d, 'contiguous')];
        },
        ([x, a]) => poolLinear(x!, a!, 1),
      );
      assertClose(cudaU, cpuU, tol);
      // The B product: h [rows, 64] times B [300, 64]ᵀ, B row-major (the skinny kernel) or stored transposed (the GEMM).
      const hv = randomValues(rows * 64, seed++);
      const bv = randomValues(300 * 64, seed++);
      for (const layout of ['contiguous', 'transposed'] as Layout[]) {
        const [cudaB, cpuB] = onBoth(
          (d) => [makeTensor(hv, [rows, 64], 'float32', d, 'contiguous'), makeTensor(bv, [300, 64], 'float32', d, layout)],
          ([h, b]) => matmul(h!, transpose(b!)),
        );
        assertClose(cudaB, cpuB, tol);
      }
    }
  });

  it('16-bit products of up to 16 rows by a row-major weight\'s transpose (the skinny kernel; 17 rows: the GEMM) match float64, rounded once', () => {
    let seed = 900;
    for (const dtype of ['bfloat16', 'float16'] as DType[]) {
      // K 1024: eight values a load; K 1028: four; K 1001 and an x one element past alignment: one.
      for (const [k, offset] of [[1024, 0], [1028, 0], [1001, 0], [1024, 1]] as [number, number][]) {
        for (const rows of [1, 5, 16, 17]) {
          const n = 300;
          const xv = roundTo(randomValues(rows * k, seed++, -1, 1), dtype);
          const wv = roundTo(randomValues(n * k, seed++, -1, 1), dtype);
          const want = new Float64Array(rows * n);
          for (let m = 0; m < rows; m++) {
            for (let j = 0; j < n; j++) {
              let s = 0;
              for (let c = 0; c < k; c++) s += xv[m * k + c]! * wv[j * k + c]!;
              want[m * n + j] = s;
            }
          }
          const flat = tensor(Float64Array.from([...new Array(offset).fill(0), ...xv]), { dtype, device: 'cuda' });
          const x = reshape(narrow(flat, 0, offset, rows * k), [rows, k]);
          const w = makeTensor(wv, [n, k], dtype, 'cuda', 'contiguous');
          const y = matmul(x, transpose(w));
          expect(y.dtype).toBe(dtype);
          // Sums of ~|10| rounded once to the dtype (2^-9 / 2^-12 relative), float32 accumulation.
          assertClose(y.toFloat64Array(), want, dtype === 'bfloat16' ? { rtol: 8e-3, atol: 3e-2 } : { rtol: 1e-3, atol: 5e-3 });
          for (const t of [flat, x, w, y]) t.dispose();
        }
      }
    }
  });

  it('avgPool1d into another dtype (the cast riding along) matches the CPU', () => {
    let seed = 50;
    const pairs: [DType, DType][] = [['bfloat16', 'float32'], ['float16', 'float64'], ['float32', 'bfloat16'], ['float64', 'float16']];
    for (const [from, to] of pairs) {
      for (const lambda of [2, 3]) {
        for (const layout of ['contiguous', 'transposed'] as Layout[]) {
          const xv = roundTo(randomValues(6 * 4 * lambda, seed++), from);
          const [cuda, cpu] = onBoth((d) => [makeTensor(xv, [6, 4 * lambda], from, d, layout)], ([x]) => avgPool1d(x!, lambda, { dtype: to }));
          // Means formed in float64 on both devices; the half types go through float64 on cuda.
          if (to === 'float32' || to === 'float64') expect(Array.from(cuda)).toEqual(Array.from(cpu));
          else assertClose(cuda, cpu, TOL[to]);
        }
      }
    }
  });

  it('repeatLinear matches the CPU with and without a base, for every output dtype, a transposed weight', () => {
    let seed = 100;
    for (const dtype of ['float32', 'float64'] as DType[]) {
      for (const outDtype of ['float32', 'float64', 'float16', 'bfloat16'] as DType[]) {
        for (const lambda of [1, 2, 3]) {
          for (const withBase of [false, true]) {
            const r = 5, nr = 3, rows = 13;
            const hv = randomValues(rows * r, seed++);
            const wv = randomValues(nr * r, seed++);
            const bv = roundTo(randomValues(rows * nr * lambda, seed++), outDtype);
            const [cuda, cpu] = onBoth(
              (d) => {
                const h = makeTensor(hv, [rows, r], dtype, d, 'strided');
                const wT = makeTensor(wv, [r, nr], dtype, d, 'contiguous');
                const base = makeTensor(bv, [rows, nr * lambda], outDtype, d, 'transposed');
                return [h, wT, base];
              },
              ([h, wT, base]) => repeatLinear(h!, transpose(wT!), { lambda, scale: 1.75, ...(withBase ? { base: base! } : {}), dtype: outDtype }),
            );
            // Computed in h's dtype, rounded once to the output's: the looser of the two bounds.
            const tol = TOL[outDtype].rtol > TOL[dtype].rtol ? TOL[outDtype] : TOL[dtype];
            assertClose(cuda, cpu, tol);
          }
        }
      }
    }
  });

  it('gives the same forward values and gradients as the CPU through autograd', () => {
    const rows = 9, k = 6, lambda = 2, r = 4, nr = 5;
    const xv = roundTo(randomValues(rows * k * lambda, 7), 'bfloat16');
    const av = randomValues(r * k, 8);
    const bv = randomValues(nr * r, 9);
    const basev = roundTo(randomValues(rows * nr * lambda, 10), 'bfloat16');
    const wv = roundTo(randomValues(rows * nr * lambda, 11), 'bfloat16');
    const results = ['cuda', 'cpu'].map((device) => {
      const x = cast(tensor(Array.from(xv), { shape: [rows, k * lambda], device }), 'bfloat16');
      const a = tensor(Array.from(av), { shape: [r, k], device });
      const b = tensor(Array.from(bv), { shape: [nr, r], device });
      const base = cast(tensor(Array.from(basev), { shape: [rows, nr * lambda], device }), 'bfloat16');
      const weights = cast(tensor(Array.from(wv), { shape: [rows, nr * lambda], device }), 'bfloat16');
      const inputs = [x, a, b, base];
      for (const t of inputs) t.requiresGrad = true;
      const y = repeatLinear(poolLinear(x, a, lambda), b, { lambda, scale: 2, base });
      sum(cast(mul(y, weights), 'float32')).backward();
      return [y.toFloat64Array(), ...inputs.map((t) => t.grad!.toFloat64Array())];
    });
    const tols = [TOL.bfloat16, TOL.bfloat16, { rtol: 1e-3, atol: 1e-3 }, { rtol: 1e-3, atol: 1e-3 }, TOL.bfloat16];
    results[0]!.forEach((g, i) => assertClose(g, results[1]![i]!, tols[i]!));
  });
});
