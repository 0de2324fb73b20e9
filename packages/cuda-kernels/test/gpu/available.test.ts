// The GPU run (vitest.gpu.config.ts sets BLORA_REQUIRE_CUDA) must not pass by skipping
// everything: it fails here, with the reason, when no GPU is usable.
import { describe, expect, it } from 'vitest';
import { cudaAvailable, cudaDeviceInfo, cudaUnavailableReason } from '@blora/cuda-kernels';
import { listDevices, listKernels } from '@blora/tensor';
import '@blora/quant';

describe('the cuda device', () => {
  it.runIf(process.env.BLORA_REQUIRE_CUDA === '1')('is available on the GPU host', () => {
    expect(cudaUnavailableReason()).toBe('');
    expect(cudaAvailable()).toBe(true);
  });

  it.runIf(cudaAvailable())('is registered with its kernels and describes the GPU', () => {
    expect(listDevices()).toContain('cuda');
    const kernels = listKernels('cuda');
    for (const op of ['fill', 'copy', 'cast', 'add', 'exp', 'gelu', 'eq', 'where', 'clamp', 'isFinite', 'sum', 'mean',
      'max', 'min', 'softmax', 'logSoftmax', 'matmul', 'indexSelect', 'gather', 'scatterAdd', 'indexAdd', 'cat',
      'avgPool1d', 'repeatInterleave', 'randUniform', 'randNormal', 'randInt', 'randBernoulli', 'rmsNorm',
      'rmsNormBackward', 'rope', 'crossEntropy', 'crossEntropyBackward', 'attention', 'attentionBackward', 'adamwStep',
      'nf4Matmul', 'nf4MatmulT', 'nf4Dequantize', 'int4Matmul', 'int4MatmulT', 'int4Dequantize', 'int8Matmul',
      'int8MatmulT', 'int8Dequantize', 'dequantizeBlockwise8']) {
      expect(kernels).toContain(op);
    }
    // Every op the CPU runs (the quantized ones included) has a cuda kernel too.
    for (const op of listKernels('cpu')) expect(kernels).toContain(op);
    const info = cudaDeviceInfo()!;
    expect(info.available).toBe(true);
    expect(info.deviceName).not.toBe('');
    expect(Number(info.computeCapability)).toBeGreaterThanOrEqual(8);
    expect(info.totalMemory).toBeGreaterThan(0);
  });
});
