// CPU kernels for elementwise unary ops. Every op has its own loop so that the per-element
// math is inlined there instead of going through one shared call site that sees many
// different functions. Math runs in float64 and is rounded once into the compute type.
import { registerKernel } from '../dispatch.js';
import { isFloatDType } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { commitValues, outputValues, readValues, type ComputeArray } from './access.js';
import { erfc } from './erf.js';
import { sigmoidOf, siluOf } from './activations.js';

/** Writes `out[i] = f(x[i])` for `i < n`. */
type UnaryLoop = (x: ComputeArray, out: ComputeArray, n: number) => void;

/** Runs one unary loop from `x` (any layout) into the fresh contiguous `out`. */
function runUnary(x: Tensor, out: Tensor, loop: UnaryLoop): void {
  const src = readValues(x);
  const dst = outputValues(out);
  loop(src, dst, dst.length);
  commitValues(out, dst);
}

/** Registers `op` with `loop`, or `intLoop` for integer tensors when given. */
function registerUnary(op: string, loop: UnaryLoop, intLoop?: UnaryLoop): void {
  registerKernel(op, 'cpu', ([x], [out]) => {
    runUnary(x!, out!, intLoop && !isFloatDType(x!.dtype) ? intLoop : loop);
  });
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** Exact GELU x * Phi(x) = x/2 * erfc(-x / sqrt 2); erfc keeps it accurate for large negative x. */
function geluErfOf(v: number): number {
  if (v === -Infinity) return -0;
  return 0.5 * v * erfc(-v * Math.SQRT1_2);
}

/**
 * Tanh GELU x/2 * (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed as
 * x * sigmoid(2u) (the same value) so that the left tail does not cancel to 0.
 */
function geluTanhOf(v: number): number {
  if (v === -Infinity) return -0;
  const u = SQRT_2_OVER_PI * (v + 0.044715 * v * v * v);
  return v * sigmoidOf(2 * u);
}

registerUnary('neg', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = -x[i]!;
});
registerUnary('abs', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = Math.abs(x[i]!);
});
registerUnary('exp', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]!);
});
registerUnary('log', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = Math.log(x[i]!);
});
registerUnary('sqrt', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]!);
});
registerUnary('rsqrt', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = 1 / Math.sqrt(x[i]!);
});
registerUnary('tanh', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]!);
});
registerUnary('sigmoid', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = sigmoidOf(x[i]!);
});
registerUnary('silu', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = siluOf(x[i]!);
});
registerUnary('relu', (x, out, n) => {
  // `v <= 0 ? 0 : v` lets NaN through, as it should.
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    out[i] = v <= 0 ? 0 : v;
  }
});
registerUnary(
  'square',
  (x, out, n) => {
    for (let i = 0; i < n; i++) out[i] = x[i]! * x[i]!;
  },
  // Math.imul wraps exactly like 32-bit hardware; a float64 product of int32s could round.
  (x, out, n) => {
    for (let i = 0; i < n; i++) out[i] = Math.imul(x[i]!, x[i]!);
  },
);
registerUnary('reciprocal', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = 1 / x[i]!;
});
registerUnary('sin', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = Math.sin(x[i]!);
});
registerUnary('cos', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = Math.cos(x[i]!);
});
registerUnary('isFinite', (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = Number.isFinite(x[i]!) ? 1 : 0;
});

const geluErfLoop: UnaryLoop = (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = geluErfOf(x[i]!);
};
const geluTanhLoop: UnaryLoop = (x, out, n) => {
  for (let i = 0; i < n; i++) out[i] = geluTanhOf(x[i]!);
};
registerKernel('gelu', 'cpu', ([x], [out], { approximate }) => {
  runUnary(x!, out!, approximate === 'tanh' ? geluTanhLoop : geluErfLoop);
});
