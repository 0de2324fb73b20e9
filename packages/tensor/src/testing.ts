/**
 * Test utilities shared by every package's tests: seeded inputs that do not depend on
 * the library's own generator, non-contiguous views of known values, and closeness checks
 * against float64 references.
 *
 * @module
 */
import { isFloatDType, type DType } from './dtype.js';
import { numel, type Shape } from './shape.js';
import { Tensor } from './tensor.js';
import { tensor } from './ops/creation.js';
import { slice } from './ops/views.js';

/** A small seeded generator (mulberry32) returning numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` seeded values uniform in [low, high). */
export function randomValues(n: number, seed: number, low = -1, high = 1): Float64Array {
  const rnd = seededRandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = low + (high - low) * rnd();
  return out;
}

/** `n` seeded standard-normal values (Box-Muller). */
export function randomNormalValues(n: number, seed: number): Float64Array {
  const rnd = seededRandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - rnd();
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
  }
  return out;
}

/** Options for `randomTensor`. */
export interface RandomTensorOptions {
  seed?: number;
  dtype?: DType;
  device?: string;
  low?: number;
  high?: number;
  /** Return a non-contiguous view holding the same values. */
  nonContiguous?: boolean;
}

/** A tensor of seeded uniform values (integers for integer dtypes). */
export function randomTensor(shape: Shape, options: RandomTensorOptions = {}): Tensor {
  const dtype = options.dtype ?? 'float32';
  let values = randomValues(numel(shape), options.seed ?? 1, options.low ?? -1, options.high ?? 1);
  if (dtype === 'int32' || dtype === 'int8' || dtype === 'uint8') values = values.map(Math.floor);
  const create = options.nonContiguous ? nonContiguousTensor : contiguousTensor;
  return create(values, shape, dtype, options.device ?? 'cpu');
}

function contiguousTensor(values: ArrayLike<number>, shape: Shape, dtype: DType, device: string): Tensor {
  return tensor(Float64Array.from(values), { shape, dtype, device });
}

/**
 * A non-contiguous tensor with the given row-major `values`: the values sit at every
 * other position of the last dimension of a larger tensor, which is then sliced.
 */
export function nonContiguousTensor(values: ArrayLike<number>, shape: Shape, dtype: DType = 'float32', device = 'cpu'): Tensor {
  if (shape.length === 0) return contiguousTensor(values, shape, dtype, device);
  const last = shape[shape.length - 1]!;
  const rows = last === 0 ? 0 : values.length / last;
  // Padding is NaN for float dtypes (and 99 for integers) so a kernel that reads it shows up.
  const pad = isFloatDType(dtype) ? Number.NaN : 99;
  const wide = new Float64Array(rows * last * 2).fill(pad);
  for (let r = 0; r < rows; r++) for (let j = 0; j < last; j++) wide[r * last * 2 + j * 2] = values[r * last + j]!;
  const fixed = tensor(wide, { shape: [...shape.slice(0, -1), last * 2], dtype, device });
  return slice(fixed, -1, 0, last * 2, 2);
}

/** Tolerances for `assertClose`: |a - e| <= atol + rtol * |e|. */
export interface Tolerance {
  rtol?: number;
  atol?: number;
}

/** Float64 values of a tensor or array-like. */
export function valuesOf(x: Tensor | ArrayLike<number>): Float64Array {
  return (x as Tensor).isTensor ? (x as Tensor).toFloat64Array() : Float64Array.from(x as ArrayLike<number>);
}

/**
 * Throws, naming the first offending index, unless `actual` matches `expected` elementwise
 * within tolerance. NaN matches NaN; infinities must match exactly.
 */
export function assertClose(actual: Tensor | ArrayLike<number>, expected: Tensor | ArrayLike<number>, tol: Tolerance = {}): void {
  const a = valuesOf(actual);
  const e = valuesOf(expected);
  const rtol = tol.rtol ?? 1e-5;
  const atol = tol.atol ?? 1e-6;
  if (a.length !== e.length) throw new Error(`assertClose: length ${a.length} != expected ${e.length}`);
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = e[i]!;
    if (Number.isNaN(y) ? Number.isNaN(x) : !Number.isFinite(y) ? x === y : Math.abs(x - y) <= atol + rtol * Math.abs(y)) continue;
    throw new Error(`assertClose: element ${i} is ${x}, expected ${y} (rtol ${rtol}, atol ${atol})`);
  }
}

export { poolLinearReference, repeatLinearReference } from './testing-adapter.js';
export { JSON_MUTATIONS, fuzzJson, mutateJson, type FuzzOptions, type FuzzReport, type JsonMutation } from './testing-fuzz.js';
