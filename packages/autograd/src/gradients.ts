// Gradient rules, registered by op name (the name the op announces through @blora/tensor's
// op observer). Rules are written in tensor ops, so they run on every device.
import type { Attrs, Tensor } from '@blora/tensor';

/** What a gradient rule receives for one recorded op. */
export interface GradContext {
  /** The op's inputs as they were when it ran. */
  readonly inputs: readonly Tensor[];
  /** The op's outputs. */
  readonly outputs: readonly Tensor[];
  readonly attrs: Attrs;
  /** Gradient of the loss with respect to each output (null where an output got none). */
  readonly outputGrads: readonly (Tensor | null)[];
  /** Whether each input needs a gradient (rules may skip work for the others). */
  readonly needsGrad: readonly boolean[];
}

/**
 * Returns the gradient with respect to each input, same shape as that input, or null
 * for inputs that are not differentiable or do not need one.
 */
export type GradRule = (ctx: GradContext) => (Tensor | null)[];

const rules = new Map<string, GradRule>();

/** Registers (or replaces) the gradient rule of `op`. */
export function registerGradient(op: string, rule: GradRule): void {
  rules.set(op, rule);
}

/** The rule of `op`, or undefined when the op is not differentiable. */
export function getGradient(op: string): GradRule | undefined {
  return rules.get(op);
}

/** Names of the ops that have a gradient rule. */
export function listGradients(): string[] {
  return [...rules.keys()].sort();
}
