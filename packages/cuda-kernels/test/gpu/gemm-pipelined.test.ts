// The pipelined tensor-core GEMM (bfloat16 / float16): both weight layouts the model uses
// (x · Wᵀ with W [N, K], dy · W with W [K, N]), transposed activations, both block-tile
// widths, ragged M / N / K edges, batches (broadcast ones too), and the fallback for
// unaligned operands. Inputs are small integers, so every product and float32 sum is exact
// and the result must equal the float64 reference rounded once to the output dtype.
import { expand, tidy, transpose, type DType } from '@blora/tensor';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { cudaAvailable } from '@blora/cuda-kernels';
import { native } from '../../src/native.js';
import { checkProduct as check, checkRoundedProduct, operand, type Operand } from './gemm-operands.js';

const HALF_DTYPES: readonly DType[] = ['bfloat16', 'float16'];

// Batch counts that give the wide (128 x 256) and the narrow (128 x 128) tile enough
// blocks on GPUs of 100 to 150 SMs, for 2 x 1 output tiles per matrix.
const WIDE_BATCH = 80;
const NARROW_BATCH = 40;

describe.skipIf(!cudaAvailable())('pipelined tensor-core GEMM on cuda', () => {
  // The wgmma kernel would take some of these products on Hopper GPUs.
  let previous: 'auto' | 'wgmma' | 'pipelined' = 'auto';
  beforeAll(() => {
    previous = native().setGemmPath('pipelined');
  });
  afterAll(() => {
    native().setGemmPath(previous);
  });

  it('multiplies x · Wᵀ and dy · W, with row- and column-major activations, exactly', () => {
    const [m, k, n] = [136, 24, 136];
    for (const dtype of HALF_DTYPES) {
      for (const [batch, kernel] of [[WIDE_BATCH, 'pipelined-128x256'], [NARROW_BATCH, 'pipelined-128x128']] as const) {
        for (const aLayout of ['rowMajor', 'colMajor'] as const) {
          const a = operand(dtype, batch, m, k, aLayout, 1);
          // x · Wᵀ: W [N, K] row-major, used transposed (dense along K).
          check(a, operand(dtype, batch, k, n, 'colMajor', 2), batch, m, k, n, dtype, kernel);
          // dy · W: W [K, N] row-major (dense along N).
          check(a, operand(dtype, batch, k, n, 'rowMajor', 3), batch, m, k, n, dtype, kernel);
        }
      }
    }
  });

  it('handles ragged M, N and K through padded leading dims', () => {
    for (const dtype of HALF_DTYPES) {
      // K = 37: the last 16-byte chunk of each K-major row is partial.
      const [m, k, n] = [131, 37, 133];
      const batch = WIDE_BATCH;
      const a = operand(dtype, batch, m, k, 'rowMajor', 4, 11);
      check(a, operand(dtype, batch, k, n, 'colMajor', 5, 3), batch, m, k, n, dtype, 'pipelined-128x256');
      check(a, operand(dtype, batch, k, n, 'rowMajor', 6, 3), batch, m, k, n, dtype, 'pipelined-128x256');
      // Column-major activations with M = 131: partial chunks along M.
      const at = operand(dtype, NARROW_BATCH, m, 40, 'colMajor', 7, 5);
      check(at, operand(dtype, NARROW_BATCH, 40, 100, 'rowMajor', 8, 4), NARROW_BATCH, m, 40, 100, dtype, 'pipelined-128x128');
    }
  });

  it('covers many tiles of one matrix, with partial tile groups', () => {
    const dtype: DType = 'bfloat16';
    // 11 x 16 wide tiles (a group of 8 tile rows and a partial one of 3).
    check(operand(dtype, 1, 1300, 16, 'rowMajor', 9), operand(dtype, 1, 16, 4000, 'colMajor', 10), 1, 1300, 16, 4000, dtype,
      'pipelined-128x256');
    // 9 x 17 narrow tiles, N = 2100 not a multiple of the tile.
    check(operand(dtype, 1, 1100, 24, 'colMajor', 11, 4), operand(dtype, 1, 24, 2100, 'rowMajor', 12, 4), 1, 1100, 24, 2100, dtype,
      'pipelined-128x128');
  });

  it('multiplies a weight broadcast over the batch (stride 0)', () => {
    for (const dtype of HALF_DTYPES) {
      const [batch, m, k, n] = [WIDE_BATCH, 136, 32, 120];
      const a = operand(dtype, batch, m, k, 'rowMajor', 13);
      const shared = operand(dtype, 1, n, k, 'rowMajor', 14);
      const wValues = shared.values;  // [n, k]
      const bValues = new Float64Array(batch * k * n);
      for (let p = 0; p < batch; p++) {
        for (let q = 0; q < k; q++) for (let j = 0; j < n; j++) bValues[(p * k + q) * n + j] = wValues[j * k + q]!;
      }
      const b: Operand = {
        values: bValues,
        make: (d) => tidy(() => expand(transpose(shared.make(d), 1, 2), [batch, k, n])),
      };
      check(a, b, batch, m, k, n, dtype, 'pipelined-128x256');
    }
  });

  it('falls back to the general kernel for unaligned operands and gives the same results', () => {
    const dtype: DType = 'bfloat16';
    const [batch, m, k, n] = [WIDE_BATCH, 136, 24, 136];
    // First element 3 elements into the buffer: not 16-byte aligned.
    check(operand(dtype, batch, m, k, 'rowMajor', 15, 0, 3), operand(dtype, batch, k, n, 'colMajor', 16), batch, m, k, n,
      dtype, 'mma-64x64');
    // Leading dim 30: not a multiple of 8 elements.
    check(operand(dtype, batch, m, k, 'rowMajor', 17, 6), operand(dtype, batch, k, n, 'rowMajor', 18), batch, m, k, n, dtype,
      'mma-64x64');
  });

  it('keeps small products on the general kernel', () => {
    check(operand('float16', 1, 40, 16, 'rowMajor', 19), operand('float16', 1, 16, 48, 'rowMajor', 20), 1, 40, 16, 48,
      'float16', 'mma-64x64');
  });

  it('rounds non-integer products once, within the dtype rounding of the float64 result', () => {
    for (const dtype of HALF_DTYPES) checkRoundedProduct(1100, 72, 1500, dtype, 21, 'pipelined-128x128');
  });
});
