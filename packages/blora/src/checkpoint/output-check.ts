// Comparing two models on the same token sequences: the logits of an adapter model before a
// merge against those of the merged checkpoint as loaded back, to show what the merge changed.
import { tidy } from '@blora/tensor';
import { noGrad } from '@blora/autograd';
import type { LlamaForCausalLM } from '@blora/models';

/** How far two models' logits are apart on a set of sequences. */
export interface OutputDifference {
  /** Sequences compared. */
  sequences: number;
  /** Token positions compared (logit vectors). */
  positions: number;
  /** Largest |logit_a − logit_b| over every position and vocabulary entry. */
  maxAbsDiff: number;
  /** Largest |logit_a| (the scale the difference is measured against). */
  maxAbsLogit: number;
  /** maxAbsDiff / maxAbsLogit (0 when both are 0). */
  relative: number;
  /** Positions where the two models' most likely next tokens differ. */
  argmaxChanges: number;
}

/** The logits of `model` for each sequence (one forward pass each, no gradients), as float32 rows [T · V]. */
export function sequenceLogits(model: LlamaForCausalLM, sequences: readonly (readonly number[])[]): Float32Array[] {
  return noGrad(() => sequences.map((ids) => tidy(() => Float32Array.from(model.forward([ids]).toFloat64Array()))));
}

/** Compares logits of the same sequences (`vocab` entries per position) from two models. */
export function compareLogits(a: readonly Float32Array[], b: readonly Float32Array[], vocab: number): OutputDifference {
  if (a.length !== b.length) throw new RangeError(`compareLogits: ${a.length} sequences against ${b.length}`);
  let maxAbsDiff = 0;
  let maxAbsLogit = 0;
  let positions = 0;
  let argmaxChanges = 0;
  a.forEach((x, s) => {
    const y = b[s]!;
    if (x.length !== y.length || x.length % vocab !== 0) throw new RangeError(`compareLogits: sequence ${s} has ${x.length} and ${y.length} logits`);
    for (let p = 0; p < x.length; p += vocab) {
      let bestX = p;
      let bestY = p;
      for (let i = p; i < p + vocab; i++) {
        maxAbsDiff = Math.max(maxAbsDiff, Math.abs(x[i]! - y[i]!));
        maxAbsLogit = Math.max(maxAbsLogit, Math.abs(x[i]!));
        if (x[i]! > x[bestX]!) bestX = i;
        if (y[i]! > y[bestY]!) bestY = i;
      }
      if (bestX !== bestY) argmaxChanges++;
      positions++;
    }
  });
  return { sequences: a.length, positions, maxAbsDiff, maxAbsLogit, relative: maxAbsLogit > 0 ? maxAbsDiff / maxAbsLogit : 0, argmaxChanges };
}
