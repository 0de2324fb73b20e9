// CPU kernels for elementwise binary ops. Inputs arrive broadcast to the output shape.
// Every op has its own loop (no per-element call through a shared function), and an operand
// that is a broadcast scalar is read once instead of being expanded to the full size.
import { registerKernel } from '../dispatch.js';
import { isFloatDType, type DType } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { commitValues, isBroadcastScalar, outputValues, readFirst, readValues, type ComputeArray } from './access.js';
import { geluDerivativeOf, geluTanhDerivativeOf, siluDerivativeOf, siluOf } from './activations.js';

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
// The fused gradients: dy times the activation's derivative (activations.ts), one rounding.
registerBinaryLoop('geluBackward', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = y[iy]! * geluDerivativeOf(x[ix]!);
});
registerBinaryLoop('geluTanhBackward', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = y[iy]! * geluTanhDerivativeOf(x[ix]!);
});
// SwiGLU: silu(gate) * up in one rounding.
registerBinaryLoop('siluMul', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = siluOf(x[ix]!) * y[iy]!;
});
registerBinaryLoop('siluBackward', (x, y, out, n, xs, ys) => {
  for (let i = 0, ix = 0, iy = 0; i < n; i++, ix += xs, iy += ys) out[i] = y[iy]! * siluDerivativeOf(x[ix]!);
});
