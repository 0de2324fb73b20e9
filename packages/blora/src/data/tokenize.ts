// Turning an example into token ids and labels the way the QLoRA collator does: the source
// is bos + prompt, the target is response + eos, each truncated on the right to its own
// maximum length, and the loss is taken on the target tokens only.
import type { AlpacaExample } from './alpaca.js';
import { formatAlpacaPrompt } from './template.js';

/** The label value the loss skips (prompt tokens and padding). */
export const IGNORE_INDEX = -100;

/** What the data pipeline needs from a tokenizer (the models package's `Tokenizer` fits). */
export interface TextTokenizer {
  /** Token ids of `text` without special tokens (unless asked for). */
  encode(text: string, options?: { addBos?: boolean; addEos?: boolean }): number[];
  /** Beginning-of-sequence id, or null when the tokenizer has none. */
  readonly bosId: number | null;
  /** End-of-sequence id, or null when the tokenizer has none. */
  readonly eosId: number | null;
  /** Padding id, or null when the tokenizer has none. */
  readonly padId: number | null;
}

/** Maximum token counts of the two halves of an example. */
export interface SequenceLimits {
  /** Most tokens of bos + prompt (default 384). */
  maxSourceLength: number;
  /** Most tokens of response + eos (default 128). */
  maxTargetLength: number;
}

/** The released recipe's limits: 384 source tokens, 128 target tokens. */
export const DEFAULT_LIMITS: Readonly<SequenceLimits> = Object.freeze({ maxSourceLength: 384, maxTargetLength: 128 });

/** One tokenized example. */
export interface EncodedExample {
  /** bos + prompt + response + eos, truncated. */
  inputIds: number[];
  /** `inputIds` with every source token replaced by IGNORE_INDEX (same length). */
  labels: number[];
  /** Number of source tokens (the first `sourceLength` entries of `labels` are ignored). */
  sourceLength: number;
}

function checkLimit(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${what} must be a positive integer, got ${value}`);
}

/**
 * Tokenizes `example`: source = [bos] + encode(prompt) truncated to `maxSourceLength` tokens
 * (keeping the start), target = encode(output) + [eos] truncated to `maxTargetLength`
 * (keeping the start, so a long response loses its eos). bos / eos are left out when the
 * tokenizer has none.
 */
export function encodeExample(tokenizer: TextTokenizer, example: AlpacaExample, limits: SequenceLimits = DEFAULT_LIMITS): EncodedExample {
  checkLimit(limits.maxSourceLength, 'maxSourceLength');
  checkLimit(limits.maxTargetLength, 'maxTargetLength');
  const source = tokenizer.encode(formatAlpacaPrompt(example));
  if (tokenizer.bosId !== null) source.unshift(tokenizer.bosId);
  const target = tokenizer.encode(example.output);
  if (tokenizer.eosId !== null) target.push(tokenizer.eosId);
  const src = source.slice(0, limits.maxSourceLength);
  const tgt = target.slice(0, limits.maxTargetLength);
  const labels = new Array<number>(src.length).fill(IGNORE_INDEX);
  for (const id of tgt) labels.push(id);
  return { inputIds: [...src, ...tgt], labels, sourceLength: src.length };
}
