// Softmax cross-entropy over a vocabulary, fused so that the [N, V] probabilities are never
// stored: the forward keeps only the per-row log-sum-exp.
import { execute } from '../../dispatch.js';
import type { Tensor } from '../../tensor.js';
import { assertDTypeIs, assertFloatTensor, assertShapeIs, statsDTypeOf } from './common.js';

/** How `crossEntropy` combines the per-token losses. */
export type CrossEntropyReduction = 'mean' | 'sum';

/** Options of `crossEntropy`. */
export interface CrossEntropyOptions {
  /** Target value that marks a token to skip (padding, prompt). Default -100. */
  ignoreIndex?: number;
  /** 'mean' over the counted (non-ignored) tokens (default) or 'sum'. */
  reduction?: CrossEntropyReduction;
}

function checkOptions(op: string, options: CrossEntropyOptions): { ignoreIndex: number; reduction: CrossEntropyReduction } {
  const ignoreIndex = options.ignoreIndex ?? -100;
  const reduction = options.reduction ?? 'mean';
  if (!Number.isInteger(ignoreIndex)) throw new TypeError(`${op}: ignoreIndex must be an integer, got ${String(ignoreIndex)}`);
  if (reduction !== 'mean' && reduction !== 'sum') {
    throw new TypeError(`${op}: reduction must be 'mean' or 'sum', got ${String(reduction)}`);
  }
  return { ignoreIndex, reduction };
}

function checkLogitsAndTargets(op: string, logits: Tensor, targets: Tensor): void {
  assertFloatTensor(op, 'logits', logits);
  if (logits.rank !== 2) throw new RangeError(`${op}: logits must have shape [N, V], got ${logits.describe()}`);
  if (targets === null || typeof targets !== 'object' || (targets as { isTensor?: boolean }).isTensor !== true) {
    throw new TypeError(`${op}: targets must be a tensor, got ${String(targets)}`);
  }
  targets.assertAlive(op);
  assertDTypeIs(op, 'targets', targets, 'int32');
  assertShapeIs(op, 'targets', targets, [logits.shape[0]!]);
}

/**
 * Mean (or summed) negative log-likelihood of `targets` under `softmax(logits)`, computed from
 * a numerically stable log-sum-exp. `logits` `[N, V]` of a float dtype (any strides), `targets`
 * int32 `[N]`. Tokens whose target equals `ignoreIndex` are skipped; with 'mean' the sum is
 * divided by the number of counted tokens, and when no token is counted the loss is 0 and its
 * gradient is 0. A target outside `[0, V)` (other than `ignoreIndex`) throws, naming its position.
 *
 * Op name `crossEntropy`, inputs `[logits, targets]`, attrs `{ignoreIndex, reduction}`, outputs
 * `[loss (0-d), lse [N]]`, both of dtype `statsDTypeOf(logits.dtype)`. Returns `loss`.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  checkLogitsAndTargets(op, logits, targets);
  const attrs = checkOptions(op, options);
  const stats = statsDTypeOf(logits.dtype);
  const [loss] = execute(op, [logits, targets], [
    { shape: [], dtype: stats },
    { shape: [logits.shape[0]!], dtype: stats },
  ], attrs);
  return loss!;
}

/**
 * Gradient of `crossEntropy` with respect to the logits, from the loss gradient `dloss` (0-d)
 * and the saved `lse`: `dloss * (softmax(logits) - onehot(target)) / counted` for 'mean'.
 * Op name `crossEntropyBackward`, inputs `[dloss, logits, targets, lse]`, attrs
 * `{ignoreIndex, reduction}`, output `[dlogits]` (shape and dtype of `logits`).
 */
export function crossEntropyBackward(dloss: Tensor, logits: Tensor, targets: Tensor, lse: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropyBackward';
  checkLogitsAndTargets(op, logits, targets);
  const attrs = checkOptions(op, options);
  const stats = statsDTypeOf(logits.dtype);
  assertFloatTensor(op, 'dloss', dloss);
  assertDTypeIs(op, 'dloss', dloss, stats);
  assertShapeIs(op, 'dloss', dloss, []);
  assertFloatTensor(op, 'lse', lse);
  assertDTypeIs(op, 'lse', lse, stats);
  assertShapeIs(op, 'lse', lse, [logits.shape[0]!]);
  const [dlogits] = execute(op, [dloss, logits, targets, lse], [{ shape: logits.shape, dtype: logits.dtype }], attrs);
  return dlogits!;
}
