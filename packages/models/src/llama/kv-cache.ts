// Keys and values of past positions, per layer, so that generation runs each new token
// through the model once instead of recomputing the whole sequence.
import { cat, contiguous, copyInto, copyIntoAt, empty, keep, narrow, type Tensor } from '@blora/tensor';

/** Keys and values of one layer: `[B, Hkv, S, headDim]` each (keys already rotated). */
export interface LayerKV {
  k: Tensor;
  v: Tensor;
}

/** Options of a `KVCache`. */
export interface KVCacheOptions {
  /**
   * Positions to make room for up front (for instance prompt length + new tokens), so that the
   * buffers never grow. Default 0: the first pass sizes them; they double when full.
   */
  capacity?: number;
}

/** One layer's state: buffers with room for `capacity` positions, the first `length` filled. */
interface LayerState {
  /** `[B, Hkv, capacity, headDim]` buffers, or null after a pass whose keys need a gradient. */
  buffers: LayerKV | null;
  /** The held keys and values: views of the buffers' first `length` positions, or tensors of their own. */
  held: LayerKV;
}

/** The fewest positions a buffer is allocated with. */
const MIN_CAPACITY = 16;

/**
 * Per-layer key/value tensors. A forward pass with a cache appends its new keys and values
 * to every layer and advances `length` by the number of new positions; the next pass then
 * starts at position `length`. Call `dispose()` when done.
 *
 * Each layer keeps buffers with room for more positions and writes each pass's keys and values
 * into them in place, so a step costs one copy of the new positions rather than of the whole
 * past; the held keys and values are views of the filled part. Keys or values that require a
 * gradient (a pass being trained through) are joined with `cat` instead, which the autograd tape
 * records.
 */
export class KVCache {
  private readonly layers: (LayerState | null)[];
  private readonly reserve: number;

