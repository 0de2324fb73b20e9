// Gradient rules, registered by op name (the name the op announces through @blora/tensor's
// op observer). Rules are written in tensor ops, so they run on every device.
import type { Attrs, Tensor } from '@blora/tensor';

/** What a gradient rule receives for one recorded op. */
export interface GradContext {
  /**
   * The op's inputs as they were when it ran. Shape, dtype and device are always readable;
   * values only for the inputs the rule's `SaveSpec` keeps (all by default).
   */
  readonly inputs: readonly Tensor[];
  /** The op's outputs (values readable for the saved ones, as for `inputs`). */
  readonly outputs: readonly Tensor[];
  /** The op's attributes as recorded (axes, shapes, flags...). */
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

/**
 * Which tensors of an op the tape keeps alive until its rule runs. Tensors that are not
 * saved still reach the rule (shape, dtype and device stay readable) but their values may
 * already be freed, so a rule must only read the values of what it saves. Saving less
 * lowers the memory a forward pass holds for backward.
 */
export interface SaveSpec {
  /**
   * Indices of the inputs whose values the rule reads (default: all), or a function of which
   * inputs need a gradient returning them (matmul only needs `b` when `a` needs a gradient).
   */
  readonly inputs?: readonly number[] | ((needsGrad: readonly boolean[]) => readonly number[]);
  /** Indices of the outputs whose values the rule reads (default: all). */
  readonly outputs?: readonly number[] | ((needsGrad: readonly boolean[]) => readonly number[]);
}

const rules = new Map<string, GradRule>();
const saves = new Map<string, SaveSpec>();

/**
 * Registers (or replaces) the gradient rule of `op`. `save` names the tensors whose
 * values the rule reads; by default every input and output is kept until backward.
 */
export function registerGradient(op: string, rule: GradRule, save?: SaveSpec): void {
  rules.set(op, rule);
  if (save) saves.set(op, save);
  else saves.delete(op);
}

/** What the tape keeps for `op` (undefined = everything). */
export function getSaveSpec(op: string): SaveSpec | undefined {
  return saves.get(op);
}

/** The rule of `op`, or undefined when the op is not differentiable. */
export function getGradient(op: string): GradRule | undefined {
  return rules.get(op);
}

/** Names of the ops that have a gradient rule. */
export function listGradients(): string[] {
  return [...rules.keys()].sort();
}
