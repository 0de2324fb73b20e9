// Padding a list of tokenized examples into one batch of tensors. Sequences are padded on
// the right, so with causal attention no real token ever looks at padding and no attention
// mask is needed; padded positions get the ignored label.
import { tensor, type Tensor } from '@blora/tensor';
import { IGNORE_INDEX, type EncodedExample } from './tokenize.js';

/** A padded batch, ready for a causal language model. */
export interface Batch {
  /** int32 `[B, T]`: token ids, right-padded. */
  inputIds: Tensor;
  /**
   * int32 `[B, T]`: the label of the *next* position (`targets[b, t] = labels[b, t + 1]`),
   * IGNORE_INDEX on prompt tokens, padding and the last position. The logits at position t
   * are scored against `targets[b, t]`, so no shifting is needed afterwards.
   */
  targets: Tensor;
  /** Number of targets that count toward the loss. */
  targetTokens: number;
  /** Number of real (non-padding) input tokens. */
  inputTokens: number;
}

/** Options of `collate`. */
export interface CollateOptions {
  /** Id written into padded positions (never scored; default 0). */
  padId?: number;
  /** Device of the tensors (default 'cpu'). */
  device?: string;
}

/** Builds a right-padded batch from encoded examples (at least one). */
export function collate(examples: readonly EncodedExample[], options: CollateOptions = {}): Batch {
  if (examples.length === 0) throw new RangeError('collate: needs at least one example');
  const padId = options.padId ?? 0;
  const width = Math.max(1, ...examples.map((e) => e.inputIds.length));
  const ids = new Int32Array(examples.length * width).fill(padId);
  const targets = new Int32Array(examples.length * width).fill(IGNORE_INDEX);
  let targetTokens = 0;
  let inputTokens = 0;
  examples.forEach((e, b) => {
    if (e.labels.length !== e.inputIds.length) {
      throw new RangeError(`collate: example ${b} has ${e.inputIds.length} ids but ${e.labels.length} labels`);
    }
    const row = b * width;
    ids.set(e.inputIds, row);
    inputTokens += e.inputIds.length;
    for (let t = 0; t + 1 < e.labels.length; t++) {
      const label = e.labels[t + 1]!;
      targets[row + t] = label;
      if (label !== IGNORE_INDEX) targetTokens++;
    }
  });
  const opts = { dtype: 'int32' as const, device: options.device ?? 'cpu', shape: [examples.length, width] };
  return { inputIds: tensor(ids, opts), targets: tensor(targets, opts), targetTokens, inputTokens };
}
