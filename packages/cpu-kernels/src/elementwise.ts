// Native float32 add / sub / mul / div for operands that are dense or broadcast scalars
// (inputs arrive already broadcast to the output shape), sigmoid / silu of dense float32
// tensors, and silu's gradient and SwiGLU (siluMul) from those native loops; other cases go to
// the TypeScript kernel.
import type { KernelFn } from '@blora/tensor';
import type { NativeAddon } from './native.js';
import { elementStep, f32Storage, isDense, isF32 } from './tensors.js';

/** The binary ops with a native loop, and the op codes the addon uses for them. */
export const BINARY_OP_CODES = { add: 0, sub: 1, mul: 2, div: 3 } as const;

/** Names of the binary ops with a native loop. */
export type NativeBinaryOp = keyof typeof BINARY_OP_CODES;

/** The kernel of binary `op`: native for dense / broadcast-scalar float32 operands, `fallback` otherwise. */
export function nativeBinary(addon: NativeAddon, op: NativeBinaryOp, fallback: KernelFn): KernelFn {
  const code = BINARY_OP_CODES[op];
  return (inputs, outputs, attrs) => {
    const a = inputs[0]!;
    const b = inputs[1]!;
    const out = outputs[0]!;
    const aStep = elementStep(a);
    const bStep = elementStep(b);
    if (!isF32(a) || !isF32(b) || !isF32(out) || aStep < 0 || bStep < 0 || !out.isContiguous) {
      fallback(inputs, outputs, attrs);
      return;
    }
    const n = out.numel;
    if (n === 0) return;
    addon.binaryF32(code, f32Storage(a), a.offset, aStep, f32Storage(b), b.offset, bStep, f32Storage(out), out.offset, n);
  };
}

/** The activations with a native loop, and the op codes the addon uses for them. */
export const ACTIVATION_OP_CODES = { sigmoid: 0, silu: 1 } as const;

/** Names of the activations with a native loop. */
export type NativeActivationOp = keyof typeof ACTIVATION_OP_CODES;

/** The kernel of activation `op`: native for a dense float32 input, `fallback` otherwise. */
export function nativeActivation(addon: NativeAddon, op: NativeActivationOp, fallback: KernelFn): KernelFn {
  const code = ACTIVATION_OP_CODES[op];
  return (inputs, outputs, attrs) => {
    const x = inputs[0]!;
    const out = outputs[0]!;
    if (!isDense(x, 'float32') || !isDense(out, 'float32')) {
      fallback(inputs, outputs, attrs);
      return;
    }
    const n = out.numel;
    if (n === 0) return;
    addon.activationF32(code, f32Storage(x), x.offset, f32Storage(out), out.offset, n);
  };
}

/**
 * The kernel of `siluMul` (inputs [gate, up]): for dense float32 tensors, silu(gate) then the
 * product with up, two native passes (each rounds once in float32, where the TypeScript kernel
 * rounds the float64 product once). `fallback` otherwise.
 */
export function nativeSiluMul(addon: NativeAddon, fallback: KernelFn): KernelFn {
  return (inputs, outputs, attrs) => {
    const gate = inputs[0]!;
    const up = inputs[1]!;
    const out = outputs[0]!;
    if (!isDense(gate, 'float32') || !isDense(up, 'float32') || !isDense(out, 'float32')) {
      fallback(inputs, outputs, attrs);
      return;
    }
    const n = out.numel;
    if (n === 0) return;
    const [os, oo] = [f32Storage(out), out.offset];
    addon.activationF32(ACTIVATION_OP_CODES.silu, f32Storage(gate), gate.offset, os, oo, n);
    addon.binaryF32(BINARY_OP_CODES.mul, os, oo, 1, f32Storage(up), up.offset, 1, os, oo, n);
  };
}

/** Floats of scratch that `siluBackward` keeps for reuse (64 MB); longer rows get their own. */
const MAX_KEPT_SCRATCH = 1 << 24;

/**
 * The kernel of `siluBackward` (inputs [x, dy]): for dense float32 tensors, the gradient
 * dy s (1 + x (1 - s)) as six native passes (sigmoid, then sub / mul / add / mul / mul over a
 * scratch row of n floats), which the vectorised, threaded loops run several times faster than
 * one TypeScript pass with Math.exp; then, only when the result is not all finite, the limits
 * dy and 0 dy where x is infinite, as the other kernels give them. `fallback` otherwise.
 */
export function nativeSiluBackward(addon: NativeAddon, fallback: KernelFn): KernelFn {
  const [ADD, SUB, MUL] = [BINARY_OP_CODES.add, BINARY_OP_CODES.sub, BINARY_OP_CODES.mul];
  const one = new Float32Array([1]);
  const total = new Float32Array(1);
  let scratch = new Float32Array(0);
  return (inputs, outputs, attrs) => {
    const x = inputs[0]!;
    const dy = inputs[1]!;
    const out = outputs[0]!;
    if (!isDense(x, 'float32') || !isDense(dy, 'float32') || !isDense(out, 'float32')) {
      fallback(inputs, outputs, attrs);
      return;
    }
    const n = out.numel;
    if (n === 0) return;
    const [xs, xo] = [f32Storage(x), x.offset];
    const [gs, go] = [f32Storage(dy), dy.offset];
    const [os, oo] = [f32Storage(out), out.offset];
    // The scratch row is kept between calls (fresh memory costs more to touch than the passes).
    if (scratch.length < n) scratch = n <= MAX_KEPT_SCRATCH ? new Float32Array(n) : scratch;
    const t = scratch.length >= n ? scratch : new Float32Array(n);
    addon.activationF32(ACTIVATION_OP_CODES.sigmoid, xs, xo, os, oo, n);  // out = s
    addon.binaryF32(SUB, one, 0, 0, os, oo, 1, t, 0, n);                    // t = 1 - s
    addon.binaryF32(MUL, xs, xo, 1, t, 0, 1, t, 0, n);                      // t = x (1 - s)
    addon.binaryF32(ADD, t, 0, 1, one, 0, 0, t, 0, n);                      // t = 1 + x (1 - s)
    addon.binaryF32(MUL, os, oo, 1, t, 0, 1, os, oo, n);                    // out = s t
    addon.binaryF32(MUL, gs, go, 1, os, oo, 1, os, oo, n);                  // out = dy s t
    // An infinite x leaves NaN (inf * 0) in out, so a finite sum of out means there is none.
    addon.sumF32(os, oo, 1, n, 1, total, 0, 1);
    if (Number.isFinite(total[0]!)) return;
    for (let i = 0; i < n; i++) {
      const v = xs[xo + i]!;
      if (v === Infinity) os[oo + i] = gs[go + i]!;
      else if (v === -Infinity) os[oo + i] = gs[go + i]! * 0;
    }
  };
}
