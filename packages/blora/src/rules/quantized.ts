// Gradient rules of the quantized matmul ops of @blora/quant. The weight is frozen, so only
// the activation gets a gradient: for y = x · Wᵀ it is dx = dy · W, which is the op's
// transposed twin ('nf4MatmulT', 'int4MatmulT', 'int8MatmulT') on the same packed weight.
// The rules read the packed weight only (never x or y), so the tape keeps no activations.
import { registerGradient, type GradContext, type SaveSpec } from '@blora/autograd';
import { intMatmulT, nf4MatmulT, QUANT_OPS, type FourBitOpAttrs, type IntOpAttrs } from '@blora/quant';
import type { Attrs, Tensor } from '@blora/tensor';

/** The packed weight's tensors (inputs 1..3) are all a rule reads. */
const WEIGHT_ONLY: SaveSpec = { inputs: [1, 2, 3], outputs: [] };

/** Ops whose gradient rule this module registers. */
export const QUANTIZED_GRADIENT_OPS: readonly string[] = [QUANT_OPS.nf4Matmul, QUANT_OPS.int4Matmul, QUANT_OPS.int8Matmul];

function fourBitAttrs(attrs: Attrs): FourBitOpAttrs {
  return { outFeatures: attrs.outFeatures as number, inFeatures: attrs.inFeatures as number, blocksize: attrs.blocksize as number };
}

function intAttrs(attrs: Attrs): IntOpAttrs {
  return {
    outFeatures: attrs.outFeatures as number, inFeatures: attrs.inFeatures as number,
    blockRows: attrs.blockRows as number, blockCols: attrs.blockCols as number,
  };
}

/** dx for 'nf4Matmul' (NF4 and FP4): nf4MatmulT(dy, packed, absmax, table). */
function nf4MatmulGrad({ inputs: [, packed, absmax, table], attrs, outputGrads: [dy], needsGrad }: GradContext): (Tensor | null)[] {
  const dx = dy && needsGrad[0] ? nf4MatmulT(dy, packed!, absmax!, table!, fourBitAttrs(attrs)) : null;
  return [dx, null, null, null];
}

/** dx for 'int4Matmul' / 'int8Matmul': intMatmulT(bits, dy, codes, scales, offsets). */
function intMatmulGrad(bits: 4 | 8) {
  return ({ inputs: [, codes, scales, offsets], attrs, outputGrads: [dy], needsGrad }: GradContext): (Tensor | null)[] => {
    const dx = dy && needsGrad[0] ? intMatmulT(bits, dy, codes!, scales!, offsets!, intAttrs(attrs)) : null;
    return [dx, null, null, null];
  };
}

/**
 * Registers the rules (idempotent; importing the package does it). Call again after another
 * package replaced one of them to restore these.
 */
export function registerQuantizedGradients(): void {
  registerGradient(QUANT_OPS.nf4Matmul, nf4MatmulGrad, WEIGHT_ONLY);
  registerGradient(QUANT_OPS.int4Matmul, intMatmulGrad(4), WEIGHT_ONLY);
  registerGradient(QUANT_OPS.int8Matmul, intMatmulGrad(8), WEIGHT_ONLY);
}

registerQuantizedGradients();
