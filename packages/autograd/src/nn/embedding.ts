// A lookup table of learned vectors, one per token id.
import { embedding, type DType, type Generator, type Tensor } from '@blora/tensor';
import { normal } from './init.js';
import { Module } from './module.js';

/** Options of `Embedding`. */
export interface EmbeddingOptions {
  /** Parameter dtype (default float32). */
  dtype?: DType;
  /** Device (default 'cpu'). */
  device?: string;
  /** Random stream for the initial values (default: @blora/tensor's default generator). */
  generator?: Generator;
}

/**
 * Maps integer ids of any shape to vectors: `[...ids] -> [...ids, dim]`. The table
 * `weight` is `[count, dim]`, initialised standard normal as PyTorch does. Its gradient is
 * a scatter-add of the output gradient into the rows that were looked up.
 */
export class Embedding extends Module {
  /** `[count, dim]`. */
  readonly weight: Tensor;

  constructor(
    /** Number of rows (ids 0 .. count - 1). */
    readonly count: number,
    /** Length of each vector. */
    readonly dim: number,
    options: EmbeddingOptions = {},
  ) {
    super();
    for (const [what, n] of [['count', count], ['dim', dim]] as const) {
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`Embedding: ${what} must be a positive integer, got ${n}`);
    }
    this.weight = this.registerParameter('weight', normal([count, dim], 0, 1, {
      dtype: options.dtype ?? 'float32',
      device: options.device ?? 'cpu',
      ...(options.generator ? { generator: options.generator } : {}),
    }));
  }

  /** Looks up `ids` (an int32 tensor). */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}
