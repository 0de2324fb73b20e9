// Decoding mode for a model's NF4 / FP4 bases: their one-token products on a GPU read the weight
// from @blora/quant's decode tile layout (faster GEMV loads; a second copy of each such weight).
import type { Module } from '@blora/autograd';
import { decodeTilesFit, FourBitLinear } from '@blora/quant';
import { QuantizedBase } from './layers/quantized-base.js';

/**
 * Sets `useDecodeTiles` on every NF4 / FP4 base of `model` whose weight can take the decode tile
 * layout (blocks of 64, inFeatures a multiple of 256), or clears it (`on` false, which also frees
 * the tiles built so far). Products of up to 16 rows of bfloat16 / float16 activations on a GPU
 * that need no gradient then read the tiles, built on first use. Returns how many bases changed.
 */
export function useDecodeTiles(model: Module, on = true): number {
  let count = 0;
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof QuantizedBase) || !(m.quantized instanceof FourBitLinear) || !decodeTilesFit(m.quantized.opAttrs)) continue;
    m.quantized.useDecodeTiles = on;
    if (!on) m.quantized.releaseCache();
    count++;
  }
  return count;
}
