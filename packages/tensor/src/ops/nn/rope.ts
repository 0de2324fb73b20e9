// Rotary position embeddings in Hugging Face Llama's "rotate_half" layout: dimension i is
// paired with i + Dh/2 (not with its neighbour), and both use the angle of frequency i.
import { assertDType, isFloatDType, type DType } from '../../dtype.js';
import { execute1 } from '../../dispatch.js';
import type { Tensor } from '../../tensor.js';
import { tensor } from '../creation.js';
import { assertFiniteNumber, assertFloatTensor, assertShapeIs } from './common.js';

/** Options of `rope`. */
export interface RopeOptions {
  /** Rotate by the negative angles (undoes `rope`; it is also its gradient). Default false. */
  inverse?: boolean;
}

/**
 * Applies rotary position embeddings to `x` `[B, H, T, Dh]` (any strides) with the tables
 * `cos`, `sin` `[T, Dh/2]` from `ropeTables`: for `i < Dh/2`,
 * `out[i] = x[i] cos - x[i + Dh/2] sin` and `out[i + Dh/2] = x[i + Dh/2] cos + x[i] sin`.
 * The tables are float32 or `x`'s dtype (both the same). Op name `rope`, inputs `[x, cos, sin]`,
 * attrs `{inverse}`; its gradient is the same op with `inverse` flipped.
 */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, options: RopeOptions = {}): Tensor {
  const op = 'rope';
  assertFloatTensor(op, 'x', x);
  assertFloatTensor(op, 'cos', cos);
  assertFloatTensor(op, 'sin', sin);
  if (x.rank !== 4) throw new RangeError(`${op}: x must have shape [B, H, T, Dh], got ${x.describe()}`);
  const [, , t, dh] = x.shape as [number, number, number, number];
  if (dh % 2 !== 0) throw new RangeError(`${op}: head dim Dh must be even, got ${x.describe()}`);
  assertShapeIs(op, 'cos', cos, [t, dh / 2]);
  assertShapeIs(op, 'sin', sin, [t, dh / 2]);
  if (cos.dtype !== sin.dtype || (cos.dtype !== 'float32' && cos.dtype !== x.dtype)) {
    const allowed = x.dtype === 'float32' ? 'float32' : `float32 or ${x.dtype} (the dtype of x)`;
    throw new TypeError(`${op}: cos and sin must both be ${allowed}, got ${cos.describe()} and ${sin.describe()}`);
  }
  const inverse = options.inverse ?? false;
  if (typeof inverse !== 'boolean') throw new TypeError(`${op}: inverse must be a boolean, got ${String(inverse)}`);
  return execute1(op, [x, cos, sin], x.shape, x.dtype, { inverse });
}

/** Options of `ropeTables`. */
export interface RopeTablesOptions {
  /** Position of the first row (the number of tokens already in a KV cache). Default 0. */
  positionOffset?: number;
  /** Dtype of the tables (default float32). */
  dtype?: DType;
  /** Device of the tables (default 'cpu'). */
  device?: string;
}

/**
 * Cos and sin tables `[T, Dh/2]` for `rope`: row `p` holds the angles
 * `(p + positionOffset) * theta^(-2i/Dh)` for `i < Dh/2`. Computed in float64, then rounded.
 */
export function ropeTables(t: number, dh: number, theta = 10000, options: RopeTablesOptions = {}): { cos: Tensor; sin: Tensor } {
  const op = 'ropeTables';
  if (!Number.isInteger(t) || t < 0) throw new RangeError(`${op}: T must be a non-negative integer, got ${t}`);
  if (!Number.isInteger(dh) || dh < 0 || dh % 2 !== 0) throw new RangeError(`${op}: head dim Dh must be a non-negative even integer, got ${dh}`);
  assertFiniteNumber(op, 'theta', theta);
  if (theta <= 0) throw new RangeError(`${op}: theta must be > 0, got ${theta}`);
  const offset = options.positionOffset ?? 0;
  if (!Number.isInteger(offset) || offset < 0) throw new RangeError(`${op}: positionOffset must be a non-negative integer, got ${offset}`);
  const dtype = options.dtype ?? 'float32';
  assertDType(dtype, op);
  if (!isFloatDType(dtype)) throw new TypeError(`${op}: dtype must be a floating-point dtype, got ${dtype}`);
  const half = dh / 2;
  const cos = new Float64Array(t * half);
  const sin = new Float64Array(t * half);
  for (let i = 0; i < half; i++) {
    const frequency = Math.pow(theta, (-2 * i) / dh);
    for (let p = 0; p < t; p++) {
      const angle = (p + offset) * frequency;
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  const create = { shape: [t, half], dtype, device: options.device ?? 'cpu' };
  return { cos: tensor(cos, create), sin: tensor(sin, create) };
}
