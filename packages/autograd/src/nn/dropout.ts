// Dropout as a module, so that train() / eval() switch it on and off.
import type { Generator, Tensor } from '@blora/tensor';
import { dropout } from '../functional.js';
import { Module } from './module.js';

/**
 * Zeroes each element with probability `p` in training mode (scaling the rest by
 * 1 / (1 - p)); the identity in evaluation mode. Masks come from `generator` (default:
 * @blora/tensor's default generator), so runs are reproducible.
 */
export class Dropout extends Module {
  constructor(
    /** Probability of zeroing an element, in [0, 1). */
    readonly p: number,
    private readonly generator?: Generator,
  ) {
    super();
    if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new RangeError(`Dropout: p must be in [0, 1), got ${p}`);
  }

  /** Applies dropout when training. */
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, { training: this.training, ...(this.generator ? { generator: this.generator } : {}) });
  }
}
