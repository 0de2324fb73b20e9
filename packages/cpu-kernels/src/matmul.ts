// The native float32 matmul kernel. Operands are passed as storage + offset + strides, so
// transposed, sliced and broadcast views are read in place; other dtypes go to the
// TypeScript kernel.
import type { KernelFn, Tensor } from '@blora/tensor';
import type { NativeAddon } from './native.js';
import { f32Storage, isF32 } from './tensors.js';

const singleOffsets = new Float64Array(2);

/**
 * The stride with which dims 0..rank-2 of `t` (batch dims and rows) walk memory as one merged
 * dim, or null when they cannot be merged. Size-1 dims never matter.
 */
export function mergedRowStride(t: Tensor): number | null {
  let stride: number | null = null;
  let expected = 0;
  for (let d = t.rank - 2; d >= 0; d--) {
    const size = t.shape[d]!;
    if (size === 1) continue;
    if (stride === null) stride = t.strides[d]!;
    else if (t.strides[d] !== expected) return null;
    expected = t.strides[d]! * size;
  }
  return stride ?? 0;
}

/** Storage offsets of every batch matrix of `a` and `b`, as pairs, batch dims in row-major order. */
function batchOffsetPairs(a: Tensor, b: Tensor, batchRank: number, count: number): Float64Array {
  const out = new Float64Array(2 * count);
  const idx = new Array<number>(batchRank).fill(0);
  let ao = a.offset;
  let bo = b.offset;
  for (let i = 0; i < count; i++) {
    out[2 * i] = ao;
    out[2 * i + 1] = bo;
    for (let d = batchRank - 1; d >= 0; d--) {
      idx[d]! += 1;
      ao += a.strides[d]!;
      bo += b.strides[d]!;
      if (idx[d]! < a.shape[d]!) break;
      ao -= a.strides[d]! * a.shape[d]!;
      bo -= b.strides[d]! * b.shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** The matmul kernel: native for float32 operands and output, `fallback` otherwise. */
export function nativeMatmul(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const a = inputs[0]!;
    const b = inputs[1]!;
    const out = outputs[0]!;
    if (!isF32(a) || !isF32(b) || !isF32(out) || !out.isContiguous) {
      fallback(inputs, outputs, attrs);
      return;
    }
    const rank = out.rank;
    const batchRank = rank - 2;
    const m = a.shape[rank - 2]!;
    const k = a.shape[rank - 1]!;
    const n = b.shape[rank - 1]!;
    let batch = 1;
    for (let d = 0; d < batchRank; d++) batch *= out.shape[d]!;
    if (batch * m * n === 0) return;
    const csa = a.strides[rank - 1]!;
    const rsb = b.strides[rank - 2]!;
    const csb = b.strides[rank - 1]!;
    // x[..., m, k] @ w[k, n] with w shared by the whole batch: one tall product when a's batch
    // dims fold into its rows.
    const bShared = b.strides.every((s, d) => d >= batchRank || s === 0 || b.shape[d] === 1);
    const folded = batch > 1 && bShared ? mergedRowStride(a) : null;
    if (batch === 1 || folded !== null) {
      singleOffsets[0] = a.offset;
      singleOffsets[1] = b.offset;
      const rsa = folded ?? a.strides[rank - 2]!;
      addon.matmulF32(f32Storage(a), f32Storage(b), f32Storage(out), out.offset, batch * m, n, k, rsa, csa, rsb, csb, singleOffsets);
      return;
    }
    const offsets = batchOffsetPairs(a, b, batchRank, batch);
    addon.matmulF32(f32Storage(a), f32Storage(b), f32Storage(out), out.offset, m, n, k, a.strides[rank - 2]!, csa, rsb, csb, offsets);
  };
}
