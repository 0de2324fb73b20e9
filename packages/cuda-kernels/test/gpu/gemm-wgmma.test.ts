// The Hopper GEMM (TMA + wgmma, bfloat16 / float16), forced through setGemmPath('wgmma') so
// that small products take it too: all four operand layouts (row- or column-major A, a [K, N]
// or a transposed [N, K] B), both block-tile widths, K split over blocks, ragged M / N / K, padded leading dims,
// batches with a broadcast weight, the fallbacks for operands the copy engine cannot read,
// and the path switch itself. Inputs are small integers, so every product and float32 sum is
// exact and the result must equal the float64 reference rounded once to the output dtype.
import { expand, tidy, transpose, type DType } from '@blora/tensor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cudaAvailable, cudaDeviceInfo } from '@blora/cuda-kernels';
import { native } from '../../src/native.js';
import { checkProduct, checkRoundedProduct, operand, type Operand } from './gemm-operands.js';

const HALF_DTYPES: readonly DType[] = ['bfloat16', 'float16'];
const LAYOUTS = ['rowMajor', 'colMajor'] as const;
const hopper = cudaAvailable() && native().wgmmaAvailable();

// Batch counts that give the wide (128 x 256) tile a full wave on GPUs of up to 150 SMs for
// 2 x 1 output tiles per matrix.
const WIDE_BATCH = 80;

describe.skipIf(!cudaAvailable())('tensor-core GEMM path switch on cuda', () => {
  it('runs the wgmma kernel on every compute capability 9.0 GPU', () => {
    // A false here on a Hopper GPU means the driver loaded the plain sm_90 image.
    if (cudaDeviceInfo()?.computeCapability === '9.0') expect(native().wgmmaAvailable()).toBe(true);
  });

  it('rejects unknown path names and restores the previous path', () => {
    expect(() => native().setGemmPath('fast' as 'auto')).toThrow(/must be 'auto', 'wgmma' or 'pipelined', got 'fast'/);
    const before = native().setGemmPath('pipelined');
    expect(native().setGemmPath(before)).toBe('pipelined');
  });
});

