// var / logsumexp on cuda go through the CPU kernel on a host copy: the
// results must equal the CPU's exactly, for strided inputs too, and leave the output on cuda.
import { logsumexp, transpose, variance } from '@blora/tensor';
import { randomTensor } from '@blora/tensor/testing';
import { describe, expect, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';

describe.skipIf(!cudaAvailable())('host-computed ops on cuda', () => {
  it('match the CPU exactly on contiguous and transposed inputs', () => {
    const host = randomTensor([7, 13], { seed: 11 });
    for (const x of [host, transpose(host)]) {
      const dev = x.to('cuda');
      const cases = [
        [variance(dev, [1]), variance(x, [1])],
        [logsumexp(dev, [0, 1]), logsumexp(x, [0, 1])],
      ] as const;
      for (const [onCuda, onCpu] of cases) {
        expect(onCuda.device).toBe('cuda');
        expect(onCuda.dtype).toBe(onCpu.dtype);
        expect(Array.from(onCuda.toFloat64Array())).toEqual(Array.from(onCpu.toFloat64Array()));
      }
    }
  });
});
