// Activation checkpointing: trade compute for memory by not keeping a block's intermediate
// tensors for backward, and recomputing them when backward reaches the block.
import { defaultGenerator, type Generator, type GeneratorState, type Tensor } from '@blora/tensor';
import { backwardMany, detach, recordNode, releaseGraph, runUnrecorded } from './engine.js';
import { enableGrad, isGradEnabled } from './grad-mode.js';
import type { GradRule } from './gradients.js';

/** Options of `checkpoint`. */
export interface CheckpointOptions {
  /**
   * Random streams `fn` draws from (dropout masks), rewound before the recomputation so it
   * draws the same numbers. The default generator of @blora/tensor is always included.
   */
  generators?: readonly Generator[];
}

/**
 * Runs `fn(...inputs)` without recording its intermediate tensors; only the inputs are kept.
 * When backward reaches the result, `fn` is run again with recording on and differentiated,
 * which gives the same gradients (for the inputs and for any parameter `fn` uses) as running
 * `fn` directly. `fn` must be deterministic given its inputs and the listed generators.
 */
export function checkpoint<T extends Tensor | readonly Tensor[]>(
  fn: (...inputs: Tensor[]) => T,
  inputs: readonly Tensor[],
  options: CheckpointOptions = {},
): T {
  const generators = [defaultGenerator, ...(options.generators ?? [])];
  const before = generators.map((g) => g.getState());
  const { result, touchedGrad } = runUnrecorded(() => fn(...inputs));
  if (!isGradEnabled() || !touchedGrad) return result;
  const outputs = asList(result);
  recordNode('checkpoint', inputs, outputs, recomputeRule(fn, generators, before), {
    save: { outputs: [] },
    always: true,
  });
  return result;
}

function asList(result: Tensor | readonly Tensor[]): Tensor[] {
  return Array.isArray(result) ? [...(result as readonly Tensor[])] : [result as Tensor];
}

function restore(generators: readonly Generator[], states: readonly GeneratorState[]): void {
  generators.forEach((g, i) => g.setState(states[i]!));
}

function recomputeRule(
  fn: (...inputs: Tensor[]) => Tensor | readonly Tensor[],
  generators: readonly Generator[],
  before: readonly GeneratorState[],
): GradRule {
  return ({ inputs, outputGrads, needsGrad }) => {
    // Fresh leaves standing in for the inputs collect the inputs' gradients.
    const leaves = inputs.map((t, i) => {
      const leaf = detach(t);
      leaf.requiresGrad = needsGrad[i]!;
      return leaf;
    });
    const current = generators.map((g) => g.getState());
    restore(generators, before);
    try {
      const outs = asList(enableGrad(() => fn(...leaves)));
      const roots: Tensor[] = [];
      const grads: Tensor[] = [];
      outs.forEach((o, k) => {
        const g = outputGrads[k];
        if (g && o.requiresGrad) {
          roots.push(o);
          grads.push(g);
        }
      });
      if (roots.length > 0) backwardMany(roots, grads);
      for (const o of outs) releaseGraph(o);
    } finally {
      // The streams continue as if the recomputation had not drawn anything.
      restore(generators, current);
    }
    return leaves.map((leaf) => {
      const g = leaf.grad;
      leaf.grad = null;
      return g;
    });
  };
}
