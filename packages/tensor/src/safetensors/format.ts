// The safetensors format's vocabulary: dtype names, element sizes, their tensor
// counterparts, and the shared error and name rules.
import type { DType } from '../dtype.js';

/** Element types a safetensors file may declare. */
export type SafetensorsDType =
  | 'BOOL' | 'U8' | 'I8' | 'I16' | 'U16' | 'F16' | 'BF16' | 'I32' | 'U32' | 'F32' | 'F64' | 'I64' | 'U64'
  | 'F8_E4M3' | 'F8_E5M2';

/** Bytes per element of each safetensors dtype. */
export const SAFETENSORS_ITEM_SIZES: Readonly<Record<SafetensorsDType, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E4M3: 1, F8_E5M2: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  F64: 8, I64: 8, U64: 8,
};

/** Every safetensors dtype, in a stable order. */
export const SAFETENSORS_DTYPES = Object.keys(SAFETENSORS_ITEM_SIZES) as SafetensorsDType[];

/** True when `value` names a safetensors dtype. */
export function isSafetensorsDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_ITEM_SIZES, value);
}

/**
 * The tensor dtype a stored dtype is read as: the same type where one exists, BOOL as
 * uint8 (0/1), the other integer types as int32 (with a range check), and null for the
 * 8-bit float types, which only `readRaw` returns.
 */
export const TENSOR_DTYPE_OF: Readonly<Record<SafetensorsDType, DType | null>> = {
  F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16',
  I32: 'int32', I8: 'int8', U8: 'uint8', BOOL: 'uint8',
  I16: 'int32', U16: 'int32', U32: 'int32', I64: 'int32', U64: 'int32',
  F8_E4M3: null, F8_E5M2: null,
};

/** The safetensors dtype each tensor dtype is written as. */
export const SAFETENSORS_DTYPE_OF: Readonly<Record<DType, SafetensorsDType>> = {
  float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int32: 'I32', int8: 'I8', uint8: 'U8',
};

/** A tensor as stored: for dtypes without a tensor counterpart (8-bit floats) or to move bytes unchanged. */
export interface RawTensor {
  /** Stored element type. */
  dtype: SafetensorsDType;
  /** Shape, outermost first. */
  shape: number[];
  /** Row-major little-endian element bytes (`numel * itemsize` of them). */
  data: Uint8Array;
}

/** One tensor of a file's header. */
export interface SafetensorsEntry {
  /** Tensor name (a header key). */
  name: string;
  /** Stored element type. */
  dtype: SafetensorsDType;
  /** Shape, outermost first. */
  shape: number[];
  /** First byte, relative to the start of the data buffer. */
  begin: number;
  /** One past the last byte, relative to the start of the data buffer. */
  end: number;
}

/** The header key holding string-to-string metadata rather than a tensor. */
export const METADATA_KEY = '__metadata__';

/** The largest header the reader accepts (the reference implementation's cap). */
export const MAX_HEADER_BYTES = 100_000_000;

/** True when the host stores multi-byte numbers little-endian (as the format does). */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses the byte order of each `size`-byte element of `bytes` in place (for big-endian hosts). */
export function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

/** An error about the safetensors file or buffer `source` (and the tensor `name` when given). */
export function safetensorsError(source: string, message: string, name?: string): Error {
  return new Error(`safetensors ${source}: ${name === undefined ? '' : `tensor '${name}': `}${message}`);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when `s` encodes to UTF-8 without loss (no unpaired surrogates). */
export function isWellFormedString(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

/** Product of a shape's sizes (may exceed 2^53 for hostile shapes; callers compare, never allocate from it). */
export function shapeNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
