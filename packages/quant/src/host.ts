// Reading and writing CPU tensors from this package's kernels and quantizers
// (zero-copy where the tensor is a dense view of its storage).
import { float32ToBfloat16Bits, float32ToFloat16Bits, type Tensor, type TypedArray } from '@blora/tensor';

/** The elements of a CPU uint8 tensor in row-major order (a view of storage when dense). */
export function hostBytes(t: Tensor): Uint8Array {
  if (t.dtype !== 'uint8') throw new TypeError(`expected a uint8 tensor, got ${t.describe()}`);
  if (t.device === 'cpu' && t.isContiguous) {
    return (t.storage.handle as Uint8Array).subarray(t.offset, t.offset + t.numel);
  }
  return t.toTypedArray() as Uint8Array;
}

/**
 * The elements of a float tensor as numbers in row-major order: a view of storage for dense
 * float32/float64 CPU tensors, otherwise a decoded float64 copy.
 */
export function hostFloats(t: Tensor): Float32Array | Float64Array {
  if (t.device === 'cpu' && t.isContiguous && (t.dtype === 'float32' || t.dtype === 'float64')) {
    return (t.storage.handle as Float32Array | Float64Array).subarray(t.offset, t.offset + t.numel);
  }
  return t.toFloat64Array();
}

/** Writes row-major `values` into a freshly allocated, contiguous CPU float tensor (encoding half types). */
export function writeFloats(out: Tensor, values: ArrayLike<number>): void {
  const raw = out.storage.handle as TypedArray;
  const base = out.offset;
  if (out.dtype === 'float32' || out.dtype === 'float64') {
    for (let i = 0; i < values.length; i++) raw[base + i] = values[i]!;
    return;
  }
  const encode = out.dtype === 'bfloat16' ? float32ToBfloat16Bits : out.dtype === 'float16' ? float32ToFloat16Bits : null;
  if (!encode) throw new TypeError(`expected a float output tensor, got ${out.describe()}`);
  for (let i = 0; i < values.length; i++) raw[base + i] = encode(values[i]!);
}
