/**
 * Element types. Half-precision types are stored as their raw 16-bit patterns
 * (Uint16Array on the CPU) and converted with round-to-nearest-even.
 */
export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int32' | 'int8' | 'uint8';

/** Every supported dtype, in a stable order. */
export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int32', 'int8', 'uint8'];

/** The typed array that backs a dtype on the CPU. */
export type TypedArray = Float32Array | Float64Array | Uint16Array | Int32Array | Int8Array | Uint8Array;

/** Constructor of a typed array (as used for storage). */
export type TypedArrayCtor = { new (n: number): TypedArray; BYTES_PER_ELEMENT: number };

const storageCtors: Record<DType, TypedArrayCtor> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int32: Int32Array,
  int8: Int8Array,
  uint8: Uint8Array,
};

/** Constructor of the typed array holding elements of `dtype` (raw bits for half types). */
export function storageArrayCtor(dtype: DType): TypedArrayCtor {
  const ctor = storageCtors[dtype];
  if (!ctor) throw new TypeError(`unknown dtype '${String(dtype)}'; expected one of ${DTYPES.join(', ')}`);
  return ctor;
}

/** Bytes per element. */
export function itemSize(dtype: DType): number {
  return storageArrayCtor(dtype).BYTES_PER_ELEMENT;
}

/** True for floating-point dtypes (including the 16-bit ones). */
export function isFloatDType(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'float16' || dtype === 'bfloat16';
}

/** True for the 16-bit float dtypes whose CPU storage holds bit patterns. */
export function isHalfDType(dtype: DType): boolean {
  return dtype === 'float16' || dtype === 'bfloat16';
}

/** Throws a TypeError unless `dtype` is a known dtype. */
export function assertDType(dtype: unknown, where: string): asserts dtype is DType {
  if (typeof dtype !== 'string' || !(dtype in storageCtors)) {
    throw new TypeError(`${where}: unknown dtype '${String(dtype)}'; expected one of ${DTYPES.join(', ')}`);
  }
}

const integerRanges: Partial<Record<DType, readonly [number, number]>> = {
  int32: [-2147483648, 2147483647],
  int8: [-128, 127],
  uint8: [0, 255],
};

/** The smallest and largest value of an integer dtype; undefined for float dtypes. */
export function integerRange(dtype: DType): readonly [number, number] | undefined {
  return integerRanges[dtype];
}

/**
 * Throws unless `value` is exactly representable as an element of an integer `dtype`
 * (float dtypes accept every number; they round). `where` names the caller.
 */
export function assertRepresentable(value: number, dtype: DType, where: string): void {
  const range = integerRanges[dtype];
  if (!range) return;
  if (!Number.isInteger(value)) {
    throw new TypeError(`${where}: ${value} is not an integer, so it cannot be stored as ${dtype}; use a float dtype (cast first)`);
  }
  if (value < range[0] || value > range[1]) {
    throw new RangeError(`${where}: ${value} is outside the ${dtype} range [${range[0]}, ${range[1]}]`);
  }
}
