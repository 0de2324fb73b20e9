// CPU kernels for elementwise binary ops. Inputs arrive broadcast to the output shape.
// Every op has its own loop (no per-element call through a shared function), and an operand
// that is a broadcast scalar is read once instead of being expanded to the full size.
import { registerKernel } from '../dispatch.js';
import { isFloatDType, type DType } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { commitValues, isBroadcastScalar, outputValues, readFirst, readValues, type ComputeArray } from './access.js';
import { erfc } from './erf.js';
import { sigmoidOf, siluOf } from './sigmoid.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const GELU_CUBIC = 0.044715;

/**
 * The loop of a binary op: `out[i] = f(x[ix], y[iy])` for `i < n`, where `ix` and `iy`
 * advance by `xStep` and `yStep` per element (1 for a full operand, 0 for a broadcast scalar).
 */
export type BinaryLoop = (x: ComputeArray, y: ComputeArray, out: ComputeArray, n: number, xStep: number, yStep: number) => void;

/** Per-element function of a binary op, computed in the kernel's compute type. */
export type BinaryFn = (x: number, y: number) => number;

function computeArrayOf(dtype: DType, n: number): ComputeArray {
  switch (dtype) {
    case 'float64': return new Float64Array(n);
    case 'int32': return new Int32Array(n);
    case 'int8': return new Int8Array(n);
    case 'uint8': return new Uint8Array(n);
    default: return new Float32Array(n); // float32, float16, bfloat16
  }
}

/**
 * The values of one operand and the step to walk them with: a broadcast scalar gives a
 * one-element array and step 0, anything else its row-major values and step 1.
 */
export function operandValues(t: Tensor): [ComputeArray, number] {
  if (isBroadcastScalar(t) && t.numel > 1) {
    const one = computeArrayOf(t.dtype, 1);
    one[0] = readFirst(t);
    return [one, 0];
  }
  return [readValues(t), 1];
}

/** Runs `loop` on inputs `a`, `b` into the fresh contiguous `out` and encodes the result. */
export function runBinary(a: Tensor, b: Tensor, out: Tensor, loop: BinaryLoop): void {
  const [x, xStep] = operandValues(a);
  const [y, yStep] = operandValues(b);
  const dst = outputValues(out);
  loop(x, y, dst, dst.length, xStep, yStep);
  commitValues(out, dst);
}

/** Registers `op` on the CPU with `loop`, or `intLoop` for integer inputs when given. */
export function registerBinaryLoop(op: string, loop: BinaryLoop, intLoop?: BinaryLoop): void {
  registerKernel(op, 'cpu', ([a, b], [out]) => {
    runBinary(a!, b!, out!, intLoop && !isFloatDType(a!.dtype) ? intLoop : loop);
  });
}

/**
 * Registers `op` on the CPU computing `f(x, y)` per element. Simpler than a dedicated loop
 * but slower (the call to `f` is shared by every op registered this way): for rarely used ops.
 */
export function registerBinaryCpu(op: string, f: BinaryFn): void {
  registerBinaryLoop(op, (x, y, out, n, xs, ys) => {
    for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = f(x[ix]!, y[iy]!);
  });
}

/**
 * pow with the C99 / IEEE 754 special cases (as CUDA and PyTorch have them), where
 * JavaScript's Math.pow returns NaN instead: pow(1, y) = 1 for every y, pow(-1, +-Inf) = 1.
 */
export function powIeee(x: number, y: number): number {
  if (x === 1 || (x === -1 && (y === Infinity || y === -Infinity))) return 1;
  return Math.pow(x, y);
}

// Integer results are stored into the output typed array, which wraps them like two's
// complement hardware. Sums of int32s are exact in float64, products are not: Math.imul.
registerBinaryLoop('add', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = x[ix]! + y[iy]!;
});
registerBinaryLoop('sub', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = x[ix]! - y[iy]!;
});
registerBinaryLoop(
  'mul',
  (x, y, out, n, xs, ys) => {
    for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = x[ix]! * y[iy]!;
  },
  (x, y, out, n, xs, ys) => {
    for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = Math.imul(x[ix]!, y[iy]!);
  },
);
registerBinaryLoop('div', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = x[ix]! / y[iy]!;
});
registerBinaryLoop('pow', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = powIeee(x[ix]!, y[iy]!);
});
// Math.max / Math.min return NaN when either argument is NaN: NaN wins, as in PyTorch.
registerBinaryLoop('maximum', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = Math.max(x[ix]!, y[iy]!);
});
registerBinaryLoop('minimum', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = Math.min(x[ix]!, y[iy]!);
});
// gelu'(x) dy: exact Phi(x) + x phi(x) (Phi = erfc(-x / sqrt 2) / 2); tanh form d/dx x s(2u) =
// s + x s (1 - s) 2u', u = sqrt(2/pi) (x + 0.044715 x^3). The limits 1 and 0 at x = +-Infinity.
registerBinaryLoop('geluBackward', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) {
    const v = x[ix]!;
    const g = y[iy]!;
    if (v === Infinity) out[i] = g;
    else if (v === -Infinity) out[i] = g * 0;
    else out[i] = g * (0.5 * erfc(-v * Math.SQRT1_2) + v * Math.exp(-0.5 * v * v) * INV_SQRT_2PI);
  }
});
registerBinaryLoop('geluTanhBackward', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) {
    const v = x[ix]!;
    const g = y[iy]!;
    if (v === Infinity) out[i] = g;
    else if (v === -Infinity) out[i] = g * 0;
    else {
      const s = sigmoidOf(2 * SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v));
      out[i] = g * (s + v * s * (1 - s) * 2 * SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * v * v));
    }
  }
});
// SwiGLU: silu(gate) * up in one rounding.
registerBinaryLoop('siluMul', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = siluOf(x[ix]!) * y[iy]!;
});
// silu'(x) dy = dy s (1 + x (1 - s)), s = 1 / (1 + e^-x); the limits 1 and 0 at x = +-Infinity.
registerBinaryLoop('siluBackward', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) {
    const v = x[ix]!;
    const g = y[iy]!;
    if (v === Infinity) out[i] = g;
    else if (v === -Infinity) out[i] = g * 0;
    else {
      const s = 1 / (1 + Math.exp(-v));
      out[i] = g * s * (1 + v * (1 - s));
    }
  }
});
