// Keys and values of past positions, per layer, so that generation runs each new token
// through the model once instead of recomputing the whole sequence.
import { cat, contiguous, keep, type Tensor } from '@blora/tensor';

/** Keys and values of one layer: `[B, Hkv, S, headDim]` each (keys already rotated). */
export interface LayerKV {
  k: Tensor;
  v: Tensor;
}

/**
 * Per-layer key/value tensors. A forward pass with a cache appends its new keys and values
 * to every layer and advances `length` by the number of new positions; the next pass then
 * starts at position `length`. Call `dispose()` when done.
 */
export class KVCache {
  private readonly layers: (LayerKV | null)[];

  constructor(
    /** Number of decoder layers. */
    readonly numLayers: number,
  ) {
    if (!Number.isInteger(numLayers) || numLayers < 1) throw new RangeError(`KVCache: numLayers must be a positive integer, got ${numLayers}`);
    this.layers = new Array<LayerKV | null>(numLayers).fill(null);
  }

  /** Number of positions held (those of the last completed forward passes). */
  get length(): number {
    return this.layers[this.numLayers - 1]?.k.shape[2] ?? 0;
  }

  /** The held keys and values of `layer` (null before the first pass). */
  get(layer: number): LayerKV | null {
    return this.layers[this.checkLayer(layer)] ?? null;
  }

  /**
   * Appends `k`, `v` `[B, Hkv, T, headDim]` to `layer` and returns the keys and values of all
   * positions. The cache owns what it holds (kept past any `tidy` scope); the previous tensors
   * are released.
   */
  append(layer: number, k: Tensor, v: Tensor): LayerKV {
    const past = this.layers[this.checkLayer(layer)];
    if (past) {
      if (past.k.shape[0] !== k.shape[0] || past.k.shape[1] !== k.shape[1] || past.k.shape[3] !== k.shape[3] || past.k.dtype !== k.dtype) {
        throw new RangeError(`KVCache: layer ${layer} holds keys ${past.k.describe()}, cannot append ${k.describe()}`);
      }
    }
    const next: LayerKV = past
      ? { k: keep(cat([past.k, k], 2)), v: keep(cat([past.v, v], 2)) }
      : { k: keep(contiguous(k)), v: keep(contiguous(v)) };
    if (past) {
      past.k.dispose();
      past.v.dispose();
    }
    this.layers[layer] = next;
    return next;
  }

  /** Releases every held tensor and empties the cache. */
  dispose(): void {
    for (const kv of this.layers) {
      kv?.k.dispose();
      kv?.v.dispose();
    }
    this.layers.fill(null);
  }

  private checkLayer(layer: number): number {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.numLayers) {
      throw new RangeError(`KVCache: layer ${layer} is out of range [0, ${this.numLayers})`);
    }
    return layer;
  }
}
