// Reading and writing tensor elements from CPU kernels.
// Kernels compute in float32 for float32/float16/bfloat16 (half types are decoded on read and
// rounded to nearest even on write), in float64 for float64, and in the integer type otherwise.
import { isHalfDType, type TypedArray } from '../dtype.js';
import { bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits } from '../half.js';
import type { Tensor } from '../tensor.js';

/** Values as CPU kernels compute with them. */
export type ComputeArray = Float32Array | Float64Array | Int32Array | Int8Array | Uint8Array;

/** The raw storage array of a CPU tensor (ignores shape, strides and offset). */
export function storageOf(t: Tensor): TypedArray {
  return t.storage.handle as TypedArray;
}

/**
 * Storage offsets of every element of `t` in row-major order. Walks the index
 * like an odometer, so the cost is one add per element.
 */
export function elementOffsets(t: Tensor): Int32Array {
  const n = t.numel;
  const out = new Int32Array(n);
  const rank = t.rank;
  if (rank === 0) {
    if (n) out[0] = t.offset;
    return out;
  }
  const shape = t.shape;
  const strides = t.strides;
  const inner = shape[rank - 1]!;
  const innerStride = strides[rank - 1]!;
  const idx = new Array<number>(rank).fill(0);
  let base = t.offset;
  for (let i = 0; i < n; i += inner) {
    for (let j = 0, o = base; j < inner; j++, o += innerStride) out[i + j] = o;
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]! += 1;
      base += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      base -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** True when `t`'s elements are exactly storage[offset .. offset+numel) in order. */
export function isDense(t: Tensor): boolean {
  return t.isContiguous;
}

/**
 * The elements of `t` in row-major order in their compute representation.
 * Zero-copy (a subarray of storage) when `t` is dense and not a half type.
 */
export function readValues(t: Tensor): ComputeArray {
  const raw = storageOf(t);
  const n = t.numel;
  const half = isHalfDType(t.dtype);
  if (!half && t.isContiguous) return raw.subarray(t.offset, t.offset + n) as ComputeArray;
  const out: ComputeArray = half ? new Float32Array(n) : new (raw.constructor as new (n: number) => ComputeArray)(n);
  const decode = t.dtype === 'bfloat16' ? bfloat16BitsToFloat32 : t.dtype === 'float16' ? float16BitsToFloat32 : null;
  if (t.isContiguous) {
    for (let i = 0; i < n; i++) out[i] = decode!(raw[t.offset + i]!);
    return out;
  }
  const offs = elementOffsets(t);
  if (decode) for (let i = 0; i < n; i++) out[i] = decode(raw[offs[i]!]!);
  else for (let i = 0; i < n; i++) out[i] = raw[offs[i]!]!;
  return out;
}

/**
 * A writable compute-representation array for the freshly allocated, contiguous `out`:
 * its storage itself when no conversion is needed, otherwise a scratch array that
 * `commitValues` encodes into storage.
 */
export function outputValues(out: Tensor): ComputeArray {
  if (!isHalfDType(out.dtype)) return storageOf(out).subarray(out.offset, out.offset + out.numel) as ComputeArray;
  return new Float32Array(out.numel);
}

/** Finishes a write started with `outputValues` (encodes half types; no-op otherwise). */
export function commitValues(out: Tensor, values: ComputeArray): void {
  if (!isHalfDType(out.dtype)) return;
  const raw = storageOf(out) as Uint16Array;
  const encode = out.dtype === 'bfloat16' ? float32ToBfloat16Bits : float32ToFloat16Bits;
  for (let i = 0; i < values.length; i++) raw[out.offset + i] = encode(values[i]!);
}

/** The value of the element at `t`'s offset (the only value of a broadcast scalar), decoded. */
export function readFirst(t: Tensor): number {
  const raw = storageOf(t)[t.offset]!;
  if (t.dtype === 'bfloat16') return bfloat16BitsToFloat32(raw);
  if (t.dtype === 'float16') return float16BitsToFloat32(raw);
  return raw;
}

/** True when every element of `t` is the same storage element (all strides 0 or size-1 dims). */
export function isBroadcastScalar(t: Tensor): boolean {
  return t.numel > 0 && t.strides.every((s, i) => s === 0 || t.shape[i] === 1);
}
