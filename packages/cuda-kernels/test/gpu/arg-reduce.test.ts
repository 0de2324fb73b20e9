// argmax / argmin on cuda (native/arg_reduce.cu): the same int32 indices as the CPU kernel for
// every dtype, along the first, a middle and the last axis (a row the size of a vocabulary takes
// the block path), on strided views, with ties (the first wins) and NaNs (the first NaN wins).
import { argmax, argmin, tensor, transpose, type DType, type Tensor } from '@blora/tensor';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { roundTo, valuesFor } from './helpers.js';

const DTYPES: DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int32', 'int8', 'uint8'];

/** Seeded values of `dtype` drawn from a few levels, so that ties are common. */
function tied(dtype: DType, n: number, seed: number): Float64Array {
  const levels = valuesFor('float32', n, seed, 0, 6).map((v) => Math.floor(v) - (dtype === 'uint8' ? 0 : 2));
  return roundTo(levels, dtype);
}

function expectSame(onCuda: Tensor, onCpu: Tensor): void {
  expect(onCuda.device).toBe('cuda');
  expect(onCuda.dtype).toBe('int32');
  expect(onCuda.shape).toEqual(onCpu.shape);
  expect(Array.from(onCuda.toFloat64Array())).toEqual(Array.from(onCpu.toFloat64Array()));
}

describe.skipIf(!cudaAvailable())('argmax / argmin on cuda', () => {
  it('match the CPU for every dtype and axis, with ties, on contiguous and transposed inputs', () => {
    for (const dtype of DTYPES) {
      for (const [shape, seed] of [[[7, 13], 1], [[3, 5, 9], 2], [[2, 32000], 3], [[1, 1], 4]] as [number[], number][]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const host = tensor(tied(dtype, n, seed + DTYPES.indexOf(dtype)), { shape, dtype });
        const views = shape.length === 2 ? [host, transpose(host)] : [host];
        for (const x of views) {
          const dev = x.to('cuda');
          for (let axis = 0; axis < x.rank; axis++) {
            for (const keepdim of [false, true]) {
              expectSame(argmax(dev, axis, keepdim), argmax(x, axis, keepdim));
              expectSame(argmin(dev, axis, keepdim), argmin(x, axis, keepdim));
            }
          }
          expectSame(argmax(dev, -1), argmax(x, -1));
          dev.dispose();
        }
      }
    }
  });

  it('take the first NaN of a row or column, and the only element of a 0-d tensor', () => {
    for (const dtype of ['float32', 'float64', 'float16', 'bfloat16'] as const) {
      const values = roundTo(valuesFor(dtype, 4 * 600, 7), dtype);
      for (const i of [5, 17, 1203, 1800, 2399]) values[i] = Number.NaN;
      const host = tensor(values, { shape: [4, 600], dtype });
      const dev = host.to('cuda');
      for (const axis of [0, 1]) {
        expectSame(argmax(dev, axis), argmax(host, axis));
        expectSame(argmin(dev, axis), argmin(host, axis));
      }
      dev.dispose();
    }
    const scalar = tensor(3.5).to('cuda');
    expectSame(argmax(scalar, 0), argmax(tensor(3.5), 0));
  });
});
