// Tensor descriptors for the addon: a Float64Array
// [address, offset, dtype code, rank, ...shape, ...strides], cheap to read from C++.
import type { DType, Tensor } from '@blora/tensor';
import { DeviceBuffer } from './backend.js';
import { native } from './native.js';

let dtypeCodes: Map<string, number> | null = null;

/** The addon's numeric code of `dtype`. */
export function dtypeCode(dtype: DType): number {
  dtypeCodes ??= new Map(native().dtypeNames.map((name, i) => [name, i]));
  const code = dtypeCodes.get(dtype);
  if (code === undefined) throw new TypeError(`cuda: unknown dtype '${dtype}'`);
  return code;
}

/** The device buffer behind a cuda tensor. */
export function bufferOf(t: Tensor): DeviceBuffer {
  const handle = t.storage.handle;
  if (!(handle instanceof DeviceBuffer)) throw new TypeError(`cuda: tensor ${t.describe()} is not in cuda memory`);
  return handle;
}

/** Describes elements of `dtype` at `address` + `offset` elements, laid out by `shape` and `strides`. */
export function layoutArg(
  address: number,
  offset: number,
  dtype: DType,
  shape: readonly number[],
  strides: readonly number[],
): Float64Array {
  const rank = shape.length;
  const d = new Float64Array(4 + 2 * rank);
  d[0] = address;
  d[1] = offset;
  d[2] = dtypeCode(dtype);
  d[3] = rank;
  for (let i = 0; i < rank; i++) {
    d[4 + i] = shape[i]!;
    d[4 + rank + i] = strides[i]!;
  }
  return d;
}

/**
 * Describes a cuda tensor as it is (its shape, strides and offset). Made once per view and kept on
 * it; the native side only reads descriptors, so sharing one between calls is safe.
 */
export function tensorArg(t: Tensor): Float64Array {
  if (t.layoutCache instanceof Float64Array) return t.layoutCache;
  const d = layoutArg(bufferOf(t).address, t.offset, t.dtype, t.shape, t.strides);
  t.layoutCache = d;
  return d;
}

/** True when `shape`/`strides` address a dense row-major block (size-1 dims may have any stride). */
export function isDenseLayout(shape: readonly number[], strides: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}
