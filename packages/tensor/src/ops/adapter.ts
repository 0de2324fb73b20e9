// The two fused products of the balanced adapters. The adapter's update is
//   y = base + s · repeatInterleave(B · A · avgPool_λin(x), λout)
// and each parameter-free map is one op with the product next to it: `poolLinear` casts and
// averages the input of the product with A, `repeatLinear` scales, repeats and adds the product
// with B into the base output. A device's kernels are free to fold the maps into the products'
// loads and stores; they need no output-sized float32 temporary either way.
import { isFloatDType, type DType } from '../dtype.js';
import { execute1 } from '../dispatch.js';
import { formatShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { assertFiniteNumber, assertFloatTensor } from './nn/common.js';

/** Throws naming `op` unless `lambda` is a positive integer. */
function checkLambda(op: string, lambda: unknown): number {
  if (typeof lambda !== 'number' || !Number.isInteger(lambda) || lambda < 1) {
    throw new RangeError(`${op}: lambda must be a positive integer, got ${String(lambda)}`);
  }
  return lambda;
}

/** Throws naming `op` unless `weight` is a 2-D float32 or float64 matrix. */
function checkWeight(op: string, weight: Tensor): void {
  assertFloatTensor(op, 'weight', weight);
  if (weight.rank !== 2 || (weight.dtype !== 'float32' && weight.dtype !== 'float64')) {
    throw new TypeError(`${op}: weight must be a 2-D float32 or float64 matrix, got ${weight.describe()}`);
  }
}

/** Throws naming `op` unless every tensor is on the device of the first. */
function checkDevices(op: string, tensors: readonly Tensor[]): void {
  const device = tensors[0]!.device;
  if (tensors.some((t) => t.device !== device)) {
    throw new Error(`${op}: all inputs must be on one device, got ${tensors.map((t) => t.describe()).join(', ')}`);
  }
}

/**
 * `avgPool1d(cast(x, D), lambda) · weightᵀ` in one op: the mean of each run of `lambda`
 * consecutive features of `x` times `weight`,
 * `out[..., n] = Σ_k ((1/λ) · Σ_{e<λ} x[..., k·λ + e]) · weight[n, k]`.
 *
 * `x` is `[..., K·λ]` of any float dtype and any layout; `weight` is `[N, K]`, float32 or
 * float64 (its dtype D is the output's and the compute dtype: each pooled value is the sum of
 * its run divided by λ, the products are accumulated in D). The result is `[..., N]` of dtype D.
 * `lambda = 1` is a plain product with a cast of `x`.
 *
 * Op name: `poolLinear`, inputs `[x, weight]`, attrs `{ lambda }`.
 */
export function poolLinear(x: Tensor, weight: Tensor, lambda: number): Tensor {
  const op = 'poolLinear';
  assertFloatTensor(op, 'x', x);
  checkWeight(op, weight);
  const lam = checkLambda(op, lambda);
  checkDevices(op, [x, weight]);
  if (x.rank === 0) throw new RangeError(`${op}: x must have at least one dim [..., K·λ], got ${x.describe()}`);
  const last = x.shape[x.rank - 1]!;
  if (last % lam !== 0) {
    throw new RangeError(`${op}: last dim ${last} of x ${formatShape(x.shape)} is not divisible by lambda ${lam}`);
  }
  const [n, k] = weight.shape as [number, number];
  if (last / lam !== k) {
    throw new RangeError(`${op}: x ${formatShape(x.shape)} pools to ${last / lam} features but weight ${formatShape(weight.shape)} ` +
      `expects ${k} (x's last dim must be weight.shape[1] · lambda = ${k * lam})`);
  }
  return execute1(op, [x, weight], [...x.shape.slice(0, -1), n], weight.dtype, { lambda: lam });
}

/** Options of `repeatLinear`. */
export interface RepeatLinearOptions {
  /** How many times each feature of the product is repeated (a positive integer). */
  lambda: number;
  /** Factor on the product, applied before the repeat (default 1). */
  scale?: number;
  /** Added to the result; must have exactly the output's shape (any float dtype, any layout). */
  base?: Tensor;
  /** Output dtype (default: `base`'s dtype when given, else the dtype of `h`). */
  dtype?: DType;
}

/**
 * `base + scale · repeatInterleave(h · weightᵀ, lambda)` in one op:
 * `out[..., j·λ + e] = base[..., j·λ + e] + scale · Σ_r h[..., r] · weight[j, r]` for `e < λ`.
 *
 * `h` is `[..., R]` and `weight` `[Nr, R]`, both of dtype D (float32 or float64; `weight` may be
 * any strided view, such as the transpose of an `[R, Nr]` matrix). The result is
 * `[..., Nr·λ]`: the products are accumulated in D, scaled and added to the base in D (or
 * wider), and the sum is rounded once to the output dtype: `options.dtype`, else `base`'s
 * dtype, else D.
 *
 * Op name: `repeatLinear`, inputs `[h, weight]` or `[h, weight, base]`,
 * attrs `{ lambda, scale, hasBase }` (the output dtype is the output tensor's).
 */
export function repeatLinear(h: Tensor, weight: Tensor, options: RepeatLinearOptions): Tensor {
  const op = 'repeatLinear';
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${op}: options { lambda, scale?, base?, dtype? } are required, got ${String(options)}`);
  }
  assertFloatTensor(op, 'h', h);
  if (h.dtype !== 'float32' && h.dtype !== 'float64') throw new TypeError(`${op}: h must be float32 or float64, got ${h.describe()}`);
  checkWeight(op, weight);
  if (weight.dtype !== h.dtype) throw new TypeError(`${op}: weight must have h's dtype ${h.dtype}, got ${weight.describe()}`);
  const lam = checkLambda(op, options.lambda);
  const scale = options.scale ?? 1;
  assertFiniteNumber(op, 'scale', scale);
  if (h.rank === 0) throw new RangeError(`${op}: h must have at least one dim [..., R], got ${h.describe()}`);
  const [nr, r] = weight.shape as [number, number];
  const inner = h.shape[h.rank - 1]!;
  if (inner !== r) {
    throw new RangeError(`${op}: inner dimensions differ: h ${formatShape(h.shape)} and weight ${formatShape(weight.shape)} (${inner} vs ${r})`);
  }
  const shape = [...h.shape.slice(0, -1), nr * lam];
  const base = options.base;
  if (base !== undefined) {
    assertFloatTensor(op, 'base', base);
    if (base.rank !== shape.length || base.shape.some((d, i) => d !== shape[i])) {
      throw new RangeError(`${op}: base must have the output's shape ${formatShape(shape)}, got ${base.describe()}`);
    }
  }
  const dtype = options.dtype ?? base?.dtype ?? h.dtype;
  if (!isFloatDType(dtype)) throw new TypeError(`${op}: dtype must be a floating-point dtype, got '${String(dtype)}'`);
  const inputs = base ? [h, weight, base] : [h, weight];
  checkDevices(op, inputs);
  return execute1(op, inputs, shape, dtype, { lambda: lam, scale, hasBase: base !== undefined });
}
