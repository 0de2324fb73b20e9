// Held-out loss and perplexity: on instruction data (response tokens only, as in training)
// and on plain text.
import { tidy } from '@blora/tensor';
import { noGrad } from '@blora/autograd';
import type { InstructionDataset } from '../data/dataset.js';
import type { TextTokenizer } from '../data/tokenize.js';
import { causalLmLoss, type CausalLM } from '../train/model.js';
import { inEvalMode, scoreContinuations } from './loglik.js';

/** A mean loss and what it was measured on. */
export interface LossResult {
  /** Mean negative log-likelihood per scored token, in nats. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Tokens scored. */
  tokens: number;
}

/**
 * Token-mean loss over the responses of every example of `data` (prompt tokens excluded, as
 * in training), in file order, `batchSize` examples per forward pass.
 */
export function heldOutLoss(model: CausalLM, data: InstructionDataset, batchSize = 8): LossResult {
  let total = 0;
  let tokens = 0;
  inEvalMode(model, () => noGrad(() => {
    for (const batch of data.sequentialBatches(batchSize)) {
      tidy(() => {
        if (batch.targetTokens > 0) total += causalLmLoss(model.forward(batch.inputIds), batch.targets, 1).item();
        tokens += batch.targetTokens;
        batch.inputIds.dispose();
        batch.targets.dispose();
      });
    }
  }));
  const loss = tokens ? total / tokens : NaN;
  return { loss, perplexity: Math.exp(loss), tokens };
}

/** Options of `textPerplexity`. */
export interface TextPerplexityOptions {
  /** Tokens predicted per window (default 256). */
  windowLength?: number;
  /** Windows per forward pass (default 4). */
  batchSize?: number;
  /** Score at most this many tokens (default: all). */
  maxTokens?: number;
  /** Device of the input tensors (default 'cpu'). */
  device?: string;
}

/**
 * Perplexity of a text. The text is tokenized once (with bos when the tokenizer has one) and
 * cut into consecutive windows of `windowLength` predicted tokens; each window conditions on
 * the token before it only, so every token after the first is scored exactly once.
 */
export function textPerplexity(model: CausalLM, tokenizer: TextTokenizer, text: string, options: TextPerplexityOptions = {}): LossResult {
  const windowLength = options.windowLength ?? 256;
  if (!Number.isInteger(windowLength) || windowLength < 1) throw new RangeError(`textPerplexity: windowLength must be a positive integer, got ${windowLength}`);
  let ids = tokenizer.encode(text);
  if (tokenizer.bosId !== null) ids.unshift(tokenizer.bosId);
  if (options.maxTokens !== undefined) ids = ids.slice(0, options.maxTokens + 1);
  if (ids.length < 2) throw new RangeError('textPerplexity: the text has fewer than two tokens');
  const requests = [];
  for (let start = 1; start < ids.length; start += windowLength) {
    requests.push({ context: [ids[start - 1]!], continuation: ids.slice(start, start + windowLength) });
  }
  const scores = scoreContinuations(model, requests, {
    batchSize: options.batchSize ?? 4,
    padId: tokenizer.padId ?? 0,
    ...(options.device ? { device: options.device } : {}),
  });
  const tokens = scores.reduce((n, s) => n + s.tokens, 0);
  const loss = -scores.reduce((n, s) => n + s.logLikelihood, 0) / tokens;
  return { loss, perplexity: Math.exp(loss), tokens };
}
