/**
 * Held-out loss of the language model on windows of the held-out token stream.
 *
 * @module
 */
import { tensor, tidy } from '@blora/tensor';
import { noGrad } from '@blora/autograd';

/**
 * Mean next-token loss (nats) over `windows` (token id arrays; each predicts its tokens after
 * the first), `batchSize` windows of equal length per forward pass. Leaves the model in
 * training mode.
 * @param {import('@blora/models').LlamaForCausalLM} model
 * @param {number[][]} windows
 * @param {number} batchSize
 * @returns {{ loss: number, perplexity: number, tokens: number }}
 */
export function heldOutLoss(model, windows, batchSize) {
  let total = 0;
  let tokens = 0;
  /** @type {Map<number, number[][]>} */
  const byLength = new Map();
  for (const w of windows) {
    if (w.length < 2) continue;
    const group = byLength.get(w.length) ?? [];
    group.push(w);
    byLength.set(w.length, group);
  }
  const device = model.parameters()[0]?.device ?? 'cpu';
  model.eval();
  try {
    noGrad(() => {
      for (const [length, group] of byLength) {
        for (let start = 0; start < group.length; start += batchSize) {
          const rows = group.slice(start, start + batchSize);
          const ids = new Int32Array(rows.length * length);
          rows.forEach((row, i) => ids.set(row, i * length));
          const mean = tidy(() => model.loss(tensor(ids, { shape: [rows.length, length], dtype: 'int32', device })).item());
          total += mean * rows.length * (length - 1);
          tokens += rows.length * (length - 1);
        }
      }
    });
  } finally {
    model.train();
  }
  const loss = total / tokens;
  return { loss, perplexity: Math.exp(loss), tokens };
}
