// Creating tensors: from data, constants, ranges.
import { assertDType, assertRepresentable, storageArrayCtor, type DType, type TypedArray } from '../dtype.js';
import { execute1 } from '../dispatch.js';
import { float32ToBfloat16Bits, float32ToFloat16Bits } from '../half.js';
import { assertShape, formatShape, numel, type Shape } from '../shape.js';
import { Tensor, type NestedNumbers } from '../tensor.js';

/** Where and as what to create a tensor. */
export interface CreateOptions {
  /** Element type (default float32). */
  dtype?: DType;
  /** Device name (default 'cpu'). */
  device?: string;
}

function opts(o: CreateOptions | undefined, where: string): { dtype: DType; device: string } {
  const dtype = o?.dtype ?? 'float32';
  assertDType(dtype, where);
  return { dtype, device: o?.device ?? 'cpu' };
}

/** Encodes numbers into the storage representation of `dtype` (rounding halfs to nearest even). */
export function encodeValues(values: ArrayLike<number>, dtype: DType): TypedArray {
  const out = new (storageArrayCtor(dtype))(values.length);
  const encode = dtype === 'bfloat16' ? float32ToBfloat16Bits : dtype === 'float16' ? float32ToFloat16Bits : null;
  if (encode) for (let i = 0; i < values.length; i++) out[i] = encode(values[i]!);
  else for (let i = 0; i < values.length; i++) out[i] = values[i]!;
  return out;
}

function inferShape(v: NestedNumbers): number[] {
  const shape: number[] = [];
  let cur: NestedNumbers = v;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0]!;
  }
  return shape;
}

function flattenNested(v: NestedNumbers, shape: number[], dim: number, out: number[], where: string): void {
  if (dim === shape.length) {
    if (typeof v !== 'number') throw new TypeError(`${where}: ragged nested array (expected a number at depth ${dim})`);
    out.push(v);
    return;
  }
  if (!Array.isArray(v) || v.length !== shape[dim]) {
    throw new TypeError(`${where}: ragged nested array at depth ${dim} (expected length ${shape[dim]})`);
  }
  for (const x of v) flattenNested(x, shape, dim + 1, out, where);
}

/**
 * A tensor from a number, nested arrays of numbers, or a typed array (with `shape`).
 * A typed array whose type matches the dtype's storage is taken as raw values
 * (16-bit patterns for half types when given a Uint16Array).
 */
export function tensor(
  values: NestedNumbers | TypedArray | readonly number[],
  options?: CreateOptions & { shape?: Shape },
): Tensor {
  const { dtype, device } = opts(options, 'tensor');
  if (ArrayBuffer.isView(values)) {
    const data = values as TypedArray;
    const shape = options?.shape ?? [data.length];
    assertShape(shape, 'tensor');
    if (numel(shape) !== data.length) {
      throw new RangeError(`tensor: ${data.length} values do not fill shape ${formatShape(shape)} (${numel(shape)} elements)`);
    }
    const raw = data instanceof storageArrayCtor(dtype) ? data : encodeValues(data, dtype);
    return Tensor.fromTypedArray(raw, shape, dtype, device);
  }
  const nested = values as NestedNumbers;
  const shape = inferShape(nested);
  const flat: number[] = [];
  flattenNested(nested, shape, 0, flat, 'tensor');
  const target = options?.shape ?? shape;
  assertShape(target, 'tensor');
  if (numel(target) !== flat.length) {
    throw new RangeError(`tensor: ${flat.length} values do not fill shape ${formatShape(target)}`);
  }
  return Tensor.fromTypedArray(encodeValues(flat, dtype), target, dtype, device);
}

/** A 0-d tensor holding `value`. */
export function scalar(value: number, options?: CreateOptions): Tensor {
  return tensor(value, options);
}

/** An uninitialised tensor. */
export function empty(shape: Shape, options?: CreateOptions): Tensor {
  assertShape(shape, 'empty');
  const { dtype, device } = opts(options, 'empty');
  return Tensor.empty(shape, dtype, device);
}

/** A tensor with every element `value`. Op name: `fill`. */
export function full(shape: Shape, value: number, options?: CreateOptions): Tensor {
  assertShape(shape, 'full');
  const { dtype, device } = opts(options, 'full');
  if (typeof value !== 'number') throw new TypeError(`full: value must be a number, got ${typeof value}`);
  assertRepresentable(value, dtype, 'full');
  return execute1('fill', [], shape, dtype, { value }, device);
}

/** All zeros. */
export function zeros(shape: Shape, options?: CreateOptions): Tensor {
  return full(shape, 0, options);
}

/** All ones. */
export function ones(shape: Shape, options?: CreateOptions): Tensor {
  return full(shape, 1, options);
}

/** Zeros with the shape, dtype and device of `t` (overridable). */
export function zerosLike(t: Tensor, options?: CreateOptions): Tensor {
  return full(t.shape, 0, { dtype: t.dtype, device: t.device, ...options });
}

/** Ones with the shape, dtype and device of `t` (overridable). */
export function onesLike(t: Tensor, options?: CreateOptions): Tensor {
  return full(t.shape, 1, { dtype: t.dtype, device: t.device, ...options });
}

/** `value` everywhere, with the shape, dtype and device of `t` (overridable). */
export function fullLike(t: Tensor, value: number, options?: CreateOptions): Tensor {
  return full(t.shape, value, { dtype: t.dtype, device: t.device, ...options });
}

/** `start, start+step, ... < end` (or `0 .. start` with one argument). */
export function arange(start: number, end?: number, step = 1, options?: CreateOptions): Tensor {
  const { dtype, device } = opts(options, 'arange');
  const [s, e] = end === undefined ? [0, start] : [start, end];
  if (step === 0 || !Number.isFinite(step)) throw new RangeError(`arange: step must be finite and non-zero, got ${step}`);
  if (!Number.isFinite(s) || !Number.isFinite(e)) throw new RangeError(`arange: start and end must be finite, got ${s} and ${e}`);
  const n = Math.max(0, Math.ceil((e - s) / step));
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = s + i * step;
  return Tensor.fromTypedArray(encodeValues(values, dtype), [n], dtype, device);
}

/** An `n x m` matrix with ones on the diagonal. */
export function eye(n: number, m = n, options?: CreateOptions): Tensor {
  const { dtype, device } = opts(options, 'eye');
  assertShape([n, m], 'eye');
  const values = new Float64Array(n * m);
  for (let i = 0; i < Math.min(n, m); i++) values[i * m + i] = 1;
  return Tensor.fromTypedArray(encodeValues(values, dtype), [n, m], dtype, device);
}

/** Converts `t` to `dtype` (a copy; float->int truncates toward zero, halfs round to nearest even). Op name: `cast`. */
export function cast(t: Tensor, dtype: DType): Tensor {
  assertDType(dtype, 'cast');
  t.assertAlive('cast');
  return execute1('cast', [t], t.shape, dtype, { dtype });
}
