// Elementwise unary ops. The output has the input's shape and dtype (isFinite: uint8).
// Transcendental ops are float-only and throw on integer tensors (cast first); neg, abs,
// square and relu also take integers, whose results wrap like the dtype's storage
// (neg of int8 -128 is -128, as in two's complement hardware).
import { isFloatDType, type DType } from '../dtype.js';
import { execute1 } from '../dispatch.js';
import type { Tensor } from '../tensor.js';
import { assertTensor } from './binary.js';

/** Which input dtypes an op accepts. */
type Accepts = 'float' | 'any';

function unary(op: string, x: Tensor, accepts: Accepts, attrs: Record<string, unknown> = {}, outDType?: DType): Tensor {
  assertTensor(x, op);
  if (accepts === 'float' && !isFloatDType(x.dtype)) {
    throw new TypeError(`${op}: expected a floating-point tensor, got ${x.describe()}; cast it first, e.g. cast(x, 'float32')`);
  }
  return execute1(op, [x], x.shape, outDType ?? x.dtype, attrs);
}

/** -x, elementwise (all dtypes; integers wrap). Op name: `neg`. */
export function neg(x: Tensor): Tensor {
  return unary('neg', x, 'any');
}

/** |x|, elementwise (all dtypes; abs of the most negative integer wraps to itself). Op name: `abs`. */
export function abs(x: Tensor): Tensor {
  return unary('abs', x, 'any');
}

/** e^x, elementwise (float dtypes). Op name: `exp`. */
export function exp(x: Tensor): Tensor {
  return unary('exp', x, 'float');
}

/** Natural logarithm, elementwise (float dtypes; log 0 = -Inf, log of a negative = NaN). Op name: `log`. */
export function log(x: Tensor): Tensor {
  return unary('log', x, 'float');
}

/** Square root, elementwise (float dtypes; NaN for negatives). Op name: `sqrt`. */
export function sqrt(x: Tensor): Tensor {
  return unary('sqrt', x, 'float');
}

/** 1 / sqrt(x), elementwise (float dtypes). Op name: `rsqrt`. */
export function rsqrt(x: Tensor): Tensor {
  return unary('rsqrt', x, 'float');
}

/** Hyperbolic tangent, elementwise (float dtypes). Op name: `tanh`. */
export function tanh(x: Tensor): Tensor {
  return unary('tanh', x, 'float');
}

/** 1 / (1 + e^-x), elementwise, without overflow for large |x| (float dtypes). Op name: `sigmoid`. */
export function sigmoid(x: Tensor): Tensor {
  return unary('sigmoid', x, 'float');
}

/** x * sigmoid(x) (SiLU / swish), elementwise (float dtypes; -0 at -Infinity, its limit). Op name: `silu`. */
export function silu(x: Tensor): Tensor {
  return unary('silu', x, 'float');
}

/** max(x, 0), elementwise (all dtypes; NaN stays NaN). Op name: `relu`. */
export function relu(x: Tensor): Tensor {
  return unary('relu', x, 'any');
}

/** x * x, elementwise (all dtypes; integer products wrap). Op name: `square`. */
export function square(x: Tensor): Tensor {
  return unary('square', x, 'any');
}

/** 1 / x, elementwise (float dtypes). Op name: `reciprocal`. */
export function reciprocal(x: Tensor): Tensor {
  return unary('reciprocal', x, 'float');
}

/** Sine (radians), elementwise (float dtypes). Op name: `sin`. */
export function sin(x: Tensor): Tensor {
  return unary('sin', x, 'float');
}

/** Cosine (radians), elementwise (float dtypes). Op name: `cos`. */
export function cos(x: Tensor): Tensor {
  return unary('cos', x, 'float');
}

/** How `gelu` evaluates the Gaussian CDF: exactly with erf, or with the tanh approximation. */
export type GeluApproximation = 'none' | 'tanh';

/**
 * GELU, elementwise (float dtypes). `approximate: 'none'` (default) is the exact
 * x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)); `'tanh'` is
 * x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))). Both give -0 at -Infinity.
 * Op name: `gelu` {approximate}.
 */
export function gelu(x: Tensor, approximate: GeluApproximation = 'none'): Tensor {
  if (approximate !== 'none' && approximate !== 'tanh') {
    throw new TypeError(`gelu: approximate must be 'none' or 'tanh', got ${JSON.stringify(approximate)}`);
  }
  return unary('gelu', x, 'float', { approximate });
}

/** 1 where x is neither infinite nor NaN, else 0, as uint8 (all dtypes; integers are always finite). Op name: `isFinite`. */
export function isFinite(x: Tensor): Tensor {
  return unary('isFinite', x, 'any', {}, 'uint8');
}
