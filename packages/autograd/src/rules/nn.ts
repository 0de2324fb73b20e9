// Gradient rules of the fused transformer ops of @blora/tensor. Each calls the op's own
// backward op, so a device that provides fused kernels uses them for the backward too.
// The backward ops are not differentiable themselves (no second derivatives).
import {
  attentionBackward, crossEntropyBackward, rmsNormBackward, rope, type AttentionOptions, type CrossEntropyReduction, type Tensor,
} from '@blora/tensor';
import { registerGradient } from '../gradients.js';

/** `t` when its input needs a gradient; otherwise frees it and gives null. */
function ifNeeded(needed: boolean | undefined, t: Tensor): Tensor | null {
  if (needed) return t;
  t.dispose();
  return null;
}

// rmsNorm: inputs [x, weight], outputs [y, rstd]. Reads x, weight and the saved rstd, never y.
registerGradient('rmsNorm', ({ inputs: [x, weight], outputs: [, rstd], attrs, outputGrads: [dy], needsGrad }) => {
  if (!dy) return [null, null];
  const [dx, dweight] = rmsNormBackward(dy, x!, weight!, rstd!, { offset: attrs.offset as number, weightGrad: needsGrad[1] === true });
  return [ifNeeded(needsGrad[0], dx), ifNeeded(needsGrad[1], dweight)];
}, { inputs: [0, 1], outputs: [1] });

// rope is a rotation, so its gradient is the inverse rotation of the output gradient.
// The cos/sin tables are constants (no gradient). Only the tables are read.
registerGradient('rope', ({ inputs: [, cos, sin], attrs, outputGrads: [dy], needsGrad }) => [
  dy && needsGrad[0] ? rope(dy, cos!, sin!, { inverse: !(attrs.inverse as boolean) }) : null,
  null,
  null,
], { inputs: [1, 2], outputs: [] });

// crossEntropy: inputs [logits, targets], outputs [loss, lse]. Targets are integers (no gradient).
registerGradient('crossEntropy', ({ inputs: [logits, targets], outputs: [, lse], attrs, outputGrads: [dloss], needsGrad }) => {
  if (!dloss || !needsGrad[0]) return [null, null];
  const options = { ignoreIndex: attrs.ignoreIndex as number, reduction: attrs.reduction as CrossEntropyReduction };
  return [crossEntropyBackward(dloss, logits!, targets!, lse!, options), null];
}, { inputs: [0, 1], outputs: [1] });

// attention: inputs [q, k, v], outputs [o, lse]; the backward recomputes probabilities from lse.
registerGradient('attention', ({ inputs: [q, k, v], outputs: [o, lse], attrs, outputGrads: [dO], needsGrad }) => {
  if (!dO) return [null, null, null];
  const options: AttentionOptions = {
    causal: attrs.causal as boolean,
    window: attrs.window as number | null,
    scale: attrs.scale as number,
  };
  const [dq, dk, dv] = attentionBackward(dO, q!, k!, v!, o!, lse!, options);
  return [ifNeeded(needsGrad[0], dq), ifNeeded(needsGrad[1], dk), ifNeeded(needsGrad[2], dv)];
});
