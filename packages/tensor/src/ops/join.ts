// Joining tensors along an axis (cat, stack) and cutting one into views (split, chunk).
import { execute1 } from '../dispatch.js';
import { formatShape, normalizeAxis } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { narrow, unsqueeze } from './views.js';

/**
 * Concatenates `tensors` along `axis` (negative counts from the end). All must share dtype,
 * device and rank, and have equal sizes on every other dim; tensors of size 0 along `axis`
 * are allowed. The result is always a new tensor.
 *
 * Op name: `cat`, inputs `tensors`, attrs `{ axis }` (normalized).
 */
export function cat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new RangeError('cat: needs at least one tensor');
  for (const t of tensors) t.assertAlive('cat');
  const first = tensors[0]!;
  const ax = normalizeAxis(axis, first.rank, 'cat');
  const shape = [...first.shape];
  shape[ax] = 0;
  tensors.forEach((t, i) => {
    if (t.dtype !== first.dtype || t.device !== first.device) {
      throw new TypeError(`cat: tensor ${i} is ${t.describe()} but tensor 0 is ${first.describe()}; dtypes and devices must match`);
    }
    const same = t.rank === first.rank && t.shape.every((d, j) => j === ax || d === first.shape[j]);
    if (!same) {
      throw new RangeError(`cat: tensor ${i} has shape ${formatShape(t.shape)} but tensor 0 has ${formatShape(first.shape)}; only dim ${ax} may differ`);
    }
    shape[ax]! += t.shape[ax]!;
  });
  return execute1('cat', tensors, shape, first.dtype, { axis: ax });
}

/**
 * Stacks equally shaped `tensors` along a new dim `axis` (range `-rank-1 .. rank`).
 * Implemented as `unsqueeze` of each then `cat`.
 */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new RangeError('stack: needs at least one tensor');
  for (const t of tensors) t.assertAlive('stack');
  const first = tensors[0]!;
  const ax = normalizeAxis(axis, first.rank + 1, 'stack');
  tensors.forEach((t, i) => {
    if (t.rank !== first.rank || t.shape.some((d, j) => d !== first.shape[j])) {
      throw new RangeError(`stack: tensor ${i} has shape ${formatShape(t.shape)} but tensor 0 has ${formatShape(first.shape)}; all shapes must be equal`);
    }
  });
  return cat(tensors.map((t) => unsqueeze(t, ax)), ax);
}

/**
 * Cuts `x` along `axis` into views (no copy). A number is a chunk size: pieces of that size,
 * the last one smaller when it does not divide (torch.split). An array gives the exact size
 * of each piece; the sizes must add up to `x.shape[axis]`.
 */
export function split(x: Tensor, sizeOrSizes: number | readonly number[], axis = 0): Tensor[] {
  x.assertAlive('split');
  const ax = normalizeAxis(axis, x.rank, 'split');
  const total = x.shape[ax]!;
  let sizes: number[];
  if (typeof sizeOrSizes === 'number') {
    const size = sizeOrSizes;
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`split: chunk size must be a positive integer, got ${size}`);
    sizes = [];
    for (let start = 0; start < total; start += size) sizes.push(Math.min(size, total - start));
    if (total === 0) sizes.push(0);
  } else {
    sizes = [...sizeOrSizes];
    if (!sizes.every((s) => Number.isInteger(s) && s >= 0)) {
      throw new RangeError(`split: sizes must be non-negative integers, got [${sizes.join(', ')}]`);
    }
    const sum = sizes.reduce((p, s) => p + s, 0);
    if (sum !== total) {
      throw new RangeError(`split: sizes [${sizes.join(', ')}] add up to ${sum} but dim ${ax} of ${formatShape(x.shape)} has size ${total}`);
    }
  }
  const pieces: Tensor[] = [];
  let start = 0;
  for (const s of sizes) {
    pieces.push(narrow(x, ax, start, s));
    start += s;
  }
  return pieces;
}

/**
 * Cuts `x` along `axis` into `chunks` views of size `ceil(size / chunks)` (the last one
 * smaller), like torch.chunk: fewer than `chunks` pieces come back when the size runs out.
 */
export function chunk(x: Tensor, chunks: number, axis = 0): Tensor[] {
  x.assertAlive('chunk');
  if (!Number.isInteger(chunks) || chunks < 1) throw new RangeError(`chunk: number of chunks must be a positive integer, got ${chunks}`);
  const ax = normalizeAxis(axis, x.rank, 'chunk');
  const total = x.shape[ax]!;
  if (total === 0) return [narrow(x, ax, 0, 0)];
  return split(x, Math.ceil(total / chunks), ax);
}