describe.skipIf(!hopper)('TMA + wgmma GEMM on cuda', () => {
  let previous: 'auto' | 'wgmma' | 'pipelined' = 'auto';
  beforeAll(() => {
    previous = native().setGemmPath('wgmma');
  });
  afterAll(() => {
    native().setGemmPath(previous);
  });

  it('multiplies all four operand layouts with ragged M, N and K, exactly', () => {
    const [m, k, n] = [129, 72, 257];
    for (const dtype of HALF_DTYPES) {
      for (const aLayout of LAYOUTS) {
        for (const bLayout of LAYOUTS) {
          // Leading dims of 129 (column-major A) and 257 (row-major B) padded to multiples of 8.
          const a = operand(dtype, 1, m, k, aLayout, 1, aLayout === 'colMajor' ? 7 : 0);
          const b = operand(dtype, 1, k, n, bLayout, 2, bLayout === 'rowMajor' ? 7 : 0);
          checkProduct(a, b, 1, m, k, n, dtype, 'wgmma-128x128');
        }
      }
    }
  });

  it('uses the wide tile for many tiles, over batches and with K below one stage', () => {
    const [m, k, n] = [136, 40, 131];
    for (const dtype of HALF_DTYPES) {
      for (const aLayout of LAYOUTS) {
        for (const bLayout of LAYOUTS) {
          // N = 131 with row-major B: a leading dim of 136 (a multiple of 8) through padding.
          const b = operand(dtype, WIDE_BATCH, k, n, bLayout, 4, bLayout === 'rowMajor' ? 5 : 0);
          checkProduct(operand(dtype, WIDE_BATCH, m, k, aLayout, 3), b, WIDE_BATCH, m, k, n, dtype, 'wgmma-128x256');
        }
      }
    }
  });

  it('reads padded leading dims and crosses many K steps (split over two blocks a tile)', () => {
    const dtype: DType = 'bfloat16';
    const [m, k, n] = [300, 520, 200];
    checkProduct(operand(dtype, 1, m, k, 'rowMajor', 6, 8), operand(dtype, 1, k, n, 'colMajor', 7, 16), 1, m, k, n, dtype,
      'wgmma-128x128/split2');
    checkProduct(operand(dtype, 1, m, k, 'colMajor', 8, 4), operand(dtype, 1, k, n, 'rowMajor', 9, 24), 1, m, k, n, dtype,
      'wgmma-128x128/split2');
  });

  it('multiplies a weight broadcast over the batch (stride 0)', () => {
    for (const dtype of HALF_DTYPES) {
      const [batch, m, k, n] = [3, 136, 96, 120];
      const a = operand(dtype, batch, m, k, 'rowMajor', 10);
      const shared = operand(dtype, 1, n, k, 'rowMajor', 11);
      const bValues = new Float64Array(batch * k * n);
      for (let p = 0; p < batch; p++) {
        for (let q = 0; q < k; q++) for (let j = 0; j < n; j++) bValues[(p * k + q) * n + j] = shared.values[j * k + q]!;
      }
      const b: Operand = { values: bValues, make: (d) => tidy(() => expand(transpose(shared.make(d), 1, 2), [batch, k, n])) };
      checkProduct(a, b, batch, m, k, n, dtype, 'wgmma-128x128');
    }
  });

  it('falls back for operands the copy engine cannot read and gives the same results', () => {
    const dtype: DType = 'bfloat16';
    const [batch, m, k, n] = [WIDE_BATCH, 136, 24, 136];
    // First element 3 elements into the buffer: not 16-byte aligned (the pipelined kernel
    // needs that too).
    checkProduct(operand(dtype, batch, m, k, 'rowMajor', 12, 0, 3), operand(dtype, batch, k, n, 'colMajor', 13), batch, m, k,
      n, dtype, 'mma-64x64');
    // Leading dim 30: not a multiple of 8 elements.
    checkProduct(operand(dtype, batch, m, k, 'rowMajor', 14, 6), operand(dtype, batch, k, n, 'rowMajor', 15), batch, m, k, n,
      dtype, 'mma-64x64');
    // One row broadcast over M (row stride 0): fine for the pipelined kernel, not for TMA.
    const row = operand(dtype, 1, 1, k, 'rowMajor', 16);
    const aValues = new Float64Array(batch * m * k);
    for (let i = 0; i < batch * m; i++) aValues.set(row.values, i * k);
    const a: Operand = { values: aValues, make: (d) => tidy(() => expand(row.make(d), [batch, m, k])) };
    checkProduct(a, operand(dtype, batch, k, n, 'colMajor', 17), batch, m, k, n, dtype, 'pipelined-128x256');
  });

  it('rounds non-integer products once, within the dtype rounding of the float64 result', () => {
    for (const dtype of HALF_DTYPES) checkRoundedProduct(1100, 136, 1500, dtype, 21, /^wgmma-128x/);
  });

  it('on the auto path takes large products and leaves small ones to the other kernels', () => {
    native().setGemmPath('auto');
    try {
      const dtype: DType = 'bfloat16';
      // 9 x 12 narrow tiles: enough for two per SM on up to 216 SMs.
      checkProduct(operand(dtype, 1, 1100, 72, 'rowMajor', 18), operand(dtype, 1, 72, 1500, 'colMajor', 19), 1, 1100, 72, 1500,
        dtype, 'wgmma-128x128');
      checkProduct(operand(dtype, 1, 40, 16, 'rowMajor', 20), operand(dtype, 1, 16, 48, 'rowMajor', 21), 1, 40, 16, 48, dtype,
        'mma-64x64');
      // Few rows and a long K: the tiles are few, so each one's K steps are split over blocks
      // and the partials summed (x · Wᵀ with W [N, K] row-major, as a linear layer has it).
      checkProduct(operand(dtype, 1, 16, 2048, 'rowMajor', 22), operand(dtype, 1, 2048, 2000, 'colMajor', 23), 1, 16, 2048, 2000,
        dtype, /^wgmma-128x(128|256)\/split[2-8]$/);
      native().setGemmPath('pipelined');
      checkProduct(operand(dtype, 1, 1100, 72, 'rowMajor', 18), operand(dtype, 1, 72, 1500, 'colMajor', 19), 1, 1100, 72, 1500,
        dtype, 'pipelined-128x128');
    } finally {
      native().setGemmPath('wgmma');
    }
  });
});