  constructor(
    /** Number of decoder layers. */
    readonly numLayers: number,
    options: KVCacheOptions = {},
  ) {
    if (!Number.isInteger(numLayers) || numLayers < 1) throw new RangeError(`KVCache: numLayers must be a positive integer, got ${numLayers}`);
    const capacity = options.capacity ?? 0;
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`KVCache: capacity must be a non-negative integer, got ${capacity}`);
    this.reserve = capacity;
    this.layers = new Array<LayerState | null>(numLayers).fill(null);
  }

  /** Number of positions held (those of the last completed forward passes). */
  get length(): number {
    return this.layers[this.numLayers - 1]?.held.k.shape[2] ?? 0;
  }

  /** The held keys and values of `layer` (null before the first pass). */
  get(layer: number): LayerKV | null {
    return this.layers[this.checkLayer(layer)]?.held ?? null;
  }

  /** Positions `layer`'s buffers have room for without growing (0 when it holds none). */
  capacity(layer: number): number {
    return this.layers[this.checkLayer(layer)]?.buffers?.k.shape[2] ?? 0;
  }

  /**
   * Appends `k`, `v` `[B, Hkv, T, headDim]` to `layer` and returns the keys and values of all
   * positions. The cache owns what it holds (kept past any `tidy` scope); what it returned
   * before is released.
   */
  append(layer: number, k: Tensor, v: Tensor): LayerKV {
    const state = this.layers[this.checkLayer(layer)];
    const past = state?.held;
    if (past && (past.k.shape[0] !== k.shape[0] || past.k.shape[1] !== k.shape[1] || past.k.shape[3] !== k.shape[3] || past.k.dtype !== k.dtype)) {
      throw new RangeError(`KVCache: layer ${layer} holds keys ${past.k.describe()}, cannot append ${k.describe()}`);
    }
    const taped = k.requiresGrad || v.requiresGrad || past?.k.requiresGrad === true || past?.v.requiresGrad === true;
    const next = taped ? this.joined(state, k, v) : this.written(state, k, v);
    this.layers[layer] = next;
    return next.held;
  }

  /**
   * Writes one step's `k`, `v` `[B, Hkv, T, headDim]` into `layer`'s buffers at the position
   * held by the int32 tensor `position` (read on the device; see `copyIntoAt`) and returns the
   * whole buffers `[B, Hkv, capacity, headDim]`, of which the first position + T are then filled.
   * The held keys and values (and `length`) change only with `advance`. For a recorded decode
   * step (`DecodeStep`): the buffers must exist and never grow while it is used.
   */
  writeAt(layer: number, k: Tensor, v: Tensor, position: Tensor): LayerKV {
    const state = this.layers[this.checkLayer(layer)];
    const buffers = state?.buffers;
    if (!buffers) throw new Error(`KVCache: layer ${layer} has no buffers to write into (run a pass through the cache first)`);
    copyIntoAt(buffers.k, 2, position, k);
    copyIntoAt(buffers.v, 2, position, v);
    return buffers;
  }

  /**
   * Takes `positions` more positions of every layer's buffers as held, after steps that wrote
   * them with `writeAt`. Throws when a layer's buffers have no room for them.
   */
  advance(positions: number): void {
    if (!Number.isInteger(positions) || positions < 0) throw new RangeError(`KVCache: advance takes a non-negative integer, got ${positions}`);
    this.layers.forEach((state, layer) => {
      if (!state?.buffers) throw new Error(`KVCache: layer ${layer} has no buffers to advance`);
      const total = state.held.k.shape[2]! + positions;
      if (total > state.buffers.k.shape[2]!) throw new RangeError(`KVCache: layer ${layer} has room for ${state.buffers.k.shape[2]} positions, not ${total}`);
      const held = { k: keep(narrow(state.buffers.k, 2, 0, total)), v: keep(narrow(state.buffers.v, 2, 0, total)) };
      release(state, state.buffers);
      state.held = held;
    });
  }

  /** Releases every held tensor and buffer and empties the cache. */
  dispose(): void {
    for (const state of this.layers) if (state) release(state);
    this.layers.fill(null);
  }

  // The new positions written into the buffers (grown first when full).
  private written(state: LayerState | null, k: Tensor, v: Tensor): LayerState {
    const length = state?.held.k.shape[2] ?? 0;
    const total = length + k.shape[2]!;
    let buffers = state?.buffers ?? null;
    if (!buffers || buffers.k.shape[2]! < total) {
      const capacity = Math.max(MIN_CAPACITY, this.reserve, buffers || state ? 2 * total : total);
      const grown = { k: this.allocate(k, capacity), v: this.allocate(v, capacity) };
      if (state && length > 0) {
        copyInto(narrow(grown.k, 2, 0, length), state.held.k);
        copyInto(narrow(grown.v, 2, 0, length), state.held.v);
      }
      buffers = grown;
    }
    copyInto(narrow(buffers.k, 2, length, k.shape[2]!), k);
    copyInto(narrow(buffers.v, 2, length, v.shape[2]!), v);
    const held = { k: keep(narrow(buffers.k, 2, 0, total)), v: keep(narrow(buffers.v, 2, 0, total)) };
    if (state) release(state, buffers);
    return { buffers, held };
  }

  // Keys that need a gradient: joined by cat, so that the tape sees how they were made.
  private joined(state: LayerState | null, k: Tensor, v: Tensor): LayerState {
    const held = state
      ? { k: keep(cat([state.held.k, k], 2)), v: keep(cat([state.held.v, v], 2)) }
      : { k: keep(contiguous(k)), v: keep(contiguous(v)) };
    if (state) release(state);
    return { buffers: null, held };
  }

  private allocate(like: Tensor, capacity: number): Tensor {
    const [b, heads, , dim] = like.shape as [number, number, number, number];
    return keep(empty([b, heads, capacity, dim], { dtype: like.dtype, device: like.device }));
  }

  private checkLayer(layer: number): number {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.numLayers) {
      throw new RangeError(`KVCache: layer ${layer} is out of range [0, ${this.numLayers})`);
    }
    return layer;
  }
}

/** Disposes a layer's held tensors and its buffers, unless the buffers are still `inUse`. */
function release(state: LayerState, inUse: LayerKV | null = null): void {
  state.held.k.dispose();
  state.held.v.dispose();
  if (state.buffers && state.buffers !== inUse) {
    state.buffers.k.dispose();
    state.buffers.v.dispose();
  }
}
