// Decoding mode for a model's 4-bit bases: their one-token products on a GPU read the weight from
// @blora/quant's decode tile layout (faster GEMV loads; a second copy of each such weight).
import type { Module } from '@blora/autograd';
import { decodeTilesFit, FourBitLinear, IntBlockLinear, intDecodeTilesFit } from '@blora/quant';
import { QuantizedBase } from './layers/quantized-base.js';

/**
 * Sets `useDecodeTiles` on every 4-bit base of `model` whose weight can take the decode tile
 * layout (NF4 / FP4 with blocks of 64, or INT4 in blocks of 1 x 64, such as a merged QA-BLoRA
 * base; inFeatures a multiple of 256), or clears it (`on` false, which also frees the tiles built
 * so far). Products of up to 16 rows of bfloat16 / float16 activations on a GPU that need no
 * gradient then read the tiles, built on first use. Returns how many bases changed.
 */
export function useDecodeTiles(model: Module, on = true): number {
  let count = 0;
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof QuantizedBase)) continue;
    const q = m.quantized;
    const fits = q instanceof FourBitLinear ? decodeTilesFit(q.opAttrs) : q instanceof IntBlockLinear && intDecodeTilesFit(q.bits, q.opAttrs);
    if (!fits) continue;
    const weight = q as FourBitLinear | IntBlockLinear;
    weight.useDecodeTiles = on;
    if (!on) weight.releaseCache();
    count++;
  }
  return count;
}
