// Holding out part of a data set for evaluation, reproducibly.
import { shuffledIndices } from './order.js';

/** The Philox "epoch" word reserved for the held-out draw, so it never repeats a training order. */
const HELD_OUT_STREAM = 0xffffffff;

/**
 * Splits `items` into `count` held-out items (chosen uniformly at random by `seed`) and the
 * rest; both keep the original order. `count` must leave at least one training item.
 */
export function splitHeldOut<T>(items: readonly T[], count: number, seed: number): { train: T[]; heldOut: T[] } {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`splitHeldOut: count must be a non-negative integer, got ${count}`);
  if (count >= items.length) {
    throw new RangeError(`splitHeldOut: cannot hold out ${count} of ${items.length} examples (at least one must remain for training)`);
  }
  const chosen = new Set(shuffledIndices(items.length, seed, HELD_OUT_STREAM).subarray(0, count));
  const train: T[] = [];
  const heldOut: T[] = [];
  items.forEach((item, i) => (chosen.has(i) ? heldOut : train).push(item));
  return { train, heldOut };
}
