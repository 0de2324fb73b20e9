// Log-likelihood of a continuation given a context, as lm-evaluation-harness scores
// multiple-choice answers: the sum of log p(token | everything before it) over the
// continuation's tokens, plus whether greedy decoding would have produced it.
import { slice, tensor, tidy } from '@blora/tensor';
import { noGrad } from '@blora/autograd';
import type { LlamaForCausalLM } from './model.js';

/** One context / continuation pair (token ids). */
export interface ScoreRequest {
  context: readonly number[];
  continuation: readonly number[];
}

/** The score of one request. */
export interface ContinuationScore {
  /** Sum of the continuation tokens' log-probabilities (natural log). */
  logProb: number;
  /** True when every continuation token is the most likely token at its position. */
  isGreedy: boolean;
}

/** Options of `scoreContinuations`. */
export interface ScoreOptions {
  /** Sequences per forward pass (default 8). */
  batchSize?: number;
  /** Longest input; longer inputs keep their last tokens (default: the config's max_position_embeddings). */
  maxLength?: number;
}

function checkIds(ids: readonly number[], what: string, vocab: number): void {
  if (!Array.isArray(ids)) throw new TypeError(`scoreContinuations: ${what} must be an array of token ids`);
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new RangeError(`scoreContinuations: ${what} token ${i} is ${id}, outside the vocabulary [0, ${vocab})`);
    }
  });
}

/** Scores one row of logits against `target`: [log p(target), target is the argmax]. */
function scoreRow(row: Float64Array, offset: number, vocab: number, target: number): [number, boolean] {
  let max = -Infinity;
  let best = 0;
  for (let v = 0; v < vocab; v++) {
    const x = row[offset + v]!;
    if (x > max) {
      max = x;
      best = v;
    }
  }
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(row[offset + v]! - max);
  return [row[offset + target]! - max - Math.log(sum), best === target];
}

/**
 * Scores each request like lm-evaluation-harness: the model reads `context + continuation`
 * without its last token (keeping the last `maxLength` tokens when longer) and the
 * log-softmax at the continuation's positions is summed in float64. Requests are batched,
 * longest first; shorter rows are padded on the right, which causal attention never lets a
 * real token see. The context must not be empty (prepend the BOS token).
 */
export function scoreContinuations(model: LlamaForCausalLM, requests: readonly ScoreRequest[], options: ScoreOptions = {}): ContinuationScore[] {
  const batchSize = options.batchSize ?? 8;
  const maxLength = options.maxLength ?? model.config.maxPositionEmbeddings;
  const vocab = model.config.vocabSize;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`scoreContinuations: batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError(`scoreContinuations: maxLength must be a positive integer, got ${maxLength}`);
  const inputs = requests.map((r, i) => {
    checkIds(r.context, `request ${i}: context`, vocab);
    checkIds(r.continuation, `request ${i}: continuation`, vocab);
    if (r.context.length === 0) throw new RangeError(`scoreContinuations: request ${i} has an empty context; prepend the BOS token`);
    if (r.continuation.length === 0) throw new RangeError(`scoreContinuations: request ${i} has an empty continuation`);
    if (r.continuation.length > maxLength) {
      throw new RangeError(`scoreContinuations: request ${i}: the continuation (${r.continuation.length} tokens) is longer than maxLength ${maxLength}`);
    }
    const whole = [...r.context, ...r.continuation];
    return whole.slice(-(maxLength + 1), -1);
  });
  const order = inputs.map((_, i) => i).sort((a, b) => inputs[b]!.length - inputs[a]!.length || a - b);
  const results: ContinuationScore[] = new Array(requests.length);
  for (let start = 0; start < order.length; start += batchSize) {
    const batch = order.slice(start, start + batchSize);
    const width = inputs[batch[0]!]!.length;
    const ids = new Int32Array(batch.length * width);
    batch.forEach((r, b) => ids.set(inputs[r]!, b * width));
    noGrad(() => tidy(() => {
      const hidden = model.hiddenStates(tensor(ids, { shape: [batch.length, width], dtype: 'int32', device: model.device }));
      batch.forEach((r, b) => {
        const continuation = requests[r]!.continuation;
        const length = inputs[r]!.length;
        const rows = slice(slice(hidden, 0, b, b + 1), 1, length - continuation.length, length);
        const logits = model.logitsFrom(rows).toFloat64Array();
        let logProb = 0;
        let isGreedy = true;
        continuation.forEach((target, j) => {
          const [lp, greedy] = scoreRow(logits, j * vocab, vocab, target);
          logProb += lp;
          isGreedy &&= greedy;
        });
        results[r] = { logProb, isGreedy };
      });
    }));
  }
  return results;
}

/** Sum of log p(continuation | context) under `model` (see `scoreContinuations`). */
export function scoreContinuation(model: LlamaForCausalLM, contextIds: readonly number[], continuationIds: readonly number[]): number {
  return scoreContinuations(model, [{ context: contextIds, continuation: continuationIds }])[0]!.logProb;
}
