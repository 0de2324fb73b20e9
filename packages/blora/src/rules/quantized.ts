// Gradient rules of the quantized matmul ops of @blora/quant. The weight is frozen, so only
// the activation gets a gradient: for y = x · Wᵀ it is dx = dy · W, which is the op's
// transposed twin ('nf4MatmulT', 'int4MatmulT', 'int8MatmulT') on the same packed weight.
// With an addend (input 4: y = x · Wᵀ + s · repeatInterleave(addend, λ)) the addend's gradient
// is s times the sums of runs of λ elements of dy, computed as (s · λ) times their means.
// The rules read the packed weight only (never x, y or the addend), so the tape keeps no activations.
import { registerGradient, type GradContext, type SaveSpec } from '@blora/autograd';
import { intMatmulT, nf4MatmulT, QUANT_OPS, type FourBitOpAttrs, type IntOpAttrs } from '@blora/quant';
import { avgPool1d, cast, mul, type Attrs, type Tensor } from '@blora/tensor';

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

/** The gradient of the addend input (null when the op has none or it needs none). */
function addendGrad({ inputs, attrs, outputGrads: [dy], needsGrad }: GradContext): (Tensor | null)[] {
  const addend = inputs[4];
  if (!addend) return [];
  if (attrs.addRank !== undefined) {
    // A low-rank addend (values, factor) is for products outside the tape (fusedQuantizedAdapter's forward).
    if (dy && (needsGrad[4] || needsGrad[5])) {
      throw new Error('quantized matmul: a low-rank addend (values and factor) has no gradient; pass the dense addend values · factorᵀ instead');
    }
    return [null, null];
  }
  if (!dy || !needsGrad[4]) return [null];
  const lambda = attrs.addLambda as number;
  const scale = attrs.addScale as number;
  const means = lambda === 1 ? (dy.dtype === addend.dtype ? dy : cast(dy, addend.dtype)) : avgPool1d(dy, lambda, { dtype: addend.dtype });
  const factor = scale * lambda;
  return [factor === 1 ? means : mul(means, factor)];
}

/** dx for 'nf4Matmul' (NF4 and FP4): nf4MatmulT(dy, packed, absmax, table). */
function nf4MatmulGrad(ctx: GradContext): (Tensor | null)[] {
  const { inputs: [, packed, absmax, table], attrs, outputGrads: [dy], needsGrad } = ctx;
  const dx = dy && needsGrad[0] ? nf4MatmulT(dy, packed!, absmax!, table!, fourBitAttrs(attrs)) : null;
  return [dx, null, null, null, ...addendGrad(ctx)];
}

/** dx for 'int4Matmul' / 'int8Matmul': intMatmulT(bits, dy, codes, scales, offsets). */
function intMatmulGrad(bits: 4 | 8) {
  return (ctx: GradContext): (Tensor | null)[] => {
    const { inputs: [, codes, scales, offsets], attrs, outputGrads: [dy], needsGrad } = ctx;
    const dx = dy && needsGrad[0] ? intMatmulT(bits, dy, codes!, scales!, offsets!, intAttrs(attrs)) : null;
    return [dx, null, null, null, ...addendGrad(ctx)];
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
