// Native float32 add / sub / mul / div for operands that are dense or broadcast scalars
// (inputs arrive already broadcast to the output shape), and sigmoid / silu of dense float32
// tensors; other cases go to the TypeScript kernel.
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
