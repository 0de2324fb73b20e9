// Shared fixtures of the autograd tests.
import { randomTensor, type RandomTensorOptions } from '@blora/tensor/testing';
import type { Tensor } from '@blora/tensor';

/** A seeded float64 leaf that requires grad (non-contiguous when asked). */
export function leaf(shape: number[], seed: number, options: Omit<RandomTensorOptions, 'seed' | 'dtype'> = {}): Tensor {
  const t = randomTensor(shape, { dtype: 'float64', seed, ...options });
  t.requiresGrad = true;
  return t;
}

/** Row-major float64 values of a tensor. */
export function values(t: Tensor): number[] {
  return Array.from(t.toFloat64Array());
}
