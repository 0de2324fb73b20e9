// Log-likelihood of continuations given contexts, computed in padded batches: the primitive
// behind multiple-choice scoring, held-out loss and perplexity.
import { argmax, gather, logSoftmax, reshape, tensor, tidy } from '@blora/tensor';
import { noGrad } from '@blora/autograd';
import type { CausalLM } from '../train/model.js';

/** A context and the continuation whose likelihood is wanted, as token ids. */
export interface ScoringRequest {
  /** Tokens the model conditions on (at least one). */
  context: readonly number[];
  /** Tokens scored (at least one). */
  continuation: readonly number[];
}

/** The score of one request. */
export interface ContinuationScore {
  /** Sum of log p(token | everything before it) over the continuation, in nats. */
  logLikelihood: number;
  /** True when every continuation token is the model's most likely next token. */
  isGreedy: boolean;
  /** Number of continuation tokens scored (fewer than given only if `maxLength` cut them). */
  tokens: number;
}

/** Options of `scoreContinuations`. */
export interface ScoringOptions {
  /** Requests per forward pass (default 8). */
  batchSize?: number;
  /**
   * Longest input fed to the model; longer context + continuation is cut from the left
   * (the start of the context goes first), as lm-evaluation-harness does. Default: no limit.
   */
  maxLength?: number;
  /** Device of the input tensors (default 'cpu'). */
  device?: string;
  /** Id used for padding (never scored; default 0). */
  padId?: number;
}

/** Runs `fn` with the model in evaluation mode, restoring training mode afterwards if it was on. */
export function inEvalMode<T>(model: CausalLM & { training?: boolean }, fn: () => T): T {
  const wasTraining = model.training ?? false;
  model.eval?.();
  try {
    return fn();
  } finally {
    if (wasTraining) model.train?.(true);
  }
}

/**
 * Scores each request: the model reads (context + continuation) without its last token and
 * the log-probabilities of the continuation tokens are summed. Runs without recording
 * gradients, in evaluation mode, one `tidy` per batch.
 */
export function scoreContinuations(model: CausalLM, requests: readonly ScoringRequest[], options: ScoringOptions = {}): ContinuationScore[] {
  const batchSize = options.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`scoreContinuations: batchSize must be a positive integer, got ${batchSize}`);
  const maxLength = options.maxLength ?? Infinity;
  if (!(maxLength >= 2)) throw new RangeError(`scoreContinuations: maxLength must be at least 2, got ${maxLength}`);
  requests.forEach((r, i) => {
    if (r.context.length === 0) throw new RangeError(`scoreContinuations: request ${i} has an empty context (give at least a bos token)`);
    if (r.continuation.length === 0) throw new RangeError(`scoreContinuations: request ${i} has an empty continuation`);
  });
  const out: ContinuationScore[] = [];
  inEvalMode(model, () => noGrad(() => {
    for (let start = 0; start < requests.length; start += batchSize) {
      const chunk = requests.slice(start, start + batchSize);
      out.push(...tidy(() => scoreBatch(model, chunk, maxLength, options)));
    }
  }));
  return out;
}

function scoreBatch(model: CausalLM, chunk: readonly ScoringRequest[], maxLength: number, options: ScoringOptions): ContinuationScore[] {
  // Input i is (context + continuation)[:-1] cut to maxLength from the left; the scored
  // positions are the last `scored` ones, each predicting the next token of the full sequence.
  const rows = chunk.map((r) => {
    const full = [...r.context, ...r.continuation];
    const input = full.slice(0, -1);
    const cut = Math.max(0, input.length - Math.min(maxLength, input.length));
    const ids = input.slice(cut);
    const scored = Math.min(r.continuation.length, ids.length);
    const targets = full.slice(full.length - scored);
    return { ids, scored, targets };
  });
  const width = Math.max(...rows.map((r) => r.ids.length));
  const ids = new Int32Array(rows.length * width).fill(options.padId ?? 0);
  const targetIds = new Int32Array(rows.length * width);
  rows.forEach((r, b) => {
    ids.set(r.ids, b * width);
    r.targets.forEach((t, k) => (targetIds[b * width + r.ids.length - r.scored + k] = t));
  });
  const device = options.device ?? 'cpu';
  const logits = model.forward(tensor(ids, { dtype: 'int32', device, shape: [rows.length, width] }));
  if (logits.rank !== 3 || logits.shape[0] !== rows.length || logits.shape[1] !== width) {
    throw new RangeError(`scoreContinuations: the model returned ${logits.describe()} for input [${rows.length}, ${width}]`);
  }
  const logp = logSoftmax(logits, -1);
  const index = tensor(targetIds, { dtype: 'int32', device, shape: [rows.length, width, 1] });
  const picked = reshape(gather(logp, 2, index), [rows.length, width]).toFloat64Array();
  const best = argmax(logits, 2).toTypedArray();
  return rows.map((r, b) => {
    let sum = 0;
    let greedy = true;
    for (let k = 0; k < r.scored; k++) {
      const at = b * width + r.ids.length - r.scored + k;
      sum += picked[at]!;
      if (best[at] !== targetIds[at]) greedy = false;
    }
    return { logLikelihood: sum, isGreedy: greedy, tokens: r.scored };
  });
}
