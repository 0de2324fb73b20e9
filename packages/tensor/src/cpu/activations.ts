// Activations and their derivatives in float64, shared by the unary kernels, SwiGLU (siluMul) and
// the fused gradients (siluBackward, geluBackward). The derivatives take their limits, 1 and 0, at
// x = +-Infinity, so a gradient is dy * derivative with no case of its own.
import { erfc } from './erf.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const GELU_CUBIC = 0.044715;

/** 1 / (1 + e^-x) without overflow: e^x is only taken of non-positive arguments. */
export function sigmoidOf(v: number): number {
  if (v >= 0) return 1 / (1 + Math.exp(-v));
  const e = Math.exp(v);
  return e / (1 + e);
}

/** x * sigmoid(x); its limit -0 at -Infinity (the plain product would be -Inf * 0 = NaN). */
export function siluOf(v: number): number {
  if (v === -Infinity) return -0;
  return v * sigmoidOf(v);
}

/** silu'(x) = s (1 + x (1 - s)), s = 1 / (1 + e^-x). */
export function siluDerivativeOf(v: number): number {
  if (v === Infinity) return 1;
  if (v === -Infinity) return 0;
  const s = 1 / (1 + Math.exp(-v));
  return s * (1 + v * (1 - s));
}

/** The exact gelu's derivative Phi(x) + x phi(x), Phi(x) = erfc(-x / sqrt 2) / 2. */
export function geluDerivativeOf(v: number): number {
  if (v === Infinity) return 1;
  if (v === -Infinity) return 0;
  return 0.5 * erfc(-v * Math.SQRT1_2) + v * Math.exp(-0.5 * v * v) * INV_SQRT_2PI;
}

/** The tanh gelu's derivative, d/dx x s(2u) = s + x s (1 - s) 2u', u = sqrt(2/pi) (x + 0.044715 x^3). */
export function geluTanhDerivativeOf(v: number): number {
  if (v === Infinity) return 1;
  if (v === -Infinity) return 0;
  const s = sigmoidOf(2 * SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v));
  return s + v * s * (1 - s) * 2 * SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * v * v);
}
